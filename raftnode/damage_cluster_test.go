package raftnode

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// steadyTimings are raft's default timeouts: the cluster tests of this file assert which node
// leads for a while, and the shorter timeouts of startNode let a loaded machine move
// leadership mid-test.
func steadyTimings(c *Config) {
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
}

// followerOf returns a node of nodes that is not l.
func followerOf(nodes []*testNode, l *testNode) *testNode {
	for _, tn := range nodes {
		if tn != l {
			return tn
		}
	}
	return nil
}

// awaitSameRelationships waits until tn holds exactly the relationships of ref.
func awaitSameRelationships(t *testing.T, tn, ref *testNode) {
	t.Helper()
	kit.Eventually(t, tn.id+" holds the relationships of "+ref.id, func() error {
		got, want := tn.relationships(t), ref.relationships(t)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s holds %d relationships at revision %d, %s %d at %d", tn.id, len(got), tn.st.Revision(), ref.id, len(want), ref.st.Revision())
		}
		return nil
	})
}

// A follower of a running three-node cluster (real TCP) whose log is damaged while it is
// stopped refuses to start; repaired from the cluster (log and store moved aside, term and
// vote kept), it rejoins, is filled by the leader, converges on the leader's relationships,
// and serves writes again.
func TestDamagedFollowerRejoinsFromTheCluster(t *testing.T) {
	nodes := startCluster(t, func(c *Config) {
		steadyTimings(c)
		c.SegmentSize = 2 << 10
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := leader(t, nodes)
	if _, err := l.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	last := writeDocs(t, l, "c", 30)
	f := followerOf(nodes, l)
	if err := f.node.WaitApplied(ctx, last.Revision); err != nil {
		t.Fatal(err)
	}
	f.stop()
	changePayload(t, segments(t, f.dir), "c010", "x010")
	err := f.tryStart()
	if !errors.Is(err, ErrDamagedLog) {
		t.Fatalf("the damaged follower started: %v", err)
	}
	t.Logf("refused: %v", err)
	last = writeDocs(t, l, "while-down", 10)

	// Repairing it as a single node would make it a second cluster: refused, nothing moved.
	st, err := store.Open(filepath.Join(f.dir, "store"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = RepairFromStore(filepath.Join(f.dir, "raft"), st, f.id, f.raftAddr)
	if cerr := st.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if !errors.Is(err, ErrNotSingleNode) {
		t.Fatalf("RepairFromStore on a member of three: %v, want ErrNotSingleNode", err)
	}
	t.Logf("from the store: %v", err)
	if aside, _ := filepath.Glob(filepath.Join(f.dir, "raft.damaged-*")); len(aside) > 0 {
		t.Fatalf("the refused repair moved the log: %v", aside)
	}

	r := f.repairFromCluster(t)
	if r.Term < 2 {
		t.Errorf("the repaired log keeps term %d, want the cluster's (at least 2)", r.Term)
	}
	f.start()
	if err := f.node.WaitApplied(ctx, last.Revision); err != nil {
		t.Fatalf("the repaired follower did not catch up: %v", err)
	}
	awaitSameRelationships(t, f, l)
	if ok, err := f.has(0, "x010", "ann"); ok || err != nil {
		t.Fatalf("the repaired follower holds the damaged entry's write: %v %v", ok, err)
	}
	res, err := write(ctx, f.node, "through-repaired", "ann")
	if err != nil {
		t.Fatalf("a write through the repaired follower: %v", err)
	}
	for _, tn := range nodes {
		if err := tn.node.WaitApplied(ctx, res.Revision); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range nodes {
		awaitSameRelationships(t, tn, l)
	}
	// It restarts cleanly on its new log.
	f.stop()
	f.start()
	awaitSameRelationships(t, f, l)
}

// A leader whose older entry is damaged on disk while it runs does not send the damaged bytes
// to a follower that needs them: the entry fails its checksum, raft is told it is missing,
// and the follower is caught up by a snapshot instead.
func TestLeaderSendsSnapshotForDamagedEntry(t *testing.T) {
	nodes := startCluster(t, func(c *Config) {
		steadyTimings(c)
		c.SegmentSize = 2 << 10
		// No automatic snapshots or compaction: every entry stays in the log, so a healthy
		// leader would catch the follower up with entries.
		c.SnapshotThreshold = 1 << 20
		c.TrailingLogs = 1 << 20
		c.SnapshotInterval = time.Hour
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := leader(t, nodes)
	if _, err := l.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	f := followerOf(nodes, l)
	stoppedAt := f.st.Revision()
	f.stop()
	last := writeDocs(t, l, "lag", 40)
	if err := l.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, err := l.node.wal.FirstIndex(); err != nil || first > uint64(stoppedAt)+1 {
		t.Fatalf("the leader's log starts at %d (%v), past the follower's %d: it was compacted", first, err, stoppedAt)
	}
	files := segments(t, l.dir)
	if changed := changePayload(t, files, "lag005", "xag005"); changed == files[len(files)-1] {
		t.Logf("the damaged entry is in the tail segment")
	}

	f.start()
	if err := f.node.WaitApplied(ctx, last.Revision); err != nil {
		t.Fatalf("the lagging follower did not catch up: %v", err)
	}
	if f.node.fsm.restores.Load() == 0 {
		t.Error("the follower caught up without a snapshot: it was sent the damaged entry")
	}
	awaitSameRelationships(t, f, l)
	for _, tn := range nodes {
		if ok, err := tn.has(0, "xag005", "ann"); ok || err != nil {
			t.Errorf("%s holds the damaged entry's write: %v %v", tn.id, ok, err)
		}
		if ok, err := tn.has(0, "lag005", "ann"); !ok || err != nil {
			t.Errorf("%s misses lag005: %v %v", tn.id, ok, err)
		}
	}
}
