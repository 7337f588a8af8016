package raftnode

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/kengen/kengen/store"
)

// checkLog is the start-up check of the raft log against the store, run by Open before raft
// starts. raft would replay the entries after its latest snapshot and hand out new indexes
// after its last entry; a store that applied more than the log holds would see its old
// revisions handed out again (and skipped as replays), and a damaged entry would make raft
// panic or apply the wrong bytes. So the node refuses to start (ErrDamagedLog) when:
//
//   - an entry raft will replay (from the latest snapshot's index on) is missing or fails its
//     checksum (checkedLog);
//   - the log and the latest snapshot end below the store's applied revision;
//   - the log's entry at the store's applied revision (or the snapshot, when it ends there)
//     has another term than the entry the store applied.
//
// A store behind the latest snapshot is not a damage: raft restores the snapshot.
func checkLog(dir string, logs *checkedLog, snaps raft.SnapshotStore, st *store.Store) error {
	applied := st.AppliedEntry()
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raftnode: reading the raft log in %s: %w", dir, err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raftnode: reading the raft log in %s: %w", dir, err)
	}
	var snap raft.SnapshotMeta
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("raftnode: listing the snapshots in %s: %w", dir, err)
	}
	if len(list) > 0 {
		snap = *list[0]
	}
	holds := fmt.Sprintf("the log holds entries %d to %d", first, last)
	if last == 0 {
		holds = "the log is empty"
	}
	damaged := func(format string, a ...any) error {
		return fmt.Errorf("%w in %s: %s; the store has applied revision %d (term %d), %s, the latest snapshot is at index %d (term %d)",
			ErrDamagedLog, dir, fmt.Sprintf(format, a...), applied.Index, applied.Term, holds, snap.Index, snap.Term)
	}
	if last > snap.Index && first > snap.Index+1 {
		return damaged("entries %d to %d are missing between the snapshot and the log", snap.Index+1, first-1)
	}
	if end := max(last, snap.Index); uint64(applied.Index) > end {
		return damaged("the log ends at index %d, below the store's applied revision %d", end, applied.Index)
	}
	var l raft.Log
	for i := max(first, snap.Index+1); last > 0 && i <= last; i++ {
		if err := logs.readEntry(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return damaged("entry %d is missing", i)
			}
			return damaged("%s", strings.TrimPrefix(err.Error(), ErrDamagedLog.Error()+": "))
		}
		if store.Revision(i) == applied.Index && applied.Term != 0 && l.Term != applied.Term {
			return damaged("entry %d has term %d, but the store applied it from term %d", i, l.Term, applied.Term)
		}
	}
	if applied.Index == store.Revision(snap.Index) && applied.Index > 0 && applied.Term != 0 && snap.Term != applied.Term {
		return damaged("the snapshot at index %d has term %d, but the store applied that index from term %d", snap.Index, snap.Term, applied.Term)
	}
	return nil
}
