package raftnode

// Shared read barriers (etcd's batched ReadIndex). A fully consistent read needs a revision
// at least as new as every write acknowledged before it started: the leader's commit index,
// confirmed by a quorum that this node still leads. One confirmation serves every reader
// that was waiting when it started: readers that arrive while a confirmation is in flight
// wait for the next one (never join the one in flight, which may have read the commit index
// before their write was acknowledged), so under load one round is in flight and the next
// collects everybody who came meanwhile.
//
// On the leader a round is: read the commit index, confirm leadership with one heartbeat
// round to a quorum (raft.VerifyLeader: no log entry, no fsync), then wait until the FSM has
// applied through that index. The commit index is trustworthy only once the leader has
// committed an entry of its own term (before that it may lag the entries of earlier terms
// that were committed, and acknowledged, by the previous leader), so the first round of each
// term commits a raft barrier instead, which also waits for the FSM. On a follower a round is
// one ReadIndex call to the leader, which joins a round there: one forwarded request carries
// every reader waiting on the follower.
//
// No lease: every round confirms leadership with a quorum, so nothing here depends on clocks.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kengen/kengen/store"
)

// barrierRoundTimeout bounds one confirmation when its readers leave it running: a round
// against a quorum that does not answer ends when raft steps down (LeaderLeaseTimeout) or
// when this bound passes, whichever is first.
const barrierRoundTimeout = 10 * time.Second

// sharedBarrier runs one confirmation at a time and hands its result to every reader that
// joined it.
type sharedBarrier struct {
	// confirm is one round: the leader's confirmation or the call to the leader.
	confirm func(ctx context.Context) (store.Revision, error)
	// stop ends the rounds when the node stops.
	stop <-chan struct{}
	// observe records a round's readers (metrics), inFlight counts rounds running.
	observe  func(readers int)
	inFlight func(delta float64)

	mu struct {
		sync.Mutex
		next    *barrierRound // the round collecting readers, nil when nobody waits
		running bool          // a goroutine is running rounds
	}
}

// barrierRound is one confirmation and the readers waiting for it.
type barrierRound struct {
	readers int
	done    chan struct{}
	rev     store.Revision
	err     error
}

// wait joins the next round and returns its revision, or ctx's end.
func (b *sharedBarrier) wait(ctx context.Context) (store.Revision, error) {
	b.mu.Lock()
	r := b.mu.next
	if r == nil {
		r = &barrierRound{done: make(chan struct{})}
		b.mu.next = r
	}
	r.readers++
	if !b.mu.running {
		b.mu.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.rev, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: waiting for a read barrier: %w", ErrUnavailable, ctx.Err())
	case <-b.stop:
		return 0, fmt.Errorf("%w: the node is stopping", ErrUnavailable)
	}
}

// run runs rounds while readers wait, one at a time: the round collecting readers starts
// once the previous one has answered.
func (b *sharedBarrier) run() {
	for {
		b.mu.Lock()
		r := b.mu.next
		b.mu.next = nil
		if r == nil {
			b.mu.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.observe(r.readers)
		b.inFlight(1)
		r.rev, r.err = b.round()
		b.inFlight(-1)
		close(r.done)
	}
}

func (b *sharedBarrier) round() (store.Revision, error) {
	ctx, cancel := context.WithTimeout(context.Background(), barrierRoundTimeout)
	defer cancel()
	go func() {
		select {
		case <-b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return b.confirm(ctx)
}

// leaderBarrier is the state of the leader's rounds.
type leaderBarrier struct {
	// confirmedTerm is the term in which this node committed a barrier as leader: from then
	// on its commit index covers every entry committed before its term.
	confirmedTerm atomic.Uint64
	// appliedThrough is the highest log index known to be applied (see appliedThrough).
	appliedThrough atomic.Uint64
}

// confirmLeader is one round on the leader (ErrNoLeader when this node does not lead).
func (n *Node) confirmLeader(ctx context.Context) (store.Revision, error) {
	if !n.IsLeader() {
		return 0, fmt.Errorf("%w: node %s does not lead", ErrNoLeader, n.cfg.NodeID)
	}
	term := n.raft.CurrentTerm()
	if n.lb.confirmedTerm.Load() != term {
		// The first round of a term: commit an entry of this term.
		if err := wait(ctx, n.raft.Barrier(n.timeout(ctx))); err != nil {
			return 0, n.barrierErr(err)
		}
		n.lb.confirmedTerm.Store(term)
		return n.st.Revision(), nil
	}
	idx := n.raft.CommitIndex()
	if err := wait(ctx, n.raft.VerifyLeader()); err != nil {
		return 0, n.barrierErr(err)
	}
	if n.raft.CurrentTerm() != term {
		// Leadership was lost and won again meanwhile: the next round confirms the new term.
		return 0, fmt.Errorf("%w: node %s changed term during a read barrier", ErrNoLeader, n.cfg.NodeID)
	}
	if err := n.waitAppliedThrough(ctx, idx); err != nil {
		return 0, err
	}
	return n.st.Revision(), nil
}

func (n *Node) barrierErr(err error) error {
	if isDiskFull(err) { // the barrier's append met the raft log's floor (wallog.go)
		return fmt.Errorf("raftnode: node %s: %w: read barrier: %w", n.cfg.NodeID, store.ErrDiskFull, err)
	}
	// raftErr sorts raft's leadership errors (VerifyLeader answers a lost vote with
	// raft.ErrNotLeader); anything else is an outcome nobody knows, which a read may simply
	// try again.
	if err = raftErr(err); errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: read barrier: %w", ErrUnavailable, err)
}

// waitAppliedThrough waits until the FSM has applied every command entry up to log index idx.
// Entries that never reach the FSM (a barrier, a leader's no-op, a configuration change)
// change nothing in the store, so they count as applied once the commands before them are;
// the log is read from the last known point to see which entries they are.
func (n *Node) waitAppliedThrough(ctx context.Context, idx uint64) error {
	for {
		ch := n.fsm.changed()
		if n.appliedThrough(idx) {
			return nil
		}
		t := time.NewTimer(5 * time.Millisecond) // a snapshot restore moves nothing the FSM signals
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: read barrier: waiting for log index %d to be applied: %w", ErrUnavailable, idx, ctx.Err())
		}
		t.Stop()
	}
}

// appliedThrough reports whether every command up to idx is applied.
func (n *Node) appliedThrough(idx uint64) bool {
	known := max(n.lb.appliedThrough.Load(), n.fsm.lastIndex.Load(), uint64(n.st.Revision()))
	for next := known + 1; next <= idx; next++ {
		var l raft.Log
		if err := n.logs.GetLog(next, &l); err != nil || l.Type == raft.LogCommand {
			n.raiseAppliedThrough(next - 1)
			return false
		}
	}
	n.raiseAppliedThrough(idx)
	return true
}

func (n *Node) raiseAppliedThrough(idx uint64) {
	for {
		cur := n.lb.appliedThrough.Load()
		if idx <= cur || n.lb.appliedThrough.CompareAndSwap(cur, idx) {
			return
		}
	}
}

func (n *Node) newSharedBarrier(confirm func(context.Context) (store.Revision, error)) *sharedBarrier {
	return &sharedBarrier{confirm: confirm, stop: n.stop,
		observe:  func(readers int) { n.metrics.readBarrierReaders.Observe(float64(readers)) },
		inFlight: n.metrics.readBarriersInFlight.Add}
}
