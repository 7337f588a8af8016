package store

import (
	"sync"
	"time"
)

// Metrics are a store's figures for monitoring, read at one moment: Pebble's own (LSM shape,
// compactions, block cache, disk, write stalls) and kengen's (relationships, revisions).
// Counters (the fields documented as "since Open") only grow while the store is open. store
// depends on no metrics library: api/ turns these into Prometheus metrics.
type Metrics struct {
	// Revision is the latest applied revision; OldestRetained the oldest one a Reader can
	// still be opened at.
	Revision, OldestRetained Revision
	// RetainedRevisions is how many revisions are readable: Revision - OldestRetained + 1, or
	// 0 for an empty store.
	RetainedRevisions uint64
	// Relationships is how many relationships are live at the latest revision.
	Relationships int64
	// OpenReaders is how many Readers are open.
	OpenReaders int
	// Holds is how many Holds (Watch streams) keep old changes; HeldRevision is the oldest
	// revision one of them keeps (0 with none).
	Holds        int
	HeldRevision Revision

	// Compactions and Flushes count Pebble's compactions and memtable flushes since Open;
	// CompactionTime is the time compactions took in total since Open.
	Compactions, Flushes int64
	CompactionTime       time.Duration
	// CompactionsInProgress is how many compactions run now.
	CompactionsInProgress int64
	// CompactionDebtBytes estimates the bytes left to compact for the LSM to be stable.
	CompactionDebtBytes uint64
	// L0Files and L0Sublevels describe level 0, whose growth slows reads and then writes.
	L0Files     int64
	L0Sublevels int
	// ReadAmplification is how many sstables a point read may consult: L0's sublevels plus
	// every other non-empty level.
	ReadAmplification int
	// Levels are the sstable files and bytes of each LSM level, L0 first.
	Levels [7]LevelMetrics
	// BlockCacheHits and BlockCacheMisses count block-cache lookups since Open;
	// BlockCacheBytes is the cache's current size.
	BlockCacheHits, BlockCacheMisses int64
	BlockCacheBytes                  int64
	// DiskUsageBytes is every local file of the store: sstables (live and obsolete), WAL,
	// manifest and options.
	DiskUsageBytes uint64
	// LiveTableBytes is the size of the live sstables; WALBytes the physical size of the WAL.
	LiveTableBytes, WALBytes uint64
	// MemtableBytes is the memory held by memtables.
	MemtableBytes uint64
	// FilesystemAvailBytes and FilesystemSizeBytes describe the filesystem that holds the
	// store: space this process may still use, and its size. Both are 0 when the filesystem
	// cannot tell (an in-memory store reports what vfs.MemFS reports).
	FilesystemAvailBytes, FilesystemSizeBytes uint64
	// MinFreeBytes is the free space kept on that filesystem: below it writes are refused
	// with ErrDiskFull (Options.MinFreeBytes); 0 when the guard is off or the size unknown.
	MinFreeBytes uint64
	// WriteStalls counts the times Pebble delayed writes (too many memtables or L0 files)
	// since Open; WriteStallTime is how long writes were stalled in total, the ongoing stall
	// included.
	WriteStalls    int64
	WriteStallTime time.Duration
}

// LevelMetrics are one LSM level's sstables.
type LevelMetrics struct {
	Files int64
	Bytes int64
}

// Metrics returns the store's figures now. It fails with ErrClosed once the store is closed.
// It takes Pebble's metrics lock briefly; calling it once per scrape is cheap.
func (s *Store) Metrics() (Metrics, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return Metrics{}, ErrClosed
	}
	st := s.Stats()
	pm := s.db.Metrics()
	m := Metrics{
		Revision:              st.Revision,
		OldestRetained:        st.OldestRetained,
		Relationships:         st.Relationships,
		OpenReaders:           st.OpenReaders,
		Holds:                 st.Holds,
		HeldRevision:          st.HeldRevision,
		Compactions:           pm.Compact.Count,
		Flushes:               pm.Flush.Count,
		CompactionTime:        pm.Compact.Duration,
		CompactionsInProgress: pm.Compact.NumInProgress,
		CompactionDebtBytes:   pm.Compact.EstimatedDebt,
		L0Files:               pm.Levels[0].TablesCount,
		L0Sublevels:           int(pm.Levels[0].Sublevels),
		ReadAmplification:     pm.ReadAmp(),
		BlockCacheHits:        pm.BlockCache.Hits,
		BlockCacheMisses:      pm.BlockCache.Misses,
		BlockCacheBytes:       pm.BlockCache.Size,
		DiskUsageBytes:        pm.DiskSpaceUsage(),
		LiveTableBytes:        pm.Table.Local.LiveSize,
		WALBytes:              pm.WAL.PhysicalSize,
		MemtableBytes:         pm.MemTable.Size,
	}
	for i := range m.Levels {
		if i < len(pm.Levels) {
			m.Levels[i] = LevelMetrics{Files: pm.Levels[i].TablesCount, Bytes: pm.Levels[i].TablesSize}
		}
	}
	if st.Revision > 0 && st.Revision >= st.OldestRetained {
		m.RetainedRevisions = uint64(st.Revision-max(st.OldestRetained, 1)) + 1
	}
	m.WriteStalls, m.WriteStallTime = s.stalls.read()
	if du, err := s.opts.FS.GetDiskUsage(s.dir); err == nil {
		m.FilesystemAvailBytes, m.FilesystemSizeBytes = du.AvailBytes, du.TotalBytes
		m.MinFreeBytes = s.minFree(du.TotalBytes)
	}
	return m, nil
}

// writeStalls counts Pebble's write stalls through its event listener.
type writeStalls struct {
	mu    sync.Mutex
	count int64
	total time.Duration
	since time.Time // start of the ongoing stall; zero when none
}

func (w *writeStalls) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.count++
	if w.since.IsZero() {
		w.since = time.Now()
	}
}

func (w *writeStalls) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.since.IsZero() {
		w.total += time.Since(w.since)
		w.since = time.Time{}
	}
}

func (w *writeStalls) read() (int64, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := w.total
	if !w.since.IsZero() {
		total += time.Since(w.since)
	}
	return w.count, total
}
