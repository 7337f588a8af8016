package raftnode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
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

// awaitNoLeader polls tn until it knows no leader (its election timer has fired: an election
// is under way), or a new leader is already known, which the caller counts as a missed
// window.
func awaitNoLeader(tn *testNode, old string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		switch tn.node.Leader() {
		case "":
			return true
		case old:
			time.Sleep(time.Millisecond)
		default:
			return false
		}
	}
	return false
}

// TestWriteWaitsForElection: a write and a fully consistent read barrier issued through a
// follower while an election is under way (the leader has stopped, the follower knows no
// leader) are not refused: they wait for the new leader, within their deadline, and
// succeed, with no retry by the caller. (A write forwarded in the instant the leader dies,
// while the follower's connection to it still looks up, can fail "may have been applied":
// it was sent, and nobody can tell whether the leader took it.)
func TestWriteWaitsForElection(t *testing.T) {
	nodes := startCluster(t, nil)
	if _, err := nodes[0].node.Writer().WriteSchema(ctxT(t), testSchema); err != nil {
		t.Fatal(err)
	}
	inWindow := 0
	for round := range 3 {
		old, survivors := stopLeader(t, nodes)
		if awaitNoLeader(survivors[0], old.id) {
			inWindow++
		}
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
		kit.Eventually(t, old.id+" caught up", func() error { return old.node.WaitApplied(ctxT(t), res.Revision) })
	}
	if inWindow == 0 {
		t.Error("no round issued its write while the follower knew no leader; the test proved nothing")
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
	// Until its leader's heartbeats stop, the lone node may still forward to the node just
	// stopped, and a write cut off in flight there may have been applied: that is another
	// case (TestWriteWaitsForElection). This one starts once the lone node knows no leader.
	kit.Eventually(t, lone.id+" knows no leader", func() error {
		if l := lone.node.Leader(); l != "" {
			return fmt.Errorf("it still follows %s", l)
		}
		return nil
	})
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
