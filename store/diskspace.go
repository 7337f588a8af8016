package store

// The free-space guard. Pebble treats a failed write of its WAL as fatal (the process panics),
// and raft-wal cannot rotate to a new segment on a full disk, so kengen must never let either
// meet the wall: every write checks, before anything is written, that the filesystems it will
// touch keep a minimum of free space, and is refused with ErrDiskFull below it. Reads write
// nothing and go on. The check is one statfs per filesystem, cheap next to a commit.

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Bounds of the default minimum free space (Options.MinFreeBytes 0): 5% of the filesystem,
// at least minFreeFloor, at most minFreeCap.
const (
	// minFreeFloor leaves room for what is already under way when writes are refused: the
	// entries raft has committed but not applied (at most a few MiB), a memtable flush
	// (Pebble's first memtables are 4 MiB), and the next raft log segment (8 MiB by default)
	// with its metadata.
	minFreeFloor = 16 << 20
	// minFreeCap: 5% of a large disk is more than any of the above needs.
	minFreeCap = 1 << 30
)

// minFree is the free space kept on a filesystem of size total.
func (s *Store) minFree(total uint64) uint64 {
	switch {
	case s.opts.MinFreeBytes < 0:
		return 0
	case s.opts.MinFreeBytes > 0:
		return uint64(s.opts.MinFreeBytes)
	}
	return min(max(total/20, minFreeFloor), minFreeCap)
}

// MinFreeBytes is the free space below which writes are refused on the filesystem holding the
// store; 0 when the guard is off or the filesystem does not tell its size.
func (s *Store) MinFreeBytes() uint64 {
	du, err := s.opts.FS.GetDiskUsage(s.dir)
	if err != nil {
		return 0
	}
	return s.minFree(du.TotalBytes)
}

// CheckFreeSpace returns an error wrapping ErrDiskFull, naming the directory, its filesystem's
// mount point, the free space and the minimum, when the filesystem holding the store or one
// holding any of dirs (on the real disk: raft's log) has less free space than the minimum.
// Apply and WriteSchema check the store's own filesystem; raftnode checks both before it
// proposes a write. A filesystem that cannot report its usage is not checked.
func (s *Store) CheckFreeSpace(dirs ...string) error {
	if s.opts.MinFreeBytes < 0 {
		return nil
	}
	if err := s.checkFS(s.opts.FS, s.dir); err != nil {
		return err
	}
	for _, d := range dirs {
		if s.sameFS(d) {
			continue // checked above: one statfs per filesystem (each costs several µs here)
		}
		if err := s.checkFS(vfs.Default, d); err != nil {
			return err
		}
	}
	return nil
}

// sameFS reports whether dir is on the store's own filesystem (on the real disk), remembered
// per directory: raft's log usually sits next to the store.
func (s *Store) sameFS(dir string) bool {
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	if same, ok := s.fsMu.same[dir]; ok {
		return same
	}
	same := false
	if s.opts.FS == vfs.Default {
		a, okA := device(s.dir)
		b, okB := device(dir)
		same = okA && okB && a == b
	}
	if s.fsMu.same == nil {
		s.fsMu.same = map[string]bool{}
	}
	s.fsMu.same[dir] = same
	return same
}

func device(path string) (uint64, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true //nolint:unconvert // Dev is int32 on some platforms
}

func (s *Store) checkFS(fs vfs.FS, dir string) error {
	du, ok := diskUsage(fs, dir)
	if !ok {
		return nil // unsupported (an in-memory store) or gone: nothing to guard
	}
	need := s.minFree(du.TotalBytes)
	if du.AvailBytes >= need {
		return nil
	}
	where := dir
	if fs == vfs.Default {
		if mp := mountPoint(dir); mp != "" {
			where = fmt.Sprintf("%s (filesystem mounted at %s)", dir, mp)
		}
	}
	return fmt.Errorf("%w: %s has %s free of %s, below the %s kept free; writes resume once space is freed",
		ErrDiskFull, where, mib(du.AvailBytes), mib(du.TotalBytes), mib(need))
}

// mountPoint is the directory where the filesystem holding path is mounted: the highest
// ancestor on the same device. "" if it cannot tell.
func mountPoint(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	dev := device
	d, ok := dev(abs)
	if !ok {
		return ""
	}
	for {
		parent := filepath.Dir(abs)
		if parent == abs {
			return abs
		}
		if pd, ok := dev(parent); !ok || pd != d {
			return abs
		}
		abs = parent
	}
}

// diskUsage is fs's usage of dir's filesystem; ok is false when fs cannot tell.
func diskUsage(fs vfs.FS, dir string) (du vfs.DiskUsage, ok bool) {
	du, err := fs.GetDiskUsage(dir)
	return du, err == nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
