package raftnode

// A full disk (docs/raft.md, "Disk full"). The store refuses writes below its free-space
// minimum before Pebble meets the wall (store.CheckFreeSpace), and Node.applyEncoded asks
// the same of the store's and the log's filesystems before it proposes anything, so a client
// sees RESOURCE_EXHAUSTED naming the path. What remains is an entry already committed when a
// node's own store runs out: the FSM must neither skip it (the node would diverge from the
// others) nor panic, so it waits, unready, until space returns or the node stops.

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	waltypes "github.com/hashicorp/raft-wal/types"

	"github.com/kengen/kengen/store"
)

// spaceRetry is how often an FSM waiting for disk space tries the entry again.
const spaceRetry = 200 * time.Millisecond

// errHalted is what the FSM answers after the node stopped while it waited for space: the
// entry, and every later one, stay unapplied in this process and are applied from the log
// at the next start.
var errHalted = fmt.Errorf("%w: the node stopped while its store waited for disk space", ErrUnavailable)

// whenSpace runs apply until the store stops refusing it for want of space, or the node stops.
func (f *fsm) whenSpace(apply func() applyResult) applyResult {
	for logged := false; ; logged = true {
		r := apply()
		if !errors.Is(r.err, store.ErrDiskFull) {
			if logged {
				f.log.Info("raftnode: disk space is back, applying again")
			}
			f.stalled.Store(nil)
			return r
		}
		f.stalled.Store(&r.err)
		if !logged {
			f.log.Error("raftnode: cannot apply a committed entry, waiting for disk space", "error", r.err)
		}
		select {
		case <-f.stop:
			f.stopped.Store(true)
			return applyResult{err: errHalted}
		case <-time.After(spaceRetry):
		}
	}
}

// stalledErr is the store's refusal while the FSM waits for space, nil otherwise.
func (f *fsm) stalledErr() error {
	if p := f.stalled.Load(); p != nil {
		return *p
	}
	return nil
}

// snapshotRoom refuses a snapshot that would leave less than the store's free-space minimum
// on raft's filesystem. A snapshot is a copy of the whole store streamed while applies go on:
// one that filled the disk would make Pebble's next write fail, which Pebble does not survive.
// Refused, raft logs it and tries again at its next interval; the log is not compacted
// meanwhile. The store's disk usage (every file, obsolete ones included) bounds the copy.
func (f *fsm) snapshotRoom() error {
	if f.snapDir == "" {
		return nil
	}
	m, err := f.st.Metrics()
	if err != nil {
		return err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(f.snapDir, &st); err != nil {
		return nil //nolint:nilerr // a filesystem that cannot tell is not guarded, as in store
	}
	need := m.DiskUsageBytes + f.st.MinFreeBytes()
	if free := st.Bavail * uint64(st.Bsize); free < need {
		return fmt.Errorf("raftnode: %w: no room for a snapshot of %s in %s: %s free, %s needed (the store's size and the minimum kept free)",
			store.ErrDiskFull, mibs(m.DiskUsageBytes), f.snapDir, mibs(free), mibs(need))
	}
	return nil
}

// isDiskFull reports whether err, from raft's log, is a full disk: the operating system's
// ENOSPC, or raft-wal's sealed segment, which is what appends return once a rotation to a new
// segment failed for want of space.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, waltypes.ErrSealed)
}
