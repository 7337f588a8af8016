// Package raftnode replicates kengen's writes through hashicorp/raft into the store of every
// node. Each log entry is one Command (command.go); the FSM (fsm.go) is a thin adapter that
// hands it to store with revision = log index. Writes reaching a follower are forwarded to the
// leader over a small cluster gRPC service (service.go), which also serves read barriers,
// membership and status.
//
// This file is the front door: Config, Open, Node and its methods. Apply is the one door
// into the log: it returns the FSM's own error (a failed precondition, a limit) through the
// error value.
package raftnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/kengen/kengen/store"
)

// DefaultSegmentSize is the size of a raft log segment when Config.SegmentSize is 0: small
// enough that a node starts on a 64 MiB filesystem (raft-wal's own default, 64 MiB, is
// allocated whole at start) and that the free-space minimum (store.Options.MinFreeBytes, at
// least 16 MiB) always holds the next segment; docs/raft.md has the write throughput measured
// with both sizes.
const DefaultSegmentSize = 8 << 20

// Config configures a Node. NodeID, RaftAddr, Dir and Store are required.
type Config struct {
	// NodeID names this node in the cluster; it must not change across restarts.
	NodeID string
	// RaftAddr is the address the raft transport listens on and other nodes reach it at
	// (host:port; port 0 picks a free one, for tests).
	RaftAddr string
	// GRPCAddr is this node's gRPC address, recorded in the log so that the others can
	// forward writes to it when it leads.
	GRPCAddr string
	// Dir holds raft's log (raft-wal) and snapshots.
	Dir string
	// Store is the store the FSM applies to. The Node does not close it.
	Store *store.Store
	// Bootstrap makes a node without raft state the only voter of a new cluster.
	Bootstrap bool
	// Token is the bearer token sent with cluster RPCs to other nodes (their preshared key).
	Token string
	// DialOptions are used to reach other nodes' gRPC; nil is PeerDialOptions(TLS) when TLS
	// is set, plaintext otherwise.
	DialOptions []grpc.DialOption
	// TLS, when set, secures the raft transport: mutual TLS (LoadTLS), so that only nodes
	// whose certificates the cluster's CA signed can exchange raft messages. Nil is plain TCP.
	TLS *tls.Config
	// ServerAddressProvider, when set, is asked for the address to dial for each peer
	// (by server id) instead of the address in the raft configuration; an error falls back
	// to that address. Fault tests use it to route each direction of each link through its
	// own proxy. Nil dials the configured addresses.
	ServerAddressProvider raft.ServerAddressProvider

	// SnapshotThreshold, TrailingLogs, SnapshotInterval tune log compaction; 0 is raft's
	// default (8192 entries, 10240 trailing, 120 s).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	// SegmentSize is the size of raft-wal's log segments; 0 is DefaultSegmentSize. Each
	// segment is allocated whole when it is created, and the log is compacted by whole
	// segments, so tests shrink it to see entries really go.
	SegmentSize int
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout: 0 is raft's default (1 s, 1 s,
	// 500 ms). Tests shorten them.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// ApplyTimeout bounds a write that has no deadline of its own; 0 is 30 s.
	ApplyTimeout time.Duration
	// Logger receives raft's warnings and errors at their own levels, and the node's
	// elections and leadership at info; nil is slog.Default().
	Logger *slog.Logger
	// Registerer receives the node's kengen_raft_* metrics (metrics.go); nil registers none.
	// Close unregisters them.
	Registerer prometheus.Registerer
}

// Node is one member of a kengen cluster.
type Node struct {
	cfg   Config
	st    *store.Store
	raft  *raft.Raft
	fsm   *fsm
	wal   *walLog     // raft-wal behind a free-space floor (wallog.go)
	logs  *checkedLog // wal with per-entry checksums (logstore.go)
	trans *drainingTransport
	peers *peers
	log   *slog.Logger
	// metrics is fsm's, shared by the node's own hooks (metrics.go).
	metrics *metrics
	// testApplyErr, set only by tests (export_test.go), makes the leader answer a write with
	// its error instead of proposing it.
	testApplyErr atomic.Pointer[func() error]

	// clockEntries counts the clock entries this node proposed (clock.go).
	clockEntries atomic.Int64

	// leaderReads and followerReads share read barriers among concurrent readers, lb is the
	// leader's state for them (readbarrier.go).
	leaderReads, followerReads *sharedBarrier
	lb                         leaderBarrier
	// fwd holds the forwarders of writes to the leader, by its address (forward.go).
	fwd struct {
		mu struct {
			sync.Mutex
			by map[string]*forwarder
		}
	}

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open starts the node: it opens raft's log and snapshots in cfg.Dir, listens on
// cfg.RaftAddr, and bootstraps a cluster when cfg.Bootstrap is set and there is no state yet.
// A node restarting skips restoring its latest snapshot when its store already holds it.
// Before raft starts, the log is checked against the store (checkLog): a damaged log is
// refused with ErrDamagedLog, naming the directory, what is damaged and the indexes.
func Open(cfg Config) (*Node, error) {
	if cfg.NodeID == "" || cfg.RaftAddr == "" || cfg.Dir == "" || cfg.Store == nil {
		return nil, errors.New("raftnode: Config.NodeID, RaftAddr, Dir and Store are required")
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 30 * time.Second
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{cfg: cfg, st: cfg.Store, log: cfg.Logger, stop: make(chan struct{})}
	n.fsm = newFSM(cfg.Store, cfg.Logger, n.stop)
	n.fsm.snapDir = cfg.Dir
	n.metrics = n.fsm.metrics
	n.leaderReads = n.newSharedBarrier(n.confirmLeader)
	n.followerReads = n.newSharedBarrier(n.askLeader)
	n.fwd.mu.by = map[string]*forwarder{}
	if cfg.DialOptions == nil && cfg.TLS != nil {
		cfg.DialOptions = PeerDialOptions(cfg.TLS)
	}
	n.peers = newPeers(cfg.Token, cfg.DialOptions)
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "wal"), 0o700); err != nil {
		return nil, fmt.Errorf("raftnode: %w", err)
	}
	hlog := newRaftLogger(cfg.NodeID, cfg.Logger)
	var err error
	if n.wal, err = openWALLog(filepath.Join(cfg.Dir, "wal"), cfg.SegmentSize); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("raftnode: opening the raft log: %w", err)
		}
		// A segment missing or unreadable: raft-wal does not say which, and either way the
		// log cannot be trusted.
		applied := cfg.Store.AppliedEntry()
		return nil, fmt.Errorf("%w in %s: raft-wal cannot open it: %w; the store has applied revision %d (term %d), the log cannot be read",
			ErrDamagedLog, cfg.Dir, err, applied.Index, applied.Term)
	}
	if n.logs, err = openCheckedLog(n.wal, cfg.Logger); err != nil {
		return nil, errors.Join(err, n.closeLog())
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("raftnode: snapshots: %w", err), n.closeLog())
	}
	restore, err := n.needsRestore(snaps)
	if err != nil {
		return nil, errors.Join(err, n.closeLog())
	}
	if err := checkLog(cfg.Dir, n.logs, snaps, n.st); err != nil {
		return nil, errors.Join(err, n.closeLog())
	}
	n.fsm.logMatchesStore = true
	n.logs.appended = func(commands int) { n.metrics.appendCommands.Observe(float64(commands)) }
	if n.trans, err = newTransport(cfg, hlog); err != nil {
		return nil, errors.Join(fmt.Errorf("raftnode: raft transport on %s: %w", cfg.RaftAddr, err), n.closeLog())
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.NoSnapshotRestoreOnStart = !restore
	// Group commit: the leader drains up to MaxAppendEntries waiting Applies into one log
	// append (one fsync); a buffered apply channel lets them queue while it writes.
	rc.BatchApplyCh = true
	setNonZero(&rc.SnapshotThreshold, cfg.SnapshotThreshold)
	setNonZero(&rc.TrailingLogs, cfg.TrailingLogs)
	setNonZero(&rc.SnapshotInterval, cfg.SnapshotInterval)
	setNonZero(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setNonZero(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setNonZero(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)

	has, err := raft.HasExistingState(n.logs, n.logs, snaps)
	if err != nil {
		return nil, errors.Join(err, n.trans.Close(), n.closeLog())
	}
	if cfg.Bootstrap && !has {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, n.logs, n.logs, snaps, n.trans, conf); err != nil {
			return nil, errors.Join(fmt.Errorf("raftnode: bootstrap: %w", err), n.trans.Close(), n.closeLog())
		}
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, n.logs, n.logs, snaps, n.trans); err != nil {
		return nil, errors.Join(fmt.Errorf("raftnode: %w", err), n.trans.Close(), n.closeLog())
	}
	if err := n.registerMetrics(cfg.Registerer); err != nil {
		n.cfg.Registerer = nil // nothing of this node's is registered
		return nil, errors.Join(err, n.Close())
	}
	if cfg.GRPCAddr != "" {
		n.wg.Add(1)
		go n.register()
	}
	n.wg.Add(1)
	go n.runClock()
	return n, nil
}

// newTransport is raft's TCP transport, over TLS when cfg.TLS is set.
func newTransport(cfg Config, hlog hclog.Logger) (*drainingTransport, error) {
	tc := &raft.NetworkTransportConfig{ServerAddressProvider: cfg.ServerAddressProvider, Logger: hlog,
		MaxPool: 3, Timeout: 10 * time.Second}
	if cfg.TLS == nil {
		nt, err := raft.NewTCPTransportWithConfig(cfg.RaftAddr, nil, tc)
		if err != nil {
			return nil, err
		}
		return &drainingTransport{NetworkTransport: nt}, nil
	}
	stream, err := newTLSStream(cfg.RaftAddr, cfg.TLS)
	if err != nil {
		return nil, err
	}
	tc.Stream = stream
	return &drainingTransport{NetworkTransport: raft.NewNetworkTransportWithConfig(tc)}, nil
}

func setNonZero[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// needsRestore reads the header of the latest snapshot: raft restores it on start only when
// the store is behind it (a fresh store, or a restore a crash interrupted). The members it
// lists are loaded either way.
func (n *Node) needsRestore(snaps *raft.FileSnapshotStore) (bool, error) {
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return false, err
	}
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		return false, fmt.Errorf("raftnode: opening snapshot %s: %w", list[0].ID, err)
	}
	defer rc.Close()
	rev, hdr, err := readSnapshotHeader(rc)
	if err != nil {
		return false, err
	}
	for id, addr := range hdr.Members {
		n.fsm.setMember(Member{ID: id, GRPCAddr: addr})
	}
	return n.st.Revision() < rev, nil
}

func (n *Node) closeLog() error {
	return n.wal.Close()
}

// register records this node's gRPC address in the log until the log holds it.
func (n *Node) register() {
	defer n.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if n.fsm.member(n.cfg.NodeID) == n.cfg.GRPCAddr {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		go func() {
			select {
			case <-n.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		_, err := n.Apply(ctx, &Command{Kind: KindMember, Member: Member{ID: n.cfg.NodeID, GRPCAddr: n.cfg.GRPCAddr}})
		cancel()
		if err == nil {
			return
		}
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// Close leaves the cluster running without this node: it stops raft, the transport and the
// log. The store stays open.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.unregisterMetrics()
		close(n.stop)
		n.wg.Wait()
		err := n.raft.Shutdown().Error()
		n.trans.drain() // no heartbeat of raft's writes to the log after this (transport.go)
		n.closeErr = errors.Join(err, n.trans.Close(), n.closeLog(), n.peers.close())
	})
	return n.closeErr
}

// RaftAddr is the address the raft transport listens on.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the id of the leader this node knows, "" if none.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Apply is the one door into the log. It proposes cmd (on the leader, or forwarded to it),
// waits until the entry is committed and applied on the node that proposed it, and returns
// the store's result and the store's own error for it. A zero cmd.At is set to now.
func (n *Node) Apply(ctx context.Context, cmd *Command) (store.Result, error) {
	if cmd.At.IsZero() {
		cmd.At = time.Now().UTC()
	}
	data, err := cmd.Encode()
	if err != nil {
		return store.Result{}, err
	}
	if len(data) > MaxCommandBytes {
		return store.Result{}, fmt.Errorf("%w: the write encodes to %.1f MiB, more than the %.1f MiB a node can forward to its leader: split it into smaller writes", ErrTooLarge, float64(len(data))/(1<<20), float64(MaxCommandBytes)/(1<<20))
	}
	return n.applyEncoded(ctx, data)
}

// MaxCommandBytes bounds one encoded command: a follower forwards it to the leader in one
// gRPC message, whose default bound on the receiving side is 4 MiB, less room for the
// message's framing and metadata. Every node refuses a larger write (ErrTooLarge), so a write
// is refused or not whichever node takes it.
const MaxCommandBytes = 4<<20 - 64<<10

// applyEncoded proposes data on the leader, or forwards it to the leader, and waits out the
// moments when there is none (an election, a leader whose gRPC address is not known yet, one
// that cannot be reached): a write that was not proposed is tried again as leadership
// changes, until the request's deadline (less a reply margin, so that the caller hears why).
// A write that was proposed is never proposed again: if its outcome is unknown the error
// says so.
func (n *Node) applyEncoded(ctx context.Context, data []byte) (store.Result, error) {
	// A node whose disk is (nearly) full says so rather than propose or forward an entry its
	// log or its store cannot take; the leader checks again for a forwarded write.
	if err := n.st.CheckFreeSpace(n.cfg.Dir); err != nil {
		return store.Result{}, fmt.Errorf("raftnode: node %s: %w", n.cfg.NodeID, err)
	}
	ctx, cancel := n.untilGiveUp(ctx)
	defer cancel()
	var wait leaderWait
	for {
		var (
			res store.Result
			err error
		)
		if n.IsLeader() {
			res, err = n.applyLocal(ctx, data)
		} else if addr, aerr := n.leaderGRPC(ctx); aerr != nil {
			err = aerr
		} else {
			res, err = n.forwarderFor(addr).apply(ctx, data) // forward.go

		}
		if !errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnavailable) {
			return res, err
		}
		if werr := wait.next(ctx, n.stop, err); werr != nil {
			return store.Result{}, werr
		}
	}
}

// applyLocal proposes data on this node, which must lead: the cluster service's Apply (a
// write another node forwarded) answers ErrNoLeader otherwise, and the forwarding node tries
// again, rather than forward it once more.
func (n *Node) applyLocal(ctx context.Context, data []byte) (store.Result, error) {
	if err := n.proposable(); err != nil {
		return store.Result{}, err
	}
	return n.applied(ctx, n.raft.Apply(data, n.timeout(ctx)))
}

// proposable returns nil when this node may propose a write now: it leads and has space.
func (n *Node) proposable() error {
	if err := n.st.CheckFreeSpace(n.cfg.Dir); err != nil {
		return fmt.Errorf("raftnode: node %s: %w", n.cfg.NodeID, err)
	}
	if !n.IsLeader() {
		return fmt.Errorf("%w: node %s does not lead", ErrNoLeader, n.cfg.NodeID)
	}
	if fn := n.testApplyErr.Load(); fn != nil { // tests only (export_test.go)
		if err := (*fn)(); err != nil {
			return err
		}
	}
	return nil
}

// applied waits for a proposed entry and returns the store's result and error for it.
func (n *Node) applied(ctx context.Context, f raft.ApplyFuture) (store.Result, error) {
	if err := wait(ctx, f); err != nil {
		if isDiskFull(err) { // the log's append met a full disk: the leader stepped down
			return store.Result{}, fmt.Errorf("raftnode: node %s: %w: writing the raft log in %s: %w", n.cfg.NodeID, store.ErrDiskFull, n.cfg.Dir, err)
		}
		return store.Result{}, raftErr(err)
	}
	r, ok := f.Response().(applyResult)
	if !ok {
		return store.Result{}, fmt.Errorf("raftnode: unexpected apply response %T", f.Response())
	}
	return r.res, r.err
}

// untilGiveUp is ctx with the deadline by which Apply and ReadIndex stop waiting for a leader:
// the request's deadline (else ApplyTimeout from now) less a twentieth of the time left, at
// most 250 ms, so that the answer reaches a remote caller before its own deadline does.
func (n *Node) untilGiveUp(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(n.cfg.ApplyTimeout)
	}
	margin := min(time.Until(deadline)/20, 250*time.Millisecond)
	return context.WithDeadline(ctx, deadline.Add(-margin))
}

// leaderWait paces the retries of a request that found no leader: it polls raft's state with
// a backoff from 5 ms to 100 ms.
type leaderWait struct{ delay time.Duration }

// next waits before the next try. It returns ErrUnavailable (wrapping why there was no
// leader) once ctx ends or the node stops: the request was not proposed.
func (w *leaderWait) next(ctx context.Context, stop <-chan struct{}, why error) error {
	w.delay = min(max(2*w.delay, 5*time.Millisecond), 100*time.Millisecond)
	t := time.NewTimer(w.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("%w (it was not applied): %w", ctx.Err(), why)
		}
		return fmt.Errorf("%w: no leader took the request before its deadline (it was not applied): %w", ErrUnavailable, why)
	case <-stop:
		return fmt.Errorf("%w: the node is stopping (the request was not applied): %w", ErrUnavailable, why)
	}
}

func (n *Node) timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return n.cfg.ApplyTimeout
}

// wait waits for f or ctx.
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w (the write may still be applied)", ErrUnavailable, ctx.Err())
	}
}

// raftErr sorts raft's errors about leadership: those raft returns before it appends the
// entry (this node does not lead, a transfer is under way, the queue is full) are ErrNoLeader,
// which Apply waits out; those after it (leadership lost, raft shut down, a restore) are
// ErrUnavailable, with an outcome nobody knows yet.
func raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w (the write may have been applied)", ErrUnavailable, err)
	}
	return err
}

// leaderGRPC returns the leader's gRPC address, once a connection to it is up: ErrNoLeader
// when no leader is known, its address is not known yet, or it cannot be reached, so that
// nothing is sent to a leader that is gone.
func (n *Node) leaderGRPC(ctx context.Context) (string, error) {
	id := n.Leader()
	if id == "" {
		return "", fmt.Errorf("%w: no leader is known to node %s", ErrNoLeader, n.cfg.NodeID)
	}
	addr := n.fsm.member(id)
	if addr == "" {
		return "", fmt.Errorf("%w: the gRPC address of leader %s is not known yet", ErrNoLeader, id)
	}
	if err := n.peers.connected(ctx, addr); err != nil {
		return "", fmt.Errorf("%w: leader %s at %s: %w", ErrNoLeader, id, addr, err)
	}
	return addr, nil
}

// WaitApplied waits until the local store has applied rev, or ctx ends: the store's own wait
// (store.Applied), the one every reader uses.
func (n *Node) WaitApplied(ctx context.Context, rev store.Revision) error {
	return n.st.WaitApplied(ctx, rev)
}

// ReadIndex is the read barrier of fully consistent reads: it returns a revision at least as
// new as every write acknowledged before the call. Concurrent callers share one leadership
// confirmation (readbarrier.go): on the leader, a heartbeat round to a quorum after reading
// the commit index; on a follower, one call to the leader for all of them.
func (n *Node) ReadIndex(ctx context.Context) (store.Revision, error) {
	ctx, cancel := n.untilGiveUp(ctx)
	defer cancel()
	var wait leaderWait
	for {
		var (
			rev store.Revision
			err error
		)
		if n.IsLeader() {
			rev, err = n.leaderReads.wait(ctx)
		} else {
			rev, err = n.followerReads.wait(ctx)
		}
		// A barrier changes nothing: it may be tried again after any failure of leadership.
		if err == nil || !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrUnavailable) {
			return rev, err
		}
		if werr := wait.next(ctx, n.stop, err); werr != nil {
			return 0, werr
		}
	}
}

// readIndexLocal is the barrier on this node, which must lead (ErrNoLeader otherwise): the
// cluster service's ReadIndex, which a follower calls for its readers, joins the leader's
// next shared round.
func (n *Node) readIndexLocal(ctx context.Context) (store.Revision, error) {
	if !n.IsLeader() {
		return 0, fmt.Errorf("%w: node %s does not lead", ErrNoLeader, n.cfg.NodeID)
	}
	return n.leaderReads.wait(ctx)
}

// askLeader is one round of a follower's shared barrier: one ReadIndex call to the leader.
func (n *Node) askLeader(ctx context.Context) (store.Revision, error) {
	if n.IsLeader() {
		return 0, fmt.Errorf("%w: node %s leads now", ErrNoLeader, n.cfg.NodeID)
	}
	addr, err := n.leaderGRPC(ctx)
	if err != nil {
		return 0, err
	}
	n.metrics.forwardedReadBarriers.Inc()
	return n.peers.readIndex(ctx, addr)
}

// MemberStatus describes one member of the configuration.
type MemberStatus struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	GRPCAddr string `json:"grpc_addr"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

// Status is one node's view of the cluster.
type Status struct {
	ID          string         `json:"id"`
	State       string         `json:"state"`
	Leader      string         `json:"leader"`
	Term        uint64         `json:"term"`
	Applied     uint64         `json:"applied_revision"`
	CommitIndex uint64         `json:"commit_index"`
	LastIndex   uint64         `json:"last_index"`
	Members     []MemberStatus `json:"members"`
}

// Status returns this node's view of the cluster.
func (n *Node) Status() (Status, error) {
	s := Status{ID: n.cfg.NodeID, State: n.raft.State().String(), Leader: n.Leader(),
		Applied: uint64(n.st.Revision()), CommitIndex: n.raft.CommitIndex(), LastIndex: n.raft.LastIndex()}
	if _, err := fmt.Sscan(n.raft.Stats()["term"], &s.Term); err != nil {
		s.Term = 0
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return s, err
	}
	for _, srv := range f.Configuration().Servers {
		s.Members = append(s.Members, MemberStatus{ID: string(srv.ID), RaftAddr: string(srv.Address),
			GRPCAddr: n.fsm.member(string(srv.ID)), Voter: srv.Suffrage == raft.Voter, Leader: string(srv.ID) == s.Leader})
	}
	return s, nil
}

// AddVoter adds a node as a voter (on the leader; a follower forwards) and records its gRPC
// address.
func (n *Node) AddVoter(ctx context.Context, id, raftAddr, grpcAddr string) error {
	if !n.IsLeader() {
		addr, err := n.leaderGRPC(ctx)
		if err != nil {
			return err
		}
		return n.peers.admin(ctx, addr, methodJoin, adminRequest{ID: id, RaftAddr: raftAddr, GRPCAddr: grpcAddr})
	}
	if err := wait(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, n.timeout(ctx))); err != nil {
		return fmt.Errorf("%w: adding %s at %s: %w", ErrMembership, id, raftAddr, raftErr(err))
	}
	if grpcAddr != "" {
		if _, err := n.Apply(ctx, &Command{Kind: KindMember, Member: Member{ID: id, GRPCAddr: grpcAddr}}); err != nil {
			return err
		}
	}
	return nil
}

// Join asks the member at grpcAddr (any member) to add this node as a voter.
func (n *Node) Join(ctx context.Context, grpcAddr string) error {
	return n.peers.admin(ctx, grpcAddr, methodJoin, adminRequest{ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), GRPCAddr: n.cfg.GRPCAddr})
}

// RemoveServer removes a member (on the leader; a follower forwards).
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		addr, err := n.leaderGRPC(ctx)
		if err != nil {
			return err
		}
		return n.peers.admin(ctx, addr, methodRemove, adminRequest{ID: id})
	}
	if err := wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, n.timeout(ctx))); err != nil {
		return fmt.Errorf("%w: removing %s: %w", ErrMembership, id, raftErr(err))
	}
	return nil
}

// TransferLeadership hands leadership to the member id, or to any voter when id is "".
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	if !n.IsLeader() {
		addr, err := n.leaderGRPC(ctx)
		if err != nil {
			return err
		}
		return n.peers.admin(ctx, addr, methodTransfer, adminRequest{ID: id})
	}
	var f raft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		var addr raft.ServerAddress
		cf := n.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return err
		}
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == id {
				addr = s.Address
			}
		}
		if addr == "" {
			return fmt.Errorf("%w: %s is not a member", ErrMembership, id)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	if err := wait(ctx, f); err != nil {
		return fmt.Errorf("%w: transferring leadership: %w", ErrMembership, raftErr(err))
	}
	return nil
}

// Snapshot takes a raft snapshot now (and compacts the log). Tests use it.
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }
