package raftnode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// The linearizability check models each relationship doc:kN#viewer@user:u as a register
// that holds "present" or "absent": TOUCH sets it, DELETE clears it, and a fully consistent
// read (ReadIndex, WaitApplied, then a read of the local store) returns it.

type regOp int

const (
	regRead regOp = iota
	regTouch
	regDelete
)

type regInput struct {
	key string
	op  regOp
}

type regOutput struct{ present bool }

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(regInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var parts [][]porcupine.Operation
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() any { return false },
	Step: func(state, input, output any) (bool, any) {
		present := state.(bool)
		switch in := input.(regInput); in.op {
		case regTouch:
			return true, true
		case regDelete:
			return true, false
		default:
			return output.(regOutput).present == present, present
		}
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		switch in.op {
		case regTouch:
			return "touch " + in.key
		case regDelete:
			return "delete " + in.key
		}
		return fmt.Sprintf("read %s -> %v", in.key, output.(regOutput).present)
	},
}

// history records operations with times on one monotonic clock.
type history struct {
	start time.Time
	mu    struct {
		sync.Mutex
		ops                 []porcupine.Operation
		acked, failed, read int
	}
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

// record adds one operation. A write that failed is recorded as ambiguous: it may have been
// applied at any time after its call, so it returns at the end of time. A read that failed
// tells nothing and is left out.
func (h *history) record(client int, in regInput, out regOutput, call int64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ret := h.now()
	switch {
	case err != nil && in.op == regRead:
		h.mu.failed++
		return
	case err != nil:
		h.mu.failed++
		ret = math.MaxInt64
	case in.op == regRead:
		h.mu.read++
	default:
		h.mu.acked++
	}
	h.mu.ops = append(h.mu.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

func (h *history) counts() (acked, read, failed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.acked, h.mu.read, h.mu.failed
}

// client issues random operations on the registers against one node until stop closes or
// the node is marked down.
func (h *history) client(id int, n *Node, st *store.Store, down *atomic.Bool, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	for {
		select {
		case <-stop:
			return
		default:
		}
		if down.Load() {
			return
		}
		in := regInput{key: fmt.Sprint("k", rng.IntN(3))}
		switch r := rng.IntN(4); {
		case r < 2:
			in.op = regRead
		case r == 2:
			in.op = regTouch
		default:
			in.op = regDelete
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		call := h.now()
		out, err := applyRegister(ctx, n, st, in)
		cancel()
		h.record(id, in, out, call, err)
		if err != nil {
			// Pace a client whose node cannot answer now, to keep the history small.
			select {
			case <-stop:
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func applyRegister(ctx context.Context, n *Node, st *store.Store, in regInput) (regOutput, error) {
	rel := store.Relationship{ResourceType: "doc", ResourceID: in.key, Relation: "viewer", SubjectType: "user", SubjectID: "u"}
	switch in.op {
	case regTouch:
		_, err := n.Apply(ctx, &Command{Kind: KindBatch, Batch: &store.Batch{Updates: []store.Update{{Op: store.OpTouch, Relationship: rel}}}})
		return regOutput{}, err
	case regDelete:
		_, err := n.Apply(ctx, &Command{Kind: KindBatch, Batch: &store.Batch{Updates: []store.Update{{Op: store.OpDelete, Relationship: rel}}}})
		return regOutput{}, err
	}
	rev, err := n.ReadIndex(ctx)
	if err != nil {
		return regOutput{}, err
	}
	if err := n.WaitApplied(ctx, rev); err != nil {
		return regOutput{}, err
	}
	rd, err := st.Reader(0)
	if err != nil {
		return regOutput{}, err
	}
	defer rd.Close()
	_, ok, err := rd.Get("doc", in.key, "viewer", "user", "u", "")
	return regOutput{present: ok}, err
}

// Concurrent TOUCH, DELETE and fully consistent reads from clients on every node, while a
// follower is partitioned away and healed, the leader is cut off from both followers and
// healed, and then the leader is stopped, form a linearizable history.
func TestLinearizableUnderFaults(t *testing.T) {
	rounds, phase := 2, 500*time.Millisecond
	if longFaultTests() {
		rounds, phase = 8, 2*time.Second
	}
	nodes := startFaultCluster(t)
	ctx := ctxT(t)
	if _, err := faultLeader(t, nodes).node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	h := &history{start: time.Now()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	down := make([]atomic.Bool, len(nodes))
	const perNode = 3
	for i, fn := range nodes {
		for c := 0; c < perNode; c++ {
			wg.Add(1)
			go h.client(i*perNode+c, fn.node, fn.st, &down[i], stop, &wg)
		}
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// progress waits, with a deadline, until more writes have been acknowledged: the
	// cluster is live again after a fault.
	progress := func(what string) {
		t.Helper()
		acked, _, _ := h.counts()
		kit.Eventually(t, what, func() error {
			if a, _, _ := h.counts(); a < acked+10 {
				return fmt.Errorf("%d writes acknowledged, waiting for %d", a, acked+10)
			}
			return nil
		})
	}
	progress("writes before the faults")
	for r := 0; r < rounds; r++ {
		l := faultLeader(t, nodes)
		var cut []*faultNode
		for _, fn := range nodes {
			if fn != l {
				cut = append(cut, fn)
			}
		}
		if r%2 == 0 {
			// One follower partitioned away: the majority goes on.
			cut = cut[r/2%2 : r/2%2+1]
			cut[0].cut()
			time.Sleep(phase) // lets the history run under the fault; not a correctness wait
			progress(fmt.Sprintf("round %d: writes with %s partitioned", r, cut[0].id))
		} else {
			// Both followers unreachable: the leader is cut off from its quorum, its
			// uncommitted writes hang and fail, and no one can elect a new leader.
			for _, fn := range cut {
				fn.cut()
			}
			time.Sleep(phase)
		}
		for _, fn := range cut {
			fn.heal()
		}
		time.Sleep(phase)
		progress(fmt.Sprintf("round %d: writes after the heal", r))
	}
	old := faultLeader(t, nodes)
	i := indexOf(nodes, old)
	down[i].Store(true)
	old.stop()
	var survivors []*faultNode
	for _, fn := range nodes {
		if fn != old {
			survivors = append(survivors, fn)
		}
	}
	faultLeader(t, survivors)
	time.Sleep(phase)
	progress("writes after the leader stopped")
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close

	h.mu.Lock()
	ops := h.mu.ops
	h.mu.Unlock()
	acked, read, failed := h.counts()
	t.Logf("history: %d acknowledged writes, %d fully consistent reads, %d failed operations (ambiguous writes kept open-ended)", acked, read, failed)
	if read < 10 {
		t.Fatalf("only %d reads succeeded; the history checks nothing", read)
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, time.Minute)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatal("porcupine could not decide within its time limit")
	default:
		// Kept after the test, for a person to open.
		f, err := os.CreateTemp("", "kengen-history-*.html")
		if err == nil {
			err = errors.Join(porcupine.Visualize(registerModel, info, f), f.Close())
		}
		if err != nil {
			t.Fatalf("the history is not linearizable (visualizing it failed: %v)", err)
		}
		t.Fatalf("the history is not linearizable; see the visualization in %s", f.Name())
	}
}

func indexOf(nodes []*faultNode, fn *faultNode) int {
	for i, o := range nodes {
		if o == fn {
			return i
		}
	}
	return -1
}
