package raftnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// A reader that arrives while a confirmation is in flight does not take that one's answer
// (it may predate the reader's write): it waits for the next round, which it shares with
// every reader that came meanwhile.
func TestSharedBarrierJoinsTheNextRound(t *testing.T) {
	var (
		mu      sync.Mutex
		rounds  int
		readers []int
	)
	release := make(chan store.Revision)
	started := make(chan struct{}, 8)
	b := &sharedBarrier{
		stop: make(chan struct{}),
		confirm: func(ctx context.Context) (store.Revision, error) {
			mu.Lock()
			rounds++
			mu.Unlock()
			started <- struct{}{}
			return <-release, nil
		},
		observe:  func(n int) { mu.Lock(); readers = append(readers, n); mu.Unlock() },
		inFlight: func(float64) {},
	}
	ctx := ctxT(t)
	type answer struct {
		rev store.Revision
		err error
	}
	first := make(chan answer, 1)
	go func() { rev, err := b.wait(ctx); first <- answer{rev, err} }()
	<-started // round 1 is in flight

	const later = 5
	answers := make(chan answer, later)
	for range later {
		go func() { rev, err := b.wait(ctx); answers <- answer{rev, err} }()
	}
	// The later readers have joined round 2 once it has five readers; round 1 is still out.
	kit.Eventually(t, "five readers wait for round 2", func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.mu.next == nil || b.mu.next.readers != later {
			return errors.New("not yet")
		}
		return nil
	})
	release <- 1
	if a := <-first; a.rev != 1 || a.err != nil {
		t.Fatalf("the first reader got %d, %v; want round 1's revision 1", a.rev, a.err)
	}
	<-started // round 2
	select {
	case a := <-answers:
		t.Fatalf("a later reader was answered %d, %v by round 1", a.rev, a.err)
	default:
	}
	release <- 2
	for range later {
		if a := <-answers; a.rev != 2 || a.err != nil {
			t.Errorf("a later reader got %d, %v; want round 2's revision 2", a.rev, a.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if rounds != 2 || len(readers) != 2 || readers[0] != 1 || readers[1] != later {
		t.Errorf("%d rounds with readers %v; want 2 rounds of [1 %d]", rounds, readers, later)
	}
}

// A reader that gives up leaves the round running for the others and returns its own
// context's error.
func TestSharedBarrierReaderGivesUp(t *testing.T) {
	release := make(chan struct{})
	b := &sharedBarrier{stop: make(chan struct{}),
		confirm: func(context.Context) (store.Revision, error) { <-release; return 7, nil },
		observe: func(int) {}, inFlight: func(float64) {}}
	gone, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.wait(gone); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("a cancelled reader: %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	close(release)
	if rev, err := b.wait(ctxT(t)); rev != 7 || err != nil {
		t.Errorf("the next reader: %d, %v", rev, err)
	}
}

// A read that starts after a write's acknowledgement on another node sees the write: for
// every pair of nodes, a write through one and, once it is acknowledged, fully consistent
// reads (ReadIndex, wait, read) on the two others at once, many readers sharing barriers.
func TestReadAfterAckOnAnotherNodeSeesIt(t *testing.T) {
	var regs registries
	nodes := startCluster(t, regs.tune)
	ctx := ctxT(t)
	if _, err := nodes[0].node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	const rounds, readersPerNode = 30, 4
	for i := range rounds {
		writer := nodes[i%len(nodes)]
		doc := fmt.Sprint("ack-", i)
		if _, err := write(ctx, writer.node, doc, "sato"); err != nil {
			t.Fatalf("round %d: write on %s: %v", i, writer.id, err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes)*readersPerNode)
		for _, reader := range nodes {
			if reader == writer {
				continue
			}
			for range readersPerNode {
				wg.Go(func() {
					rev, err := reader.node.ReadIndex(ctx)
					if err == nil {
						err = reader.node.WaitApplied(ctx, rev)
					}
					if err != nil {
						errs <- fmt.Errorf("%s: %w", reader.id, err)
						return
					}
					if ok, err := reader.has(0, doc, "sato"); err != nil || !ok {
						errs <- fmt.Errorf("round %d: %s does not see the write acknowledged on %s (read index %d): %w", i, reader.id, writer.id, rev, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
	}
	l := leader(t, nodes)
	if v := mustScrape(t, regs.of(l.id), "kengen_raft_read_barrier_readers", "", ""); v == 0 {
		t.Errorf("the leader %s ran no read barrier", l.id)
	}
	for _, tn := range nodes {
		if tn == l {
			continue
		}
		if v := mustScrape(t, regs.of(tn.id), "kengen_raft_forwarded_read_barriers_total", "", ""); v == 0 {
			t.Errorf("follower %s forwarded no read barrier", tn.id)
		}
		if v := mustScrape(t, regs.of(tn.id), "kengen_raft_read_barriers_in_flight", "", ""); v != 0 {
			t.Errorf("follower %s: %v read barriers in flight after the reads", tn.id, v)
		}
	}
}

// Concurrent writes through a follower travel to the leader together, and each keeps its
// own result: new relationships are created at their own revisions, a duplicate CREATE gets
// AlreadyExists and a failed precondition ErrPreconditionFailed, none affecting the others.
func TestForwardedWritesKeepTheirOwnResults(t *testing.T) {
	var regs registries
	nodes := startCluster(t, regs.tune)
	ctx := ctxT(t)
	l := leader(t, nodes)
	var f *testNode
	for _, tn := range nodes {
		if tn != l {
			f = tn
			break
		}
	}
	if _, err := f.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := write(ctx, l.node, "taken", "sato"); err != nil {
		t.Fatal(err)
	}
	const writers = 48
	type outcome struct {
		res store.Result
		err error
	}
	out := make([]outcome, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			var b store.Batch
			switch i % 3 {
			case 0, 1:
				b.Updates = []store.Update{viewer(fmt.Sprint("fwd-", i), "sato")}
			case 2:
				if i%2 == 0 {
					b.Updates = []store.Update{viewer("taken", "sato")}
				} else {
					b.Preconditions = []store.Precondition{{Op: store.MustMatch, Filter: store.Filter{ResourceType: "doc", ResourceID: "nope"}}}
					b.Updates = []store.Update{viewer(fmt.Sprint("never-", i), "sato")}
				}
			}
			res, err := f.node.Writer().Apply(ctx, &b)
			out[i] = outcome{res, err}
		})
	}
	close(start)
	wg.Wait()
	revs := map[store.Revision]int{}
	for i, o := range out {
		switch {
		case i%3 != 2:
			if o.err != nil {
				t.Errorf("write %d: %v", i, o.err)
				continue
			}
			if prev, dup := revs[o.res.Revision]; dup {
				t.Errorf("writes %d and %d both at revision %d", prev, i, o.res.Revision)
			}
			revs[o.res.Revision] = i
		case i%2 == 0:
			if !errors.Is(o.err, store.ErrAlreadyExists) {
				t.Errorf("write %d (duplicate CREATE): %v, want store.ErrAlreadyExists", i, o.err)
			}
		default:
			if !errors.Is(o.err, store.ErrPreconditionFailed) {
				t.Errorf("write %d (failed precondition): %v, want store.ErrPreconditionFailed", i, o.err)
			}
		}
	}
	for rev, i := range revs {
		if ok, err := l.has(rev, fmt.Sprint("fwd-", i), "sato"); err != nil || !ok {
			t.Errorf("write %d is not there at its revision %d on the leader: %v", i, rev, err)
		}
		if ok, err := l.has(rev-1, fmt.Sprint("fwd-", i), "sato"); err == nil && ok {
			t.Errorf("write %d is there before its revision %d", i, rev)
		}
	}
	for i := range writers {
		if i%3 == 2 && i%2 == 1 {
			if ok, _ := l.has(0, fmt.Sprint("never-", i), "sato"); ok {
				t.Errorf("write %d was applied although its precondition failed", i)
			}
		}
	}
	calls := mustScrape(t, regs.of(f.id), "kengen_raft_forwarded_batch_commands", "", "")
	if calls < 1 || calls > writers+1 {
		t.Errorf("%v forwarded calls for %d writes and a schema", calls, writers)
	}
}

func TestDecodeApplyBatchRefusesMalformed(t *testing.T) {
	good := encodeApplyBatch([]*forwarded{{data: []byte("ab"), deadline: time.Now().Add(time.Second)}, {data: nil, deadline: time.Now()}})
	props, err := decodeApplyBatch(good)
	if err != nil || len(props) != 2 || string(props[0].data) != "ab" || len(props[1].data) != 0 || props[0].timeout <= 0 {
		t.Fatalf("round trip: %+v, %v", props, err)
	}
	tooMany := binary.AppendUvarint(nil, maxForwardBatch+1)
	for name, in := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"too many":  tooMany,
		"long":      {1, 5, 200, 1},
	} {
		if _, err := decodeApplyBatch(in); !errors.Is(err, errBadBatch) {
			t.Errorf("%s: %v, want errBadBatch", name, err)
		}
	}
}

// A forwarded call carries at most maxForwardBatch writes and at most MaxCommandBytes of them
// together, so that it fits the leader's gRPC message bound; a write alone always goes.
func TestForwardBatchFitsOneMessage(t *testing.T) {
	queue := func(sizes ...int) []*forwarded {
		var q []*forwarded
		for _, s := range sizes {
			q = append(q, &forwarded{data: make([]byte, s)})
		}
		return q
	}
	many := make([]int, 100)
	for i := range many {
		many[i] = 100
	}
	big := MaxCommandBytes - 10
	for _, tc := range []struct {
		name  string
		sizes []int
		want  int
	}{
		{"empty", nil, 0},
		{"small writes, capped by count", many, maxForwardBatch},
		{"two large writes go one by one", []int{big, big}, 1},
		{"small ones before a large one", []int{1000, 1000, big}, 2},
		{"exactly the bound together", []int{MaxCommandBytes / 2, MaxCommandBytes / 2}, 2},
	} {
		if got := forwardBatchLen(queue(tc.sizes...)); got != tc.want {
			t.Errorf("%s: %d writes in the call, want %d", tc.name, got, tc.want)
		}
	}
}
