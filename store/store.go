// Package store keeps relationships in Pebble: a forward index (resource → subjects) and a
// reverse index (subject → resources), both versioned by revision so that a Reader sees
// exactly the state of the revision it was opened at; the schema history; the applied
// revision; and a per-revision change log.
//
// The front door is this file: Open, Store and its methods, Batch and Result. Readers are in
// reader.go, writes in apply.go, garbage collection in gc.go.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kengen/kengen/schema"
)

// DefaultRetention is how long old revisions stay readable when Options.Retention is zero.
const DefaultRetention = time.Hour

// Options configures a Store. The zero value is a durable store on the real disk.
type Options struct {
	// FS is the filesystem; nil is the real disk (or memory, with InMemory).
	FS vfs.FS
	// InMemory keeps the whole store in memory (a fresh vfs.NewMem): for tests and for
	// validation files run in-process, so that no other package needs to import Pebble.
	InMemory bool
	// Retention is how long old revisions stay readable; 0 is DefaultRetention.
	Retention time.Duration
	// HoldLimit is how much longer than Retention a Hold (an open Watch stream that has fallen
	// behind) may keep old changes; 0 is Retention. Past it the holder fails clearly.
	HoldLimit time.Duration
	// GCInterval is how often the background garbage collector runs; 0 is Retention/4 capped
	// at one minute. A negative value disables the background collector (CollectGarbage can
	// still be called).
	GCInterval time.Duration
	// CacheSize is Pebble's block cache in bytes; 0 is DefaultCacheSize.
	CacheSize int64
	// NoSync commits without fsync: a crash can lose the last commits. Safe only where
	// another durable log can replay them, as Raft's does under kengen serve (raftnode
	// replays the log above the last snapshot and restores the snapshot when the store is
	// behind it); otherwise for tests and benchmarks.
	NoSync bool
	// SkipVerify skips the checksum verification of every sstable at Open. Verification reads
	// the whole store once; see docs/store-mvcc.md for its cost.
	SkipVerify bool
	// Logger receives Pebble's error messages; nil logs them with the standard log package.
	Logger *log.Logger
	// ClosureLimit bounds one object's closure in the Leopard index (leopard.go); an object
	// whose closure is larger is walked instead. 0 is DefaultClosureLimit.
	ClosureLimit int
	// MinFreeBytes is the free space kept on the store's filesystem (and on the others
	// CheckFreeSpace is asked about): below it writes fail with ErrDiskFull, before Pebble
	// meets a full disk. 0 is 5% of the filesystem, at least 16 MiB and at most 1 GiB;
	// a negative value turns the guard off (diskspace.go).
	MinFreeBytes int64

	// ClosureBudget bounds the work one Apply spends maintaining the Leopard index, in
	// closure entries read, computed or written (a seek counts as seekCost entries). Past it
	// the objects left are marked and walked (leopard.go). 0 is DefaultClosureBudget; every
	// node of a cluster must use the same value, as the index is part of the replicated state.
	ClosureBudget int
	// NoClosureIndex turns the Leopard index off: no closure is maintained and Reader.Indexed
	// reports false, so every recursion is walked. For comparison (write cost with the index
	// off); a store must be opened with the same setting it was written with.
	NoClosureIndex bool
}

// Store is a kengen data directory opened for reading and writing. Apply and WriteSchema are
// serialised; Readers may be used concurrently with them and with each other.
type Store struct {
	id        uint64 // process-unique, for caches of answers (ID)
	db        *pebble.DB
	opts      Options
	writeOpts *pebble.WriteOptions
	dir       string
	// closureLimit is Options.ClosureLimit with its default applied.
	closureLimit int
	// closureBudget is Options.ClosureBudget with its default applied.
	closureBudget int

	applied atomic.Uint64 // the latest applied revision
	// appliedTerm is the raft term of the entry that wrote the applied revision (Entry); 0
	// for a store written outside raft or by a build that did not record it. Written under
	// writeMu, before applied.
	appliedTerm atomic.Uint64
	iters       *iterPool // idle iterators Readers share (iterpool.go)
	// latest caches the latest applied revision's time, so that opening a Reader there (the
	// common case) needs no read of the change log.
	latest atomic.Pointer[revisionAt]
	// applyCh is closed, and replaced, whenever the applied revision advances (Applied).
	applyCh       atomic.Pointer[chan struct{}]
	relationships atomic.Int64 // live relationships at the latest revision

	// writeMu serialises Apply and WriteSchema.
	writeMu sync.Mutex
	// gcMu serialises garbage collections.
	gcMu sync.Mutex

	// closeMu is held for reading by every call that touches db, and for writing by Close.
	closeMu sync.RWMutex
	closed  bool

	mu struct {
		sync.Mutex
		schema     *schema.Schema
		schemaText string
		schemaRev  Revision
		// horizon is the oldest retained revision: reads below it are refused.
		horizon Revision
		// readers counts the open Readers at each revision; GC never passes the oldest.
		readers map[Revision]int
		// holds are the open Holds (hold.go), by id; GC keeps their revisions, within a bound.
		holds    map[uint64]*Hold
		nextHold uint64
		// schemas caches compiled historical schemas by the revision that wrote them.
		schemas map[Revision]*schema.Schema
	}

	stopGC chan struct{}
	gcDone chan struct{}

	// fsMu.same remembers which directories CheckFreeSpace was given share the store's
	// filesystem (diskspace.go).
	fsMu struct {
		sync.Mutex
		same map[string]bool
	}

	// stalls counts Pebble's write stalls for Metrics (metrics.go).
	stalls *writeStalls
}

// Batch is one atomic write: preconditions, then either Updates or a DeleteFilter.
type Batch struct {
	Preconditions []Precondition
	Updates       []Update
	// DeleteFilter, when non-nil, deletes every relationship matching it. A batch has either
	// Updates or a DeleteFilter, not both.
	DeleteFilter *Filter
	// DeleteLimit bounds how many relationships a DeleteFilter may delete; 0 is no limit.
	DeleteLimit int
	// AllowPartialDeletions, with a DeleteLimit, deletes up to DeleteLimit relationships and
	// reports Partial when more matched. Without it, more matches than the limit fail the
	// batch with ErrDeleteLimit.
	AllowPartialDeletions bool
	// Counter, when non-nil, registers or unregisters a relationship counter (counters.go);
	// the batch then carries nothing else.
	Counter *CounterChange
}

// Entry identifies the write a revision comes from: under raft the log entry's index (the
// revision) and term. The store keeps the applied entry's identity with the applied revision,
// in the same commit as the write, so that a node can tell, after a restart, whether the log
// it replays is the one its store applied. Outside raft (validation files, tests) Term is 0.
type Entry struct {
	Index Revision
	Term  uint64
}

// Result is the outcome of an Apply.
type Result struct {
	Revision Revision
	// Deleted is how many relationships a DeleteFilter deleted.
	Deleted int
	// Partial is true when a DeleteFilter matched more than DeleteLimit relationships and only
	// DeleteLimit were deleted.
	Partial bool
}

// Stats describes a store for metrics.
type Stats struct {
	// Revision is the latest applied revision.
	Revision Revision
	// OldestRetained is the oldest revision a Reader can still be opened at.
	OldestRetained Revision
	// Relationships is how many relationships are stored and not deleted at the latest
	// revision. Expired ones count until an Apply collects them (expiry.go): the next one
	// whose time is past their expiration.
	Relationships int64
	// SchemaRevision is the revision that wrote the current schema; 0 if none.
	SchemaRevision Revision
	// OpenReaders is how many Readers are open.
	OpenReaders int
	// Holds is how many Holds (Watch streams) keep old changes; HeldRevision is the oldest
	// revision one of them keeps (0 with none).
	Holds        int
	HeldRevision Revision
}

// DefaultCacheSize is the default block cache: it holds the whole of the CRM benchmark at
// scale 1 (about 70 MiB of blocks for 817,000 relationships), with room to grow. Checks read
// a few dozen blocks each; at 64 MiB, 4% of those reads missed and a check took 25% longer
// (docs/benchmarks.md). The cache takes memory only as blocks are read.
const DefaultCacheSize = 256 << 20

// Open opens or creates the store in dir. It refuses a directory that holds something other
// than a kengen store, a store of another format version (ErrIncompatibleFormat), and a store
// whose files fail their checksums (ErrCorrupt).
func Open(dir string, opts Options) (*Store, error) {
	if opts.FS == nil && opts.InMemory {
		opts.FS = vfs.NewMem()
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.HoldLimit <= 0 {
		opts.HoldLimit = opts.Retention
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = min(opts.Retention/4, time.Minute)
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Logger == nil {
		opts.Logger = log.Default()
	}
	if ls, err := opts.FS.List(dir); err == nil && len(ls) > 0 {
		desc, err := pebble.Peek(dir, opts.FS)
		if err != nil {
			return nil, openErr(dir, err)
		}
		if !desc.Exists {
			return nil, fmt.Errorf("%w: %s is not a kengen data directory: it holds %d files but no store", ErrIncompatibleFormat, dir, len(ls))
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}

	stalls := &writeStalls{} // metrics.go
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 opts.FS,
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{opts.Logger},
		EventListener: &pebble.EventListener{
			// Pebble's default ends the process; reads return the corruption as an error
			// (ErrCorrupt) instead, and Open refuses the directory.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				opts.Logger.Printf("store: data corruption in %s: %v", info.Path, info.Details)
			},
			BackgroundError: func(err error) { opts.Logger.Printf("store: pebble background error: %v", err) },
			WriteStallBegin: func(pebble.WriteStallBeginInfo) { stalls.begin() },
			WriteStallEnd:   stalls.end,
		},
	})
	if err != nil {
		return nil, openErr(dir, err)
	}
	s := &Store{id: storeIDs.Add(1), db: db, opts: opts, dir: dir, writeOpts: pebble.Sync, stalls: stalls}
	s.iters = &iterPool{applied: &s.applied}
	if opts.NoSync {
		s.writeOpts = pebble.NoSync
	}
	s.closureLimit = opts.ClosureLimit
	if s.closureLimit <= 0 {
		s.closureLimit = DefaultClosureLimit
	}
	s.closureBudget = opts.ClosureBudget
	if s.closureBudget <= 0 {
		s.closureBudget = DefaultClosureBudget
	}
	s.mu.readers = make(map[Revision]int)
	s.mu.holds = make(map[uint64]*Hold)
	s.mu.schemas = make(map[Revision]*schema.Schema)
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.stopGC = make(chan struct{})
	s.gcDone = make(chan struct{})
	go s.collectPeriodically()
	return s, nil
}

func openErr(dir string, err error) error {
	if pebble.IsCorruptionError(err) || errors.Is(err, pebble.ErrCorruption) {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, dir, err)
	}
	return fmt.Errorf("store: open %s: %w", dir, err)
}

// load checks the format, verifies checksums and reads the applied revision, the GC horizon
// and the current schema.
func (s *Store) load() error {
	v, ok, err := s.get(keyFormat)
	if err != nil {
		return openErr(s.dir, err)
	}
	switch {
	case !ok:
		empty, err := s.isEmpty()
		if err != nil {
			return openErr(s.dir, err)
		}
		if !empty {
			return fmt.Errorf("%w: %s is a Pebble database without a kengen format marker", ErrIncompatibleFormat, s.dir)
		}
		if err := s.db.Set(keyFormat, []byte(formatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("store: write format marker: %w", err)
		}
		return s.indexExpirations()
	case string(v) != formatVersion:
		return fmt.Errorf("%w: %s has format %q, this build reads %q", ErrIncompatibleFormat, s.dir, v, formatVersion)
	}
	if !s.opts.SkipVerify {
		if err := s.db.CheckLevels(nil); err != nil {
			return fmt.Errorf("%w: %s failed verification: %w", ErrCorrupt, s.dir, err)
		}
	}
	if err := s.indexExpirations(); err != nil { // once, for a store written before the index
		return err
	}
	if v, ok, err := s.get(keyApplied); err != nil {
		return openErr(s.dir, err)
	} else if ok {
		if len(v) != 8 && len(v) != 16 {
			// Taking it as revision 0 would have raft apply every entry again over the data.
			return fmt.Errorf("%w: %s: the applied-revision record is %d bytes, not 8 or 16", ErrCorrupt, s.dir, len(v))
		}
		e := decodeApplied(v)
		s.appliedTerm.Store(e.Term)
		s.applied.Store(uint64(e.Index))
	}
	if v, ok, err := s.get(keyHorizon); err != nil {
		return openErr(s.dir, err)
	} else if ok {
		s.mu.horizon = decodeRev(v)
	}
	rev, text, ok, err := s.schemaAt(live)
	if err != nil {
		return openErr(s.dir, err)
	}
	if ok {
		sch, err := schema.Parse(text)
		if err != nil {
			return fmt.Errorf("%w: %s: the stored schema of revision %d no longer parses: %w", ErrIncompatibleFormat, s.dir, rev, err)
		}
		s.mu.schema, s.mu.schemaText, s.mu.schemaRev = sch, text, rev
	}
	n, err := s.countLive()
	if err != nil {
		return openErr(s.dir, err)
	}
	s.relationships.Store(n)
	return nil
}

// Close stops the garbage collector and closes the store. Readers still open fail with
// ErrClosed afterwards.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.closeMu.Unlock()
	close(s.stopGC)
	<-s.gcDone
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.iters.drain(true)
	return s.db.Close()
}

// storeIDs numbers the stores opened by this process.
var storeIDs atomic.Uint64

// ID identifies the store within this process: no two stores opened by one process share it,
// so a cache of answers keyed on (ID, revision) cannot confuse two stores at one revision.
func (s *Store) ID() uint64 { return s.id }

// Revision returns the latest applied revision, 0 for a new store.
func (s *Store) Revision() Revision { return Revision(s.applied.Load()) }

// AppliedEntry returns the identity of the entry that wrote the latest applied revision: its
// index is Revision(), its term 0 when the store was written outside raft or by a build
// before the term was recorded.
func (s *Store) AppliedEntry() Entry {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return Entry{Index: s.Revision(), Term: s.appliedTerm.Load()}
}

// Schema returns the current compiled schema, its source text and the revision that wrote it;
// nil, "", 0 if no schema has been written.
func (s *Store) Schema() (*schema.Schema, string, Revision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.schema, s.mu.schemaText, s.mu.schemaRev
}

// Stats returns counters for metrics.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Revision:       s.Revision(),
		OldestRetained: s.mu.horizon,
		Relationships:  s.relationships.Load(),
		SchemaRevision: s.mu.schemaRev,
	}
	for _, n := range s.mu.readers {
		st.OpenReaders += n
	}
	st.Holds = len(s.mu.holds)
	st.HeldRevision, _ = s.oldestHold()
	return st
}

// Flush flushes Pebble's memtable to an sstable. Tests use it to put data on disk.
func (s *Store) Flush() error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Flush()
}

// get reads one key; ok is false if it is absent.
func (s *Store) get(k []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

func (s *Store) isEmpty() (bool, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, errors.Join(it.Error(), it.Close())
}

// countLive sums the live counts.
func (s *Store) countLive() (int64, error) {
	var n int64
	err := scanPrefix(s.db, []byte{prefixCount}, func(_, v []byte) (bool, error) {
		n += int64(decodeRev(v))
		return true, nil
	})
	return n, err
}

// schemaAt returns the schema text in force at rev: the latest schema write at or below it.
func (s *Store) schemaAt(rev Revision) (Revision, string, bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSchema}, UpperBound: upperBound(revKey(prefixSchema, rev))})
	if err != nil {
		return 0, "", false, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, "", false, it.Error()
	}
	return keyRev(it.Key()), string(it.Value()), true, nil
}

// decodeApplied reads the applied record: the revision (8 bytes, big endian), then the
// entry's term (8 bytes), which stores written before the term was recorded lack.
func decodeApplied(v []byte) Entry {
	e := Entry{Index: decodeRev(v)}
	if len(v) >= 16 {
		e.Term = binary.BigEndian.Uint64(v[8:16])
	}
	return e
}

func decodeRev(v []byte) Revision {
	if len(v) < 8 {
		return 0
	}
	return Revision(uint64(v[0])<<56 | uint64(v[1])<<48 | uint64(v[2])<<40 | uint64(v[3])<<32 |
		uint64(v[4])<<24 | uint64(v[5])<<16 | uint64(v[6])<<8 | uint64(v[7]))
}

// scanPrefix calls fn on every key with the prefix, in order, until fn returns false.
func scanPrefix(r pebble.Reader, prefix []byte, fn func(k, v []byte) (bool, error)) error {
	return scanRange(r, prefix, upperBound(prefix), fn)
}

func scanRange(r pebble.Reader, lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		if !more {
			break
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		if pebble.IsCorruptionError(err) {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return err
	}
	return nil
}

// pebbleLogger drops Pebble's informational messages and keeps its errors.
type pebbleLogger struct{ l *log.Logger }

func (p pebbleLogger) Infof(string, ...any)           {}
func (p pebbleLogger) Errorf(format string, a ...any) { p.l.Printf("pebble: "+format, a...) }
func (p pebbleLogger) Fatalf(format string, a ...any) { p.l.Fatalf("pebble: "+format, a...) }

// Compact compacts the whole key space down to the bottom level. A bulk load leaves many
// overlapping files behind; compacting them makes every later read cheaper.
func (s *Store) Compact(ctx context.Context) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Compact(ctx, []byte{0}, []byte{0xff}, true)
}
