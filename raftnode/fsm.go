package raftnode

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kengen/kengen/store"
)

// fsm is the thin adapter between raft and store: an entry's index is its revision, its
// command goes to store.Apply or store.WriteSchema with the entry's identity (index and
// term), and an entry at or below the store's applied revision is skipped only when it is a
// replay of what the store applied (see Apply), which makes applying idempotent. It also
// keeps the members' gRPC addresses, which travel in snapshots.
type fsm struct {
	st  *store.Store
	log *slog.Logger
	// restores counts completed snapshot restores (tests).
	restores atomic.Int64
	// lastIndex is the index of the last entry Apply handled (metrics.go: appliedIndex).
	lastIndex atomic.Uint64
	// metrics are updated by Apply, Persist and Restore (metrics.go).
	metrics *metrics
	// logMatchesStore is set by Open once checkLog found the store's applied entry in the
	// log (or covered by the snapshot raft starts from), and after a Restore: the entries
	// below the applied revision that raft replays are then the ones the store applied.
	// Only the FSM goroutine reads it after raft starts.
	logMatchesStore bool
	// damaged is set when an entry at or below the applied revision is not the entry the
	// store applied: the log and the store disagree, and the FSM applies nothing more. Only
	// the FSM goroutine reads and writes it.
	damaged error
	// stop is the node's: closed when it stops, which ends a wait for disk space.
	stop <-chan struct{}
	// stalled is the store's ErrDiskFull while Apply waits for space (diskfull.go), nil
	// otherwise; stopped is set when the node stopped during such a wait: no later entry
	// is applied (nor a snapshot taken) by this process.
	stalled atomic.Pointer[error]
	stopped atomic.Bool
	// snapDir is raft's directory, where snapshots are written (snapshotRoom).
	snapDir string

	// applied is signalled (closed and replaced) after every apply and restore.
	mu struct {
		sync.Mutex
		members map[string]string // node id → gRPC address
		applied chan struct{}
	}
}

// applyResult is what fsm.Apply returns to raft, and raft hands to the proposer's future.
type applyResult struct {
	res store.Result
	err error
}

func newFSM(st *store.Store, log *slog.Logger, stop <-chan struct{}) *fsm {
	f := &fsm{st: st, log: log, metrics: newMetrics(), stop: stop}
	f.mu.members = map[string]string{}
	f.mu.applied = make(chan struct{})
	return f
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if f.stopped.Load() {
		return applyResult{err: errHalted}
	}
	defer f.signal()
	// metrics hook: apply latency and the applied index.
	defer func(start time.Time) {
		// An entry refused for a damaged log, or left when the node stopped waiting for disk
		// space (diskfull.go), was not applied.
		if !f.stopped.Load() && f.damaged == nil {
			f.lastIndex.Store(l.Index)
		}
		f.metrics.applyDuration.Observe(since(start))
	}(time.Now())
	rev := store.Revision(l.Index)
	cmd, err := DecodeCommand(l.Data)
	if errors.Is(err, ErrNewerCommand) {
		// Skipping it would leave this node's store behind every upgraded node's for good:
		// stop here, loudly, so that the node is upgraded (docs/raft.md: upgrades).
		panic(fmt.Sprintf("raftnode: entry %d: %v; upgrade this node to the cluster's kengen version", l.Index, err))
	}
	if err != nil {
		// A malformed entry of a version this build reads: every node running this build
		// decodes the same bytes the same way, so all skip it alike.
		f.log.Error("raftnode: skipping an entry", "index", l.Index, "error", err)
		return applyResult{err: err}
	}
	if f.damaged != nil {
		return applyResult{err: f.damaged}
	}
	entry := store.Entry{Index: rev, Term: l.Term}
	if applied := f.st.AppliedEntry(); rev <= applied.Index {
		if !f.isReplay(entry, applied) {
			// Acknowledging it would report a write this store never made (issue 11: a log
			// truncated below the store handed out its old indexes again). Refuse it and
			// everything after it; at the next start checkLog refuses the node.
			f.damaged = fmt.Errorf("%w: entry %d (term %d) is at or below the store's applied revision %d (term %d) but is not the entry the store applied; this node applies nothing more until it is repaired",
				ErrDamagedLog, rev, l.Term, applied.Index, applied.Term)
			f.log.Error(f.damaged.Error())
			return applyResult{err: f.damaged}
		}
		if cmd.Kind == KindMember {
			f.setMember(cmd.Member)
		}
		return applyResult{res: store.Result{Revision: rev}}
	}
	if cmd.Kind == KindMember {
		f.setMember(cmd.Member)
	}
	// The store refuses an entry for want of space before writing anything; that refusal is
	// this node's, not the entry's, so the entry is retried until space returns (diskfull.go).
	return f.whenSpace(func() applyResult {
		switch cmd.Kind {
		case KindSchema:
			err := f.st.WriteSchema(entry, cmd.At, cmd.Schema)
			return applyResult{res: store.Result{Revision: rev}, err: err}
		case KindBatch:
			res, err := f.st.Apply(entry, cmd.At, cmd.Batch)
			return applyResult{res: res, err: err}
		default: // KindMember: advance the revision only
			res, err := f.st.Apply(entry, cmd.At, &store.Batch{})
			return applyResult{res: res, err: err}
		}
	})
}

// isReplay reports whether e, at or below the store's applied entry, is one the store has
// applied. The applied entry itself is recognised by its term (a store written before terms
// were recorded has term 0 and is taken at its index). An earlier entry cannot be compared,
// as the store keeps only the latest entry's identity; it is a replay when the log holds the
// store's applied entry (logMatchesStore, checked at Open): by raft's log matching property
// two logs that agree on an entry agree on every entry before it.
func (f *fsm) isReplay(e, applied store.Entry) bool {
	if e.Index == applied.Index {
		return applied.Term == 0 || applied.Term == e.Term
	}
	return f.logMatchesStore
}

func (f *fsm) setMember(m Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.members[m.ID] = m.GRPCAddr
}

func (f *fsm) member(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.members[id]
}

func (f *fsm) members() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.mu.members))
	for k, v := range f.mu.members {
		out[k] = v
	}
	return out
}

// signal wakes everyone waiting for an applied revision.
func (f *fsm) signal() {
	f.mu.Lock()
	close(f.mu.applied)
	f.mu.applied = make(chan struct{})
	f.mu.Unlock()
}

// changed returns a channel closed at the next apply or restore.
func (f *fsm) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.applied
}

// The snapshot stream: snapshotMagic, the store revision (8 bytes, big endian), the length
// (4 bytes) of a JSON object {"members": {id: grpc_addr}}, that object, then the store's
// checkpoint (store.Checkpoint.WriteTo).
const snapshotMagic = "kengen-snapshot/1\n"

type snapshotHeader struct {
	Members map[string]string `json:"members"`
}

// Snapshot implements raft.FSM. It runs between applies, so the checkpoint holds exactly the
// entries applied so far; Persist streams it while applies go on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if f.stopped.Load() { // the store is behind the entries raft counts as applied
		return nil, errHalted
	}
	if f.damaged != nil {
		return nil, f.damaged
	}
	if err := f.snapshotRoom(); err != nil { // diskfull.go
		return nil, err
	}
	start := time.Now()
	cp, err := f.st.Checkpoint()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{cp: cp, members: f.members(), metrics: f.metrics, start: start}, nil
}

type fsmSnapshot struct {
	cp      *store.Checkpoint
	members map[string]string
	metrics *metrics
	start   time.Time // when Snapshot began (metrics)
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	cw := &countingWriter{w: sink}
	err := s.write(cw)
	if err != nil {
		return errors.Join(err, sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return err
	}
	// metrics hook: a snapshot taken.
	s.metrics.snapshotDuration.Observe(since(s.start))
	s.metrics.snapshotSize.Set(float64(cw.n))
	return nil
}

func (s *fsmSnapshot) write(w io.Writer) error {
	hdr, err := json.Marshal(snapshotHeader{Members: s.members})
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	b := append([]byte(snapshotMagic), make([]byte, 12)...)
	binary.BigEndian.PutUint64(b[len(snapshotMagic):], uint64(s.cp.Revision))
	binary.BigEndian.PutUint32(b[len(snapshotMagic)+8:], uint32(len(hdr)))
	if _, err := bw.Write(append(b, hdr...)); err != nil {
		return err
	}
	if _, err := s.cp.WriteTo(bw); err != nil {
		return err
	}
	return bw.Flush()
}

func (s *fsmSnapshot) Release() {
	_ = s.cp.Close()
}

// readSnapshotHeader reads the header of a snapshot stream, leaving r at the checkpoint.
func readSnapshotHeader(r io.Reader) (store.Revision, snapshotHeader, error) {
	var hdr snapshotHeader
	b := make([]byte, len(snapshotMagic)+12)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, hdr, fmt.Errorf("%w: reading the header: %w", ErrSnapshot, err)
	}
	if string(b[:len(snapshotMagic)]) != snapshotMagic {
		return 0, hdr, fmt.Errorf("%w: not a kengen snapshot", ErrSnapshot)
	}
	rev := store.Revision(binary.BigEndian.Uint64(b[len(snapshotMagic):]))
	n := binary.BigEndian.Uint32(b[len(snapshotMagic)+8:])
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return 0, hdr, fmt.Errorf("%w: reading the header: %w", ErrSnapshot, err)
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return 0, hdr, fmt.Errorf("%w: header: %w", ErrSnapshot, err)
	}
	return rev, hdr, nil
}

// Restore implements raft.FSM: it replaces the store with the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	defer f.signal()
	start := time.Now()
	cr := &countingReader{r: rc}
	br := bufio.NewReaderSize(cr, 1<<20)
	_, hdr, err := readSnapshotHeader(br)
	if err != nil {
		return err
	}
	if err := f.st.Restore(br); err != nil {
		return err
	}
	// The store is now the snapshot's, and raft goes on from the snapshot's index.
	f.logMatchesStore, f.damaged = true, nil
	f.restores.Add(1)
	// metrics hook: a snapshot restored.
	f.metrics.restoreDuration.Observe(since(start))
	f.metrics.snapshotSize.Set(float64(cr.n))
	f.mu.Lock()
	for id, addr := range hdr.Members {
		f.mu.members[id] = addr
	}
	f.mu.Unlock()
	return nil
}
