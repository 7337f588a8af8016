package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// scraped returns what reg exports as name{label="value"} (label may be empty): a gauge's or
// counter's value, or a histogram's sample count. ok is false when there is no such series.
func scraped(t *testing.T, reg *prometheus.Registry, name, label, value string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			default:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func mustScrape(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	v, ok := scraped(t, reg, name, label, value)
	if !ok {
		t.Fatalf("%s{%s=%q} is not exported", name, label, value)
	}
	return v
}

// registries hands every node of a cluster its own registry, by node id.
type registries struct {
	mu sync.Mutex
	m  map[string]*prometheus.Registry
}

func (r *registries) tune(c *Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*prometheus.Registry{}
	}
	if r.m[c.NodeID] == nil {
		r.m[c.NodeID] = prometheus.NewRegistry()
	}
	c.Registerer = r.m[c.NodeID]
}

func (r *registries) of(id string) *prometheus.Registry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// A single node exports every kengen_raft_* metric with values that follow what it does:
// it leads, applies what it commits, times applies and snapshots, and stays ready after a
// read barrier (an entry the FSM never sees) ends its log. Close unregisters the metrics and
// a restart registers them again.
func TestMetricsSingleNode(t *testing.T) {
	var regs registries
	tn := startNode(t, "n1", t.TempDir(), true, regs.tune)
	reg := regs.of("n1")
	kit.Eventually(t, "n1 leads", func() error {
		if !tn.node.IsLeader() {
			return errors.New("not leader")
		}
		return nil
	})
	ctx := ctxT(t)
	if _, err := tn.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	var last store.Result
	for i := range 5 {
		var err error
		if last, err = write(ctx, tn.node, fmt.Sprint(i), "sato"); err != nil {
			t.Fatal(err)
		}
	}
	if v := mustScrape(t, reg, "kengen_raft_state", "state", "leader"); v != 1 {
		t.Errorf("kengen_raft_state{state=leader} = %v on the only node, want 1", v)
	}
	for _, s := range []string{"follower", "candidate", "shutdown"} {
		if v := mustScrape(t, reg, "kengen_raft_state", "state", s); v != 0 {
			t.Errorf("kengen_raft_state{state=%s} = %v on a leader, want 0", s, v)
		}
	}
	if v := mustScrape(t, reg, "kengen_raft_term", "", ""); v < 1 {
		t.Errorf("kengen_raft_term = %v, want >= 1", v)
	}
	// Every write was committed and applied by the time Apply returned.
	commit := mustScrape(t, reg, "kengen_raft_commit_index", "", "")
	applied := mustScrape(t, reg, "kengen_raft_applied_index", "", "")
	if commit < float64(last.Revision) || applied != commit {
		t.Errorf("commit index %v, applied index %v after a write at %d: want both >= it and equal", commit, applied, last.Revision)
	}
	if v := mustScrape(t, reg, "kengen_raft_apply_lag_entries", "", ""); v != 0 {
		t.Errorf("apply lag %v with nothing pending", v)
	}
	// The schema and five writes (and the node's member entry, when it is in already).
	if v := mustScrape(t, reg, "kengen_raft_apply_duration_seconds", "", ""); v < 6 {
		t.Errorf("kengen_raft_apply_duration_seconds counted %v applies, want >= 6", v)
	}
	if v := mustScrape(t, reg, "kengen_raft_leader_changes_total", "", ""); v < 1 {
		t.Errorf("kengen_raft_leader_changes_total = %v after an election, want >= 1", v)
	}
	if v := mustScrape(t, reg, "kengen_raft_forwarded_writes_total", "", ""); v != 0 {
		t.Errorf("the leader forwarded %v writes", v)
	}

	// A read barrier is the last entry of the log: the node must still count as caught up.
	if _, err := tn.node.ReadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if c, a := tn.node.indexes(); a != c || c <= uint64(last.Revision) {
		t.Errorf("after a barrier: commit %d, applied %d (store at %d): want equal and past the store", c, a, last.Revision)
	}
	if err := tn.node.Ready(); err != nil {
		t.Errorf("Ready after a barrier: %v", err)
	}

	if v := mustScrape(t, reg, "kengen_raft_snapshot_duration_seconds", "", ""); v != 0 {
		t.Errorf("%v snapshots counted before any was taken", v)
	}
	if err := tn.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if v := mustScrape(t, reg, "kengen_raft_snapshot_duration_seconds", "", ""); v != 1 {
		t.Errorf("%v snapshots counted after one", v)
	}
	if v := mustScrape(t, reg, "kengen_raft_snapshot_size_bytes", "", ""); v < float64(len(snapshotMagic)) {
		t.Errorf("kengen_raft_snapshot_size_bytes = %v after a snapshot", v)
	}

	tn.stop()
	if _, ok := scraped(t, reg, "kengen_raft_term", "", ""); ok {
		t.Error("a closed node still exports kengen_raft_term")
	}
	tn.start() // registers on the same registry again
	kit.Eventually(t, "n1 ready after a restart", tn.node.Ready)
	if v := mustScrape(t, reg, "kengen_raft_state", "state", "leader"); v != 1 {
		t.Errorf("after a restart, kengen_raft_state{state=leader} = %v", v)
	}
}

// A node refuses a Registerer that already holds raft metrics (two nodes on one registry).
func TestMetricsRegistrationConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	startNode(t, "n1", t.TempDir(), true, func(c *Config) { c.Registerer = reg })
	st, err := store.Open("", store.Options{InMemory: true, NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := Open(Config{NodeID: "n2", RaftAddr: "127.0.0.1:0", Dir: t.TempDir(), Store: st, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		n.Close()
		t.Fatal("a second node registered its metrics on a registry that holds the first's")
	}
	if !strings.Contains(err.Error(), "n2") {
		t.Errorf("the error does not name the node: %v", err)
	}
}

// In a three-node cluster exactly one node exports state leader, a write through a follower
// is counted as forwarded there, and every node catches up to the same applied index and is
// ready.
func TestMetricsCluster(t *testing.T) {
	var regs registries
	nodes := startCluster(t, regs.tune)
	ctx := ctxT(t)
	l := leader(t, nodes)
	var follower *testNode
	for _, tn := range nodes {
		if tn != l {
			follower = tn
			break
		}
	}
	fwdBefore := mustScrape(t, regs.of(follower.id), "kengen_raft_forwarded_writes_total", "", "")
	if _, err := follower.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	last, err := write(ctx, follower.node, "1", "sato")
	if err != nil {
		t.Fatal(err)
	}
	if v := mustScrape(t, regs.of(follower.id), "kengen_raft_forwarded_writes_total", "", ""); v < fwdBefore+2 {
		t.Errorf("%s forwarded %v writes after two more, had %v", follower.id, v, fwdBefore)
	}
	leaders := 0.0
	for _, tn := range nodes {
		leaders += mustScrape(t, regs.of(tn.id), "kengen_raft_state", "state", "leader")
	}
	if leaders != 1 {
		t.Errorf("%v nodes export state leader, want 1", leaders)
	}
	for _, tn := range nodes {
		reg := regs.of(tn.id)
		kit.Eventually(t, tn.id+" catches up", func() error {
			if err := tn.node.Ready(); err != nil {
				return err
			}
			if a := mustScrape(t, reg, "kengen_raft_applied_index", "", ""); a < float64(last.Revision) {
				return fmt.Errorf("applied index %v, the write is at %d", a, last.Revision)
			}
			return nil
		})
		if tn != l {
			if v := mustScrape(t, reg, "kengen_raft_state", "state", "follower"); v != 1 {
				t.Errorf("%s: kengen_raft_state{state=follower} = %v", tn.id, v)
			}
		}
	}
}

// The FSM times a snapshot and a restore and records the snapshot's size on both sides.
func TestMetricsSnapshotRestore(t *testing.T) {
	open := func() *fsm {
		st, err := store.Open(t.TempDir(), store.Options{NoSync: true, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return newFSM(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	}
	src, dst := open(), open()
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(src.metrics.snapshotDuration, src.metrics.snapshotSize)
	dreg := prometheus.NewRegistry()
	dreg.MustRegister(dst.metrics.restoreDuration, dst.metrics.snapshotSize)
	size := float64(sink.Len())
	if v := mustScrape(t, reg, "kengen_raft_snapshot_size_bytes", "", ""); v != size {
		t.Errorf("snapshot size %v, %v bytes were written", v, size)
	}
	if v := mustScrape(t, dreg, "kengen_raft_snapshot_size_bytes", "", ""); v != size {
		t.Errorf("restored snapshot size %v, %v bytes were read", v, size)
	}
	if v := mustScrape(t, reg, "kengen_raft_snapshot_duration_seconds", "", ""); v != 1 {
		t.Errorf("%v snapshots timed, want 1", v)
	}
	if v := mustScrape(t, dreg, "kengen_raft_restore_duration_seconds", "", ""); v != 1 {
		t.Errorf("%v restores timed, want 1", v)
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }
