package raftnode

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// A follower whose own disk fills while the leader's does not: the cluster goes on writing
// (its raft log still takes entries); the follower neither skips the committed entries nor
// panics in Pebble, it waits, reports itself unready with the reason, keeps serving reads,
// and refuses writes sent to it with ErrDiskFull naming its filesystem. When space returns it
// applies everything without a restart. Filled again, it stops promptly while waiting, and
// after a restart catches up.
func TestDiskFullFollowerWaitsAndCatchesUp(t *testing.T) {
	mnt := kit.MountTmpfs(t, 64<<20)
	n1 := startNode(t, "n1", t.TempDir(), true, nil)
	kit.Eventually(t, "n1 leads", func() error {
		if !n1.node.IsLeader() {
			return errors.New("not leader")
		}
		return nil
	})
	n2 := startNode(t, "n2", t.TempDir(), false, nil)
	n3 := startNode(t, "n3", filepath.Join(mnt, "n3"), false, nil)
	nodes := []*testNode{n1, n2, n3}
	for _, tn := range nodes[1:] {
		kit.Eventually(t, tn.id+" joins", func() error { return tn.node.Join(ctxT(t), n1.grpcAddr) })
	}
	ctx := ctxT(t)
	if _, err := n1.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	res, err := write(ctx, n1.node, "before", "ann")
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range nodes {
		if err := tn.node.WaitApplied(ctx, res.Revision); err != nil {
			t.Fatal(err)
		}
		kit.Eventually(t, tn.id+" knows every member", func() error {
			for _, o := range nodes {
				if tn.node.fsm.member(o.id) != o.grpcAddr {
					return fmt.Errorf("%s does not know %s", tn.id, o.id)
				}
			}
			return nil
		})
	}
	if !n1.node.IsLeader() {
		t.Skip("leadership moved away from n1 while the cluster formed")
	}

	fillAndWrite := func(round int) (filler string, last store.Revision) {
		t.Helper()
		filler = kit.FillTo(t, mnt, 10<<20) // below the 16 MiB minimum, room for raft's appends
		for i := range 5 {
			res, err := write(ctxT(t), n1.node, fmt.Sprintf("full-%d-%d", round, i), "ann")
			if err != nil {
				t.Fatalf("write on the leader while only n3's disk is full: %v", err)
			}
			last = res.Revision
		}
		if err := n2.node.WaitApplied(ctxT(t), last); err != nil {
			t.Fatal(err)
		}
		kit.Eventually(t, "n3 reports that it cannot apply for want of space", func() error {
			err := n3.node.Ready()
			if !errors.Is(err, ErrNotReady) || !errors.Is(err, store.ErrDiskFull) {
				return fmt.Errorf("n3 ready: %w", err)
			}
			return nil
		})
		if rev := n3.st.Revision(); rev >= last {
			t.Fatalf("n3 applied revision %d with a full disk", rev)
		}
		if ok, err := n3.has(n3.st.Revision(), "before", "ann"); !ok || err != nil {
			t.Fatalf("read on n3 with a full disk: %v, %v", ok, err)
		}
		_, err := write(ctxT(t), n3.node, "refused", "ann")
		if !errors.Is(err, store.ErrDiskFull) || !strings.Contains(err.Error(), mnt) {
			t.Fatalf("write sent to n3 with a full disk: %v; want ErrDiskFull naming %s", err, mnt)
		}
		return filler, last
	}
	caughtUp := func(round int, last store.Revision) {
		t.Helper()
		if err := n3.node.WaitApplied(ctxT(t), last); err != nil {
			t.Fatalf("n3 after space returned: %v", err)
		}
		for i := range 5 {
			if ok, err := n3.has(last, fmt.Sprintf("full-%d-%d", round, i), "ann"); !ok || err != nil {
				t.Fatalf("n3 misses full-%d-%d: %v, %v", round, i, ok, err)
			}
		}
		kit.Eventually(t, "n3 ready again", n3.node.Ready)
	}

	filler, last := fillAndWrite(0)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	caughtUp(0, last) // no restart

	filler, last = fillAndWrite(1)
	closed := make(chan error, 1)
	go func() { n3.stop(); closed <- nil }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("n3 did not stop within 30 s while its FSM waited for disk space")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	n3.start()
	caughtUp(1, last)
}

// A single node on a 64 MiB filesystem (raft-wal's own 64 MiB segment would not even fit):
// it starts and writes; once another file fills the disk, writes fail with ErrDiskFull
// naming the mount point, reads and read barriers go on, and writes succeed again as soon as
// the file is deleted, with every acknowledged write there.
func TestDiskFullLeaderRefusesAndHeals(t *testing.T) {
	mnt := kit.MountTmpfs(t, 64<<20)
	tn := startNode(t, "n1", filepath.Join(mnt, "data"), true, nil)
	ctx := ctxT(t)
	kit.Eventually(t, "the schema is written once n1 leads", func() error {
		_, err := tn.node.Writer().WriteSchema(ctx, testSchema)
		return err
	})
	var acked []string
	for i := range 20 {
		doc := fmt.Sprint("doc", i)
		if _, err := write(ctx, tn.node, doc, "ann"); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, doc)
	}
	// Below the 16 MiB writes need, above the one segment and 1 MiB the raft log keeps for
	// its own entries (read barriers).
	filler := kit.FillTo(t, mnt, 12<<20)
	_, err := write(ctx, tn.node, "refused", "ann")
	if !errors.Is(err, store.ErrDiskFull) || !strings.Contains(err.Error(), "mounted at "+mnt) {
		t.Fatalf("write on a full disk: %v; want ErrDiskFull naming the filesystem at %s", err, mnt)
	}
	rev, err := tn.node.ReadIndex(ctx)
	if err != nil {
		t.Fatalf("read barrier on a full disk: %v", err)
	}
	// A snapshot (a copy of the store) is not taken into the last free space either.
	// (raft reports the FSM's refusal as text.)
	if err := tn.node.Snapshot(); err == nil || !strings.Contains(err.Error(), "store: disk full: no room for a snapshot") {
		t.Fatalf("snapshot on a full disk: %v; want it refused for want of space", err)
	}
	for _, doc := range acked {
		if ok, err := tn.has(rev, doc, "ann"); !ok || err != nil {
			t.Fatalf("read of %s on a full disk: %v, %v", doc, ok, err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	res, err := write(ctx, tn.node, "after", "ann")
	if err != nil {
		t.Fatalf("write once space returned: %v", err)
	}
	if err := tn.node.Snapshot(); err != nil {
		t.Fatalf("snapshot once space returned: %v", err)
	}
	for _, doc := range append(acked, "after") {
		if ok, err := tn.has(res.Revision, doc, "ann"); !ok || err != nil {
			t.Fatalf("%s after the disk was full: %v, %v", doc, ok, err)
		}
	}
	if ok, _ := tn.has(res.Revision, "refused", "ann"); ok {
		t.Fatal("the refused write was applied")
	}
}

// The raft log's own floor (wallog.go), met when something fills the disk past the writes'
// minimum (here the store's guard is off and the log has a filesystem of its own): the append
// is refused before raft-wal writes anything, so raft-wal is never left with a sealed tail it
// cannot recover from. The write fails with ErrDiskFull naming the log, the leader steps down,
// and once space is freed it is elected again and writes succeed, without a restart, with
// every acknowledged write there.
func TestRaftLogFullHeals(t *testing.T) {
	mnt := kit.MountTmpfs(t, 24<<20)
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{NoSync: true, GCInterval: -1, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := Open(Config{NodeID: "n1", RaftAddr: "127.0.0.1:0", Dir: filepath.Join(mnt, "raft"), Store: st, Bootstrap: true,
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		ApplyTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	kit.Eventually(t, "the schema is written once n1 leads", func() error {
		_, err := n.Writer().WriteSchema(ctxT(t), testSchema)
		return err
	})
	var acked []string
	for i := range 10 {
		doc := fmt.Sprint("doc", i)
		if _, err := write(ctxT(t), n, doc, "ann"); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, doc)
	}

	filler := kit.FillTo(t, mnt, 0)
	_, err = write(ctxT(t), n, "refused", "ann")
	if !errors.Is(err, store.ErrDiskFull) || !strings.Contains(err.Error(), filepath.Join(mnt, "raft")) {
		t.Fatalf("write with the raft log's disk full: %v; want ErrDiskFull naming the log", err)
	}
	if _, err := write(ctxT(t), n, "refused2", "ann"); err == nil {
		t.Fatal("a write succeeded with the raft log's disk full")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var res store.Result
	kit.Eventually(t, "writes succeed once space is freed", func() error {
		res, err = write(ctxT(t), n, "after", "ann")
		return err
	})
	for _, doc := range append(acked, "after") {
		if ok, err := (&testNode{st: st}).has(res.Revision, doc, "ann"); !ok || err != nil {
			t.Fatalf("%s after the raft log's disk was full: %v, %v", doc, ok, err)
		}
	}
}
