package raftnode

import (
	"context"
	"time"

	"github.com/kengen/kengen/store"
)

// The clock. A relationship's expiration is judged at the time of the revision a read is at,
// the leader's clock carried in the entry that made it: the same on every node, and the same
// for every read at one revision. So that a relationship stops counting at its expiration
// even when nobody writes, the leader watches the store's next pending expiration and, once
// it has come, proposes an empty batch (a clock entry): its revision carries the leader's
// time past the expiration, and applying it collects the expired versions (store/expiry.go)
// on every node. Nothing is proposed while nothing is pending, so an idle cluster stays idle.
//
// Every node runs the loop; only the leader acts, so a new leader takes over at its next
// tick. A clock entry the store refuses, or one that fails (leadership lost, no quorum),
// is retried after a growing pause, not at every tick. A leader clock that jumps back
// proposes nothing until it passes the pending expiration again, and the store raises the
// time of entries dated before the latest revision to that revision's time, so nothing hidden
// shows again; one that jumps forward expires relationships early by the jump, as it would
// date any write.
const (
	// clockInterval is how often the leader looks at the next pending expiration: a
	// relationship stops counting within about this long (plus one commit) of expiring.
	clockInterval = 200 * time.Millisecond
	// clockMaxBackoff bounds the pause after clock entries that failed.
	clockMaxBackoff = 10 * time.Second
)

// runClock proposes clock entries while this node leads, until Close.
func (n *Node) runClock() {
	defer n.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(clockInterval)
	defer t.Stop()
	backoff := clockInterval
	var retryAt time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		if !n.IsLeader() || now.Before(retryAt) {
			continue
		}
		next, ok, err := n.st.NextExpiration()
		if err != nil || !ok || next.After(now) {
			continue
		}
		err = n.tick(ctx, now)
		if err == nil {
			backoff, retryAt = clockInterval, time.Time{}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("raftnode: clock entry failed", "next_expiration", next, "error", err)
		retryAt = now.Add(backoff)
		backoff = min(2*backoff, clockMaxBackoff)
	}
}

// tick proposes one clock entry: an empty batch at now.
func (n *Node) tick(ctx context.Context, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	n.clockEntries.Add(1)
	_, err := n.Apply(ctx, &Command{Kind: KindBatch, At: now.UTC(), Batch: &store.Batch{}})
	return err
}
