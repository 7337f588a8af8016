package raftnode

// Writes through a follower. Concurrent writes reaching a follower travel to the leader
// together: a forwarder queues them and sends what is queued as one ApplyBatch call (at most
// maxForwardBatch commands), with at most maxForwardRounds calls in flight, so under load each
// call carries every write that arrived while the previous ones were out. The leader proposes
// a call's commands all at once (raft.Apply for each before waiting for any), so raft puts
// them into one log append with one fsync (group commit, with the leader's own concurrent
// writes), and answers each command with its own result: every WriteRelationships stays one
// entry, one atomic store batch with its own preconditions and error.
//
// The request is binary: uvarint count, then per command uvarint milliseconds left before its
// writer gives up, uvarint length, the encoded Command. The reply is JSON: {"results":
// [applyReply, ...]}, one per command in order.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kengen/kengen/store"
)

const (
	// maxForwardBatch bounds the commands of one forwarded call: raft's MaxAppendEntries
	// (64), what the leader puts into one append.
	maxForwardBatch = 64
	// maxForwardRounds is how many forwarded calls may be in flight at once: two, so that
	// the leader appends one call's commands while it applies the previous call's.
	maxForwardRounds = 2
)

const methodApplyBatch = "ApplyBatch"

// forwarded is one write waiting on a follower for its call to the leader.
type forwarded struct {
	data     []byte
	deadline time.Time
	done     chan struct{}
	res      store.Result
	err      error
}

// forwarder batches the writes a follower forwards to one leader address.
type forwarder struct {
	n    *Node
	addr string

	mu struct {
		sync.Mutex
		queue  []*forwarded
		rounds int // calls in flight
	}
}

// forwarderFor returns the node's forwarder to addr.
func (n *Node) forwarderFor(addr string) *forwarder {
	n.fwd.mu.Lock()
	defer n.fwd.mu.Unlock()
	f := n.fwd.mu.by[addr]
	if f == nil {
		f = &forwarder{n: n, addr: addr}
		n.fwd.mu.by[addr] = f
	}
	return f
}

// apply forwards data with the other writes waiting and returns its own result.
func (f *forwarder) apply(ctx context.Context, data []byte) (store.Result, error) {
	w := &forwarded{data: data, done: make(chan struct{})}
	if d, ok := ctx.Deadline(); ok {
		w.deadline = d
	} else {
		w.deadline = time.Now().Add(f.n.cfg.ApplyTimeout)
	}
	f.mu.Lock()
	f.mu.queue = append(f.mu.queue, w)
	if f.mu.rounds < maxForwardRounds {
		f.mu.rounds++
		go f.run()
	}
	f.mu.Unlock()
	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
		// It may be in a call already: the leader may still apply it.
		return store.Result{}, fmt.Errorf("%w: forwarding to %s: %w (the write may have been applied)", ErrUnavailable, f.addr, ctx.Err())
	}
}

// run sends calls while writes are queued.
func (f *forwarder) run() {
	for {
		f.mu.Lock()
		n := forwardBatchLen(f.mu.queue)
		if n == 0 {
			f.mu.rounds--
			f.mu.Unlock()
			return
		}
		batch := f.mu.queue[:n:n]
		f.mu.queue = f.mu.queue[n:]
		if len(f.mu.queue) == 0 {
			f.mu.queue = nil
		}
		f.mu.Unlock()
		if batch = f.dropExpired(batch); len(batch) > 0 {
			f.send(batch)
		}
	}
}

// forwardBatchLen is how many of the queued writes the next call carries: at most
// maxForwardBatch, and no more than MaxCommandBytes of commands together, so that the call
// fits the one gRPC message the leader accepts (MaxCommandBytes leaves room for the call's
// per-command headers). The first write always goes: Apply refused any larger one.
func forwardBatchLen(queue []*forwarded) int {
	n, size := 0, 0
	for _, w := range queue[:min(len(queue), maxForwardBatch)] {
		if n > 0 && size+len(w.data) > MaxCommandBytes {
			break
		}
		n, size = n+1, size+len(w.data)
	}
	return n
}

// dropExpired answers the writes whose writers gave up while they were queued (they were not
// sent, so not applied) and returns the others.
func (f *forwarder) dropExpired(batch []*forwarded) []*forwarded {
	now := time.Now()
	live := batch[:0]
	for _, w := range batch {
		if now.Before(w.deadline) {
			live = append(live, w)
			continue
		}
		w.err = fmt.Errorf("%w: the write's deadline passed before it was forwarded to %s (it was not applied)", ErrUnavailable, f.addr)
		close(w.done)
	}
	return live
}

// send makes one ApplyBatch call for batch and answers each write.
func (f *forwarder) send(batch []*forwarded) {
	f.n.metrics.forwardedBatchCommands.Observe(float64(len(batch)))
	f.n.metrics.forwardedWrites.Add(float64(len(batch)))
	last := batch[0].deadline
	for _, w := range batch[1:] {
		if w.deadline.After(last) {
			last = w.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), last)
	defer cancel()
	go func() {
		select {
		case <-f.n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	results, err := f.n.peers.applyBatch(ctx, f.addr, encodeApplyBatch(batch))
	for i, w := range batch {
		switch {
		case err != nil:
			w.err = fmt.Errorf("%w (the write may have been applied)", err)
		case i >= len(results):
			w.err = fmt.Errorf("%w: the leader at %s answered %d of %d forwarded writes (the write may have been applied)", ErrUnavailable, f.addr, len(results), len(batch))
		default:
			r := results[i]
			w.res = store.Result{Revision: store.Revision(r.Revision), Deleted: r.Deleted, Partial: r.Partial}
			w.err = r.Error.err()
		}
		close(w.done)
	}
}

func encodeApplyBatch(batch []*forwarded) []byte {
	size := binary.MaxVarintLen64
	for _, w := range batch {
		size += 2*binary.MaxVarintLen64 + len(w.data)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(batch)))
	for _, w := range batch {
		b = binary.AppendUvarint(b, uint64(max(time.Until(w.deadline).Milliseconds(), 1)))
		b = binary.AppendUvarint(b, uint64(len(w.data)))
		b = append(b, w.data...)
	}
	return b
}

// proposal is one command of an ApplyBatch call, on the leader.
type proposal struct {
	data    []byte
	timeout time.Duration
}

var errBadBatch = errors.New("raftnode: bad forwarded batch")

func decodeApplyBatch(b []byte) ([]proposal, error) {
	count, k := binary.Uvarint(b)
	if k <= 0 || count > maxForwardBatch {
		return nil, fmt.Errorf("%w: count", errBadBatch)
	}
	b = b[k:]
	out := make([]proposal, 0, count)
	for i := range count {
		ms, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: command %d: timeout", errBadBatch, i)
		}
		b = b[k:]
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: command %d: length", errBadBatch, i)
		}
		b = b[k:]
		out = append(out, proposal{data: b[:n:n], timeout: time.Duration(ms) * time.Millisecond})
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadBatch, len(b))
	}
	return out, nil
}

type applyBatchReply struct {
	Results []applyReply `json:"results"`
	Error   *errorReply  `json:"error,omitempty"`
}

// applyBatchLocal proposes a forwarded call's commands on this node, which must lead: all
// of them before waiting for any, so that raft appends them together, then answers each.
func (n *Node) applyBatchLocal(ctx context.Context, in []byte) *applyBatchReply {
	props, err := decodeApplyBatch(in)
	if err != nil {
		return &applyBatchReply{Error: &errorReply{Kind: "invalid", Message: err.Error()}}
	}
	out := &applyBatchReply{Results: make([]applyReply, len(props))}
	futures := make([]raft.ApplyFuture, len(props))
	for i, p := range props {
		if err := n.proposable(); err != nil {
			out.Results[i] = applyReply{Error: toErrorReply(err)}
			continue
		}
		futures[i] = n.raft.Apply(p.data, p.timeout)
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		res, err := n.applied(ctx, f)
		out.Results[i] = applyReply{Revision: uint64(res.Revision), Deleted: res.Deleted, Partial: res.Partial, Error: toErrorReply(err)}
	}
	return out
}

func (p *peers) applyBatch(ctx context.Context, addr string, in []byte) ([]applyReply, error) {
	var r applyBatchReply
	if err := p.call(ctx, addr, methodApplyBatch, in, &r); err != nil {
		return nil, err
	}
	if err := r.Error.err(); err != nil {
		return nil, err
	}
	return r.Results, nil
}
