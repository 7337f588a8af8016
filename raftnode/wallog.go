package raftnode

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// walLog is raft's log and stable store: raft-wal, which never gets to write an append the
// filesystem may not have room for.
//
// raft-wal v0.4.0 does not survive a failed append: when a write at the end of a segment (the
// index frame that seals it) or the creation of the next segment fails for want of space,
// its tail stays sealed, in memory and, through its recovery, after a restart too, so every
// later append fails with "segment is sealed" and the node never leads or follows again.
// (Found on a full tmpfs; docs/raft.md, "Disk full".) So walLog refuses an append, before
// raft-wal writes anything, unless the filesystem has room for the entries, a whole new
// segment and some slack. hashicorp/raft answers a refused append on the leader by failing
// the waiting writes and stepping down; it is elected again and appends again, which
// succeeds once space is back; a follower refuses the leader's entries, which the leader
// sends again. Writes are refused much earlier (store.CheckFreeSpace, at least two segments
// free), so this floor is met only when something else fills the disk past that.
type walLog struct {
	*wal.WAL
	// meta is closed by walLog: raft-wal's Close leaves its meta store open (docs/raft.md).
	meta        *metadb.BoltMetaDB
	dir         string
	segmentSize int
}

// appendSlack is free space kept beyond the entries and a new segment: raft-wal's index
// frame and metadata, and bolt's growth.
const appendSlack = 1 << 20

func openWALLog(dir string, segmentSize int) (*walLog, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithSegmentSize(segmentSize))
	if err != nil {
		return nil, errors.Join(err, meta.Close())
	}
	return &walLog{WAL: w, meta: meta, dir: dir, segmentSize: segmentSize}, nil
}

// StoreLogs implements raft.LogStore.
func (l *walLog) StoreLogs(logs []*raft.Log) error {
	need := uint64(l.segmentSize + appendSlack)
	for _, e := range logs {
		need += uint64(len(e.Data) + len(e.Extensions))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(l.dir, &st); err == nil {
		if free := st.Bavail * uint64(st.Bsize); free < need {
			return fmt.Errorf("raftnode: the raft log in %s needs %s free to append %d entries safely, %s left: %w",
				l.dir, mibs(need), len(logs), mibs(free), syscall.ENOSPC)
		}
	}
	return l.WAL.StoreLogs(logs)
}

// StoreLog implements raft.LogStore.
func (l *walLog) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

// Close closes the WAL and its meta store.
func (l *walLog) Close() error { return errors.Join(l.WAL.Close(), l.meta.Close()) }

func mibs(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
