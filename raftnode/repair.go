package raftnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/kengen/kengen/store"
)

// The repairs of a damaged raft log (ErrDamagedLog). Both run on a stopped node: they move
// the raft directory aside (nothing is deleted) and write a new one that keeps raft's
// stable-store values — the current term and the vote cast in it — so that the node cannot
// vote twice in a term it already voted in.

// stableKeys are raft's stable-store keys (raft.go in hashicorp/raft), copied byte for byte.
var stableKeys = [][]byte{[]byte("CurrentTerm"), []byte("LastVoteTerm"), []byte("LastVoteCand")}

// Repaired describes a repair.
type Repaired struct {
	// Aside is where the damaged raft directory was moved.
	Aside string
	// From is the store's applied entry the new log starts after (RepairFromStore); zero for
	// RepairFromCluster.
	From store.Entry
	// Term is the current term the new log keeps.
	Term uint64
}

// RepairFromStore restarts the raft log in dir from the store's state, for a node whose store
// is intact and that is the only member of its cluster: the damaged directory is moved aside,
// and the new log is empty after a raft snapshot of the store at its applied entry (index and
// term) whose configuration is this node alone (nodeID at raftAddr). Writes after it get
// indexes above the store's applied revision. The caller has opened st (which verifies its
// checksums) and keeps it open; the node is not running.
func RepairFromStore(dir string, st *store.Store, nodeID, raftAddr string) (Repaired, error) {
	applied := st.AppliedEntry()
	stable, err := readStable(dir)
	lost := errors.Is(err, os.ErrNotExist)
	if err != nil && !lost {
		return Repaired{}, err
	}
	if !lost {
		if others, _ := otherMembers(dir, nodeID); len(others) > 0 {
			return Repaired{}, fmt.Errorf("%w: the latest configuration in %s also lists %v; repair the node from the cluster instead", ErrNotSingleNode, dir, others)
		}
	}
	// A lost raft directory has no term or vote to keep; for a single node that is safe
	// (there is no one else to vote for).
	r := Repaired{From: applied, Term: max(stableTerm(stable), applied.Term, 1)}
	// A store written before terms were recorded: the entry's term is unknown, and the
	// current term is at least as new as any entry's.
	term := applied.Term
	if term == 0 {
		term = r.Term
	}
	if !lost {
		if r.Aside, err = moveAside(dir); err != nil {
			return r, err
		}
	}
	logs, meta, err := newLog(dir, stable, r.Term)
	if err != nil {
		return r, err
	}
	defer func() { _ = errors.Join(logs.Close(), meta.Close()) }()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		return r, fmt.Errorf("raftnode: repair: snapshots in %s: %w", dir, err)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(nodeID), Address: raft.ServerAddress(raftAddr)}}}
	// The transport only encodes the legacy peers field (the address as bytes, as the TCP
	// transport does); nothing is sent.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(raftAddr))
	defer func() { _ = trans.Close() }()
	sink, err := snaps.Create(raft.SnapshotVersionMax, uint64(applied.Index), term, conf, uint64(applied.Index), trans)
	if err != nil {
		return r, fmt.Errorf("raftnode: repair: creating the snapshot: %w", err)
	}
	cp, err := st.Checkpoint()
	if err != nil {
		return r, errors.Join(fmt.Errorf("raftnode: repair: checkpoint of the store: %w", err), sink.Cancel())
	}
	defer func() { _ = cp.Close() }()
	if cp.Revision != applied.Index {
		return r, errors.Join(fmt.Errorf("raftnode: repair: the store moved from revision %d to %d during the repair", applied.Index, cp.Revision), sink.Cancel())
	}
	snap := &fsmSnapshot{cp: cp, members: map[string]string{}, metrics: newMetrics(), start: time.Now()}
	if err := snap.write(sink); err != nil {
		return r, errors.Join(fmt.Errorf("raftnode: repair: writing the snapshot: %w", err), sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return r, fmt.Errorf("raftnode: repair: writing the snapshot: %w", err)
	}
	return r, nil
}

// RepairFromCluster prepares the node nodeID, whose raft directory is dir, to be filled again
// by its cluster's leader: the damaged directory is moved aside and the new log is empty, with
// no configuration (the node neither campaigns nor bootstraps; it waits for the leader, which
// sends it entries or a snapshot). The store must go as well — Open refuses a store ahead of
// an empty log — so the caller moves the store directory aside and starts with a new one. A
// node whose latest readable configuration has no other member is refused (ErrOnlyMember):
// no leader would ever fill it, and its data would sit aside while it waited.
func RepairFromCluster(dir, nodeID string) (Repaired, error) {
	stable, err := readStable(dir)
	if err != nil {
		return Repaired{}, err
	}
	if others, known := otherMembers(dir, nodeID); known && len(others) == 0 {
		return Repaired{}, fmt.Errorf("%w: the latest configuration in %s lists only %s, so no leader would fill an emptied log; repair it from its store instead", ErrOnlyMember, dir, nodeID)
	}
	r := Repaired{Term: max(stableTerm(stable), 1)}
	if r.Aside, err = moveAside(dir); err != nil {
		return r, err
	}
	logs, meta, err := newLog(dir, stable, r.Term)
	if err != nil {
		return r, err
	}
	return r, errors.Join(logs.Close(), meta.Close())
}

// otherMembers returns the servers other than nodeID in the latest configuration the raft
// directory dir still holds: the latest snapshot's, or a later configuration entry of the log
// that reads (damaged entries are passed over). known is false when no configuration could be
// read at all. It reads the log without changing its records.
func otherMembers(dir, nodeID string) (others []string, known bool) {
	var conf raft.Configuration
	var confIndex uint64
	if snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger()); err == nil {
		if list, err := snaps.List(); err == nil && len(list) > 0 {
			conf, confIndex = list[0].Configuration, list[0].ConfigurationIndex
			known = true
		}
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(filepath.Join(dir, "wal"), wal.WithMetaStore(meta), wal.WithSegmentSize(DefaultSegmentSize))
	if err == nil {
		logs := &checkedLog{rawLog: w, log: slog.New(slog.NewTextHandler(io.Discard, nil)), from: ^uint64(0)}
		if raw, err := w.Get(keyChecksummedFrom); err == nil && len(raw) == 8 {
			logs.from = binary.LittleEndian.Uint64(raw)
		}
		first, _ := w.FirstIndex()
		last, _ := w.LastIndex()
		for i := max(first, confIndex+1); last > 0 && i <= last; i++ {
			var l raft.Log
			if logs.readEntry(i, &l) == nil && l.Type == raft.LogConfiguration {
				if c, ok := decodeConfiguration(l.Data); ok {
					conf, known = c, true
				}
			}
		}
		_ = w.Close()
	}
	_ = meta.Close()
	for _, srv := range conf.Servers {
		if string(srv.ID) != nodeID {
			others = append(others, string(srv.ID))
		}
	}
	return others, known
}

// decodeConfiguration is raft.DecodeConfiguration, which panics on bytes it cannot decode.
func decodeConfiguration(b []byte) (c raft.Configuration, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return raft.DecodeConfiguration(b), true
}

// readStable reads raft's stable-store values from the log in dir (an error wrapping
// os.ErrNotExist when there is no log). A log whose stable store cannot be read is not
// repaired: without the vote cast in the current term, the repaired node could vote twice
// in it.
func readStable(dir string) (map[string][]byte, error) {
	walDir := filepath.Join(dir, "wal")
	if _, err := os.Stat(walDir); err != nil {
		return nil, fmt.Errorf("raftnode: repair: no raft log in %s: %w", dir, err)
	}
	meta := &metadb.BoltMetaDB{}
	if _, err := meta.Load(walDir); err != nil {
		return nil, errors.Join(fmt.Errorf("raftnode: repair: reading raft's term and vote in %s: %w", walDir, err), meta.Close())
	}
	defer func() { _ = meta.Close() }()
	out := map[string][]byte{}
	for _, k := range stableKeys {
		v, err := meta.GetStable(k)
		if err != nil {
			return nil, fmt.Errorf("raftnode: repair: reading %s in %s: %w", k, walDir, err)
		}
		if len(v) > 0 {
			out[string(k)] = append([]byte(nil), v...)
		}
	}
	return out, nil
}

// stableTerm is the current term among the stable-store values (little endian, as raft-wal's
// SetUint64 writes it); 0 if absent.
func stableTerm(stable map[string][]byte) uint64 {
	if v := stable["CurrentTerm"]; len(v) == 8 {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// moveAside renames dir to dir.damaged-<UTC time>.
func moveAside(dir string) (string, error) {
	aside := fmt.Sprintf("%s.damaged-%s", dir, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("raftnode: repair: moving %s aside: %w", dir, err)
	}
	return aside, nil
}

// newLog creates an empty raft log in dir with the stable-store values, the current term at
// least term, and the checksum record (every entry checksummed).
func newLog(dir string, stable map[string][]byte, term uint64) (*wal.WAL, *metadb.BoltMetaDB, error) {
	walDir := filepath.Join(dir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("raftnode: repair: %w", err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithMetaStore(meta), wal.WithSegmentSize(DefaultSegmentSize))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("raftnode: repair: creating the raft log in %s: %w", walDir, err), meta.Close())
	}
	fail := func(err error) (*wal.WAL, *metadb.BoltMetaDB, error) {
		return nil, nil, errors.Join(fmt.Errorf("raftnode: repair: writing the raft log in %s: %w", walDir, err), w.Close(), meta.Close())
	}
	for k, v := range stable {
		if err := w.Set([]byte(k), v); err != nil {
			return fail(err)
		}
	}
	if err := w.SetUint64(stableKeys[0], term); err != nil {
		return fail(err)
	}
	if _, err := openCheckedLog(w, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return fail(err)
	}
	return w, meta, nil
}
