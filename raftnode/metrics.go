package raftnode

// Raft's metrics (docs/metrics.md, "Raft"). Gauges are read from raft and the store when
// Prometheus scrapes (collector); counters and histograms are updated at a few marked hooks:
// fsm.Apply, fsmSnapshot.Persist, fsm.Restore, Node.applyEncoded (forwarding) and the
// leader observer below. Everything is registered as one collector on Config.Registerer and
// unregistered by Close, so a node restarted in the same process registers afresh.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// raftStates are the values of kengen_raft_state's state label, all always exported.
var raftStates = []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown}

// maxSkip bounds how many log entries after the FSM's last one appliedIndex reads to step
// over raft's own entries (barriers, no-ops, configuration), which never reach the FSM.
const maxSkip = 64

// metrics are the figures updated where things happen. They exist (unregistered) even when
// Config.Registerer is nil, so the hooks never check.
type metrics struct {
	applyDuration    prometheus.Histogram
	snapshotDuration prometheus.Histogram
	restoreDuration  prometheus.Histogram
	snapshotSize     prometheus.Gauge
	leaderChanges    prometheus.Counter
	forwardedWrites  prometheus.Counter
	// Shared read barriers and batched writes (readbarrier.go, forward.go, logstore.go).
	readBarriersInFlight   prometheus.Gauge
	readBarrierReaders     prometheus.Histogram
	forwardedReadBarriers  prometheus.Counter
	forwardedBatchCommands prometheus.Histogram
	appendCommands         prometheus.Histogram
}

func newMetrics() *metrics {
	slow := prometheus.ExponentialBuckets(0.005, 4, 9) // 5 ms … ~5.5 min
	counts := []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}
	return &metrics{
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kengen_raft_apply_duration_seconds",
			Help:    "Time to apply one log entry to the store.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 9), // 50 µs … ~3.3 s
		}),
		snapshotDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kengen_raft_snapshot_duration_seconds",
			Help:    "Time to take a snapshot: checkpoint the store and stream it to raft's snapshot store.",
			Buckets: slow,
		}),
		restoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kengen_raft_restore_duration_seconds",
			Help:    "Time to replace the store with a snapshot.",
			Buckets: slow,
		}),
		snapshotSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kengen_raft_snapshot_size_bytes",
			Help: "Size of the last snapshot this node took or restored.",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kengen_raft_leader_changes_total",
			Help: "Times this node learned of a new leader (an election or a leader it had not known).",
		}),
		forwardedWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kengen_raft_forwarded_writes_total",
			Help: "Writes this node forwarded to the leader because it did not lead.",
		}),
		readBarriersInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kengen_raft_read_barriers_in_flight",
			Help: "Read barriers (leadership confirmations shared by fully consistent reads) this node is running now, on the leader or forwarded to it.",
		}),
		readBarrierReaders: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kengen_raft_read_barrier_readers",
			Help:    "Readers that shared one read barrier on this node (a follower's forwarded barrier counts as one reader on the leader).",
			Buckets: counts,
		}),
		forwardedReadBarriers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kengen_raft_forwarded_read_barriers_total",
			Help: "Read barriers this node asked the leader for because it did not lead, each shared by its readers.",
		}),
		forwardedBatchCommands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kengen_raft_forwarded_batch_commands",
			Help:    "Writes carried by one call forwarding writes to the leader.",
			Buckets: counts,
		}),
		appendCommands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kengen_raft_log_append_commands",
			Help:    "Commands (writes, not raft's own entries) in one fsynced append to this node's raft log.",
			Buckets: append([]float64{0}, counts...),
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.applyDuration, m.snapshotDuration, m.restoreDuration,
		m.snapshotSize, m.leaderChanges, m.forwardedWrites, m.readBarriersInFlight, m.readBarrierReaders,
		m.forwardedReadBarriers, m.forwardedBatchCommands, m.appendCommands}
}

var (
	descState = prometheus.NewDesc("kengen_raft_state",
		"1 for this node's current raft state, 0 for the others.", []string{"state"}, nil)
	descTerm   = prometheus.NewDesc("kengen_raft_term", "Current raft term.", nil, nil)
	descCommit = prometheus.NewDesc("kengen_raft_commit_index",
		"Highest log index this node knows committed.", nil, nil)
	descApplied = prometheus.NewDesc("kengen_raft_applied_index",
		"Highest log index whose effect the store holds.", nil, nil)
	descLag = prometheus.NewDesc("kengen_raft_apply_lag_entries",
		"Committed log entries not applied yet on this node (commit_index - applied_index).", nil, nil)
)

// collector exports a Node's metrics; the gauges are read at scrape time.
type collector struct{ n *Node }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descCommit, descApplied, descLag} {
		ch <- d
	}
	for _, m := range c.n.metrics.collectors() {
		m.Describe(ch)
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.n.raft
	state := r.State()
	for _, s := range raftStates {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, stateLabel(s))
	}
	commit, applied := c.n.indexes()
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(r.CurrentTerm()))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(commit))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(applied))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(commit-applied))
	for _, m := range c.n.metrics.collectors() {
		m.Collect(ch)
	}
}

// stateLabel is raft's state in lower case ("leader", "follower", "candidate", "shutdown").
func stateLabel(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

// indexes returns the commit index this node knows and its applied index, with
// applied <= commit.
func (n *Node) indexes() (commit, applied uint64) {
	commit = n.raft.CommitIndex()
	return commit, min(n.appliedIndex(), commit)
}

// appliedIndex is the highest log index whose effect the store holds. It starts from the
// last entry the FSM applied (or the last snapshot, which holds everything before it) and
// steps over the entries that follow it and that raft has already handed on but that never
// reach the FSM (barriers of fully consistent reads, a new leader's no-op, configuration
// changes): without this, a node whose last entry is a barrier would look behind forever.
//
// The steps are bounded by the commit index, not by raft's AppliedIndex: raft hands a batch
// to the FSM goroutine (which answers a barrier's future) before it records the batch as
// applied, so right after a barrier returns AppliedIndex can still be one short of it. An
// entry that never reaches the FSM changes nothing in the store, so once every command
// before it is applied, the store holds its effect as soon as it is committed.
func (n *Node) appliedIndex() uint64 {
	applied := max(n.fsm.lastIndex.Load(), uint64(n.st.Revision()))
	if snap, err := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64); err == nil {
		applied = max(applied, snap)
	}
	committed := n.raft.CommitIndex()
	for next := applied + 1; next <= committed && next <= applied+maxSkip; next++ {
		var l raft.Log
		if err := n.logs.GetLog(next, &l); err != nil || l.Type == raft.LogCommand {
			break
		}
		applied = next
	}
	return applied
}

// readyLag is how many committed entries a ready node may still have to apply: one append's
// worth, so that a node keeping up under steady writes does not flap between ready and not.
const readyLag = 64

// readyTimeout bounds Ready's question to the leader.
const readyTimeout = 2 * time.Second

// Ready returns nil when the node may serve reads: it knows a leader and has applied the
// leader's commit index, within readyLag entries. A follower asks the leader for its commit
// index (its own is capped by the entries it has received, so it is low while it catches
// up); a follower that cannot reach the leader is not ready. Otherwise Ready returns
// ErrNotReady saying why. `kengen serve` answers /readyz with it.
func (n *Node) Ready() error {
	if n.raft.State() == raft.Shutdown {
		return fmt.Errorf("%w: raft on node %s is shut down", ErrNotReady, n.cfg.NodeID)
	}
	if err := n.fsm.stalledErr(); err != nil { // diskfull.go
		return fmt.Errorf("%w: node %s cannot apply committed entries: %w", ErrNotReady, n.cfg.NodeID, err)
	}
	if n.Leader() == "" {
		return fmt.Errorf("%w: node %s knows no leader", ErrNotReady, n.cfg.NodeID)
	}
	commit, applied := n.indexes()
	if !n.IsLeader() {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		addr, err := n.leaderGRPC(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, err)
		}
		var r adminReply
		if err := n.peers.call(ctx, addr, methodStatus, nil, &r); err != nil {
			return fmt.Errorf("%w: asking the leader for its commit index: %w", ErrNotReady, err)
		}
		if r.Status != nil {
			commit = max(commit, r.Status.CommitIndex)
		}
	}
	if applied+readyLag < commit {
		return fmt.Errorf("%w: node %s has applied log index %d of %d committed", ErrNotReady, n.cfg.NodeID, applied, commit)
	}
	return nil
}

// registerMetrics registers the node's collector on reg and starts counting (and logging)
// leader changes.
func (n *Node) registerMetrics(reg prometheus.Registerer) error {
	if reg != nil {
		if err := reg.Register(collector{n}); err != nil {
			return fmt.Errorf("raftnode: registering node %s's metrics: %w", n.cfg.NodeID, err)
		}
	}
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.raft.DeregisterObserver(obs)
		for {
			select {
			case o := <-ch:
				lo, ok := o.Data.(raft.LeaderObservation)
				if !ok {
					continue
				}
				n.logLeadership(lo) // raftlog.go
				if lo.LeaderID != "" {
					n.metrics.leaderChanges.Inc()
				}
			case <-n.stop:
				return
			}
		}
	}()
	return nil
}

// unregisterMetrics undoes registerMetrics' registration (Close).
func (n *Node) unregisterMetrics() {
	if n.cfg.Registerer != nil {
		n.cfg.Registerer.Unregister(collector{n})
	}
}

// countingWriter and countingReader measure a snapshot's size as it streams.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// since returns the seconds elapsed since t.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
