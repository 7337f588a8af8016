package raftnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// stopLeader stops the leader of nodes and returns the others.
func stopLeader(t *testing.T, nodes []*testNode) (old *testNode, survivors []*testNode) {
	t.Helper()
	old = leader(t, nodes)
	for _, tn := range nodes {
		if tn != old {
			survivors = append(survivors, tn)
		}
	}
	old.stop()
	return old, survivors
}

// TestWriteWaitsForElection: a write and a fully consistent read barrier issued through a
// follower the moment the leader stops (the follower still names the old leader, or knows
// none: an election is under way) are not refused: they wait for the new leader, within
// their deadline, and succeed, with no retry by the caller.
func TestWriteWaitsForElection(t *testing.T) {
	nodes := startCluster(t, nil)
	if _, err := nodes[0].node.Writer().WriteSchema(ctxT(t), testSchema); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		old, survivors := stopLeader(t, nodes)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		res, err := write(ctx, survivors[0].node, fmt.Sprint("during-election-", round), "sato")
		rev, rerr := survivors[1].node.ReadIndex(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: a write through %s while %s had stopped: %v, want it to wait for the new leader", round, survivors[0].id, old.id, err)
		}
		if rerr != nil || rev < res.Revision {
			t.Fatalf("round %d: read index through %s after the write at %d: %d, %v", round, survivors[1].id, res.Revision, rev, rerr)
		}
		old.start() // back as a follower, so that the next round has a quorum without it
		eventually(t, old.id+" caught up", func() error { return old.node.WaitApplied(ctxT(t), res.Revision) })
	}
}

// TestWriteUnavailableAfterDeadline: with no quorum (two of three nodes stopped) no leader
// can be elected. A write and a read barrier wait until their deadline, then fail with
// ErrUnavailable saying the write was not applied; not before the deadline (less the reply
// margin), which is what waiting means.
func TestWriteUnavailableAfterDeadline(t *testing.T) {
	nodes := startCluster(t, nil)
	if _, err := nodes[0].node.Writer().WriteSchema(ctxT(t), testSchema); err != nil {
		t.Fatal(err)
	}
	_, survivors := stopLeader(t, nodes)
	survivors[1].stop()
	lone := survivors[0]
	const timeout = 1500 * time.Millisecond
	earliest := timeout - timeout/20

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	_, err := write(ctx, lone.node, "no-quorum", "sato")
	cancel()
	if waited := time.Since(start); waited < earliest {
		t.Errorf("the write failed after %v, before its deadline of %v: %v", waited, timeout, err)
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not applied") {
		t.Errorf("a write without a quorum: %v, want ErrUnavailable saying it was not applied", err)
	}

	start = time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), timeout)
	_, err = lone.node.ReadIndex(ctx)
	cancel()
	if waited := time.Since(start); waited < earliest {
		t.Errorf("the read barrier failed after %v, before its deadline of %v: %v", waited, timeout, err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("a read barrier without a quorum: %v, want ErrUnavailable", err)
	}
	if got, _ := lone.has(lone.st.Revision(), "no-quorum", "sato"); got {
		t.Error("the refused write is in the store")
	}
}
