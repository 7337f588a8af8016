package api

// Metrics beyond the per-request ones of interceptors.go: the check engine's cost (through
// check.Options.Observe), lookup result counts, and the store's figures, read from
// store.Metrics at scrape time.
// Everything is registered on the Registerer handed in; docs/metrics.md lists every name.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// otherLabel stands for a resource type or permission a failed check named but no successful
// check ever did: request strings are not trusted to bound the label set.
const otherLabel = "other"

// CheckObserver registers the check engine's metrics on reg and returns the function to set
// as check.Options.Observe. With a nil reg it returns nil (no observation, no cost).
func CheckObserver(reg prometheus.Registerer) (func(check.Observation), error) {
	if reg == nil {
		return nil, nil
	}
	m := newCheckMetrics()
	for _, c := range []prometheus.Collector{m.duration, m.subproblems, m.depth, m.memoHits, m.indexHits, m.indexFallbacks, m.results} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: registering check metrics: %w", err)
		}
	}
	return m.observe, nil
}

// checkMetrics turns check.Observations into metrics.
type checkMetrics struct {
	duration    *prometheus.HistogramVec
	subproblems prometheus.Histogram
	depth       prometheus.Histogram
	memoHits    prometheus.Counter
	// indexHits and indexFallbacks count the recursive sub-problems the Leopard index
	// answered, and those it covers but had to walk (an object's closure over its bound).
	indexHits, indexFallbacks prometheus.Counter
	results                   *prometheus.CounterVec

	// byPermission caches the duration observer of each (resource type, permission) a
	// successful check named; only those become label values.
	byPermission sync.Map // permissionKey → prometheus.Observer
	// byResult holds the results counter of each check.Membership, and of errors last.
	byResult [4]prometheus.Counter
}

type permissionKey struct{ resourceType, permission string }

func newCheckMetrics() *checkMetrics {
	m := &checkMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kengen", Subsystem: "check", Name: "duration_seconds",
			Help:    "Time to evaluate one check (one per bulk item), by resource type and permission.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"resource_type", "permission"}),
		subproblems: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kengen", Subsystem: "check", Name: "subproblems",
			Help:    "Sub-problems evaluated per check, memo hits not counted.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 … 8192
		}),
		depth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kengen", Subsystem: "check", Name: "depth",
			Help:    "Most objects one path of a check traversed (recursion depth reached).",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50, 100, 250, 1000},
		}),
		memoHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kengen", Subsystem: "check", Name: "memo_hits_total",
			Help: "Sub-problems answered from the request's memo instead of being evaluated.",
		}),
		indexHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kengen", Subsystem: "check", Name: "index_hits_total",
			Help: "Recursive sub-problems (nested groups, parent hierarchies) answered by the Leopard index.",
		}),
		indexFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kengen", Subsystem: "check", Name: "index_fallbacks_total",
			Help: "Recursive sub-problems the Leopard index covers but that were walked because an object's closure exceeded its bound.",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kengen", Subsystem: "check", Name: "results_total",
			Help: "Checks evaluated, by answer: has_permission, no_permission, conditional or error.",
		}, []string{"result"}),
	}
	for i, r := range []string{"no_permission", "has_permission", "conditional", "error"} {
		m.byResult[i] = m.results.WithLabelValues(r)
	}
	return m
}

func (m *checkMetrics) observe(o check.Observation) {
	result := len(m.byResult) - 1
	if o.Err == nil && int(o.Membership) >= 0 && int(o.Membership) < result {
		result = int(o.Membership)
	}
	m.byResult[result].Inc()
	m.subproblems.Observe(float64(o.Subproblems))
	m.depth.Observe(float64(o.Depth))
	if o.MemoHits > 0 {
		m.memoHits.Add(float64(o.MemoHits))
	}
	if o.IndexHits > 0 {
		m.indexHits.Add(float64(o.IndexHits))
	}
	if o.IndexFallbacks > 0 {
		m.indexFallbacks.Add(float64(o.IndexFallbacks))
	}
	m.durationObserver(o).Observe(o.Duration.Seconds())
}

func (m *checkMetrics) durationObserver(o check.Observation) prometheus.Observer {
	k := permissionKey{o.ResourceType, o.Permission}
	if obs, ok := m.byPermission.Load(k); ok {
		return obs.(prometheus.Observer)
	}
	if o.Err != nil {
		return m.duration.WithLabelValues(otherLabel, otherLabel)
	}
	obs, _ := m.byPermission.LoadOrStore(k, m.duration.WithLabelValues(o.ResourceType, o.Permission))
	return obs.(prometheus.Observer)
}

// registerLayerMetrics registers, on reg, a collector that reads st's figures at every scrape
// and the lookup result counts. A nil reg registers nothing; the lookup metrics still work.
func registerLayerMetrics(reg prometheus.Registerer, st *store.Store) (*lookupMetrics, error) {
	lm := &lookupMetrics{results: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kengen", Subsystem: "lookup", Name: "results",
		Help:    "Results one LookupResources or LookupSubjects call streamed, by full method name.",
		Buckets: []float64{0, 1, 4, 16, 64, 256, 1024, 4096, 16384, 65536},
	}, []string{"method"})}
	if reg == nil {
		return lm, nil
	}
	for _, c := range []prometheus.Collector{newStoreCollector(st), lm.results} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: registering store and lookup metrics: %w", err)
		}
	}
	return lm, nil
}

// lookupMetrics counts the results lookups stream. (Their durations are the gRPC latency
// histogram's.)
type lookupMetrics struct {
	results *prometheus.HistogramVec
}

// count wraps a lookup's stream to count the messages it sends; done records the count. Other
// methods' streams are returned unchanged.
func (m *lookupMetrics) count(method string, ss grpc.ServerStream) (_ grpc.ServerStream, done func()) {
	if m == nil || !(strings.HasSuffix(method, "/LookupResources") || strings.HasSuffix(method, "/LookupSubjects")) {
		return ss, func() {}
	}
	cs := &countingStream{ServerStream: ss}
	return cs, func() { m.results.WithLabelValues(method).Observe(float64(cs.sent.Load())) }
}

// countingStream counts the messages sent successfully.
type countingStream struct {
	grpc.ServerStream
	sent atomic.Int64
}

func (c *countingStream) SendMsg(msg any) error {
	err := c.ServerStream.SendMsg(msg)
	if err == nil {
		c.sent.Add(1)
	}
	return err
}

// storeCollector exports store.Metrics. It reads them once per scrape, so idle nodes cost
// nothing and a scrape sees one consistent moment.
type storeCollector struct {
	st *store.Store

	revision, oldestRetained, retained, relationships, openReaders               *prometheus.Desc
	holds, heldRevision                                                          *prometheus.Desc
	compactions, flushes, compactionSeconds, compactionsInProgress, debt         *prometheus.Desc
	l0Files, l0Sublevels, readAmp, levelFiles, levelBytes                        *prometheus.Desc
	cacheHits, cacheMisses, cacheBytes                                           *prometheus.Desc
	diskUsage, liveTables, wal, memtables, fsAvail, fsSize, stalls, stallSeconds *prometheus.Desc
	minFree                                                                      *prometheus.Desc
}

func newStoreCollector(st *store.Store) *storeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("kengen_store_"+name, help, labels, nil)
	}
	return &storeCollector{
		st:             st,
		revision:       d("revision", "Latest applied revision (raft log index once replicated)."),
		oldestRetained: d("oldest_retained_revision", "Oldest revision still readable (at_exact_snapshot); older ones were garbage-collected."),
		retained:       d("retained_revisions", "How many revisions are readable: revision - oldest retained + 1."),
		relationships:  d("relationships", "Relationships live at the latest revision."),
		openReaders:    d("open_readers", "Readers open now; each pins its revision against garbage collection."),
		holds:          d("retention_holds", "Watch streams keeping old changes from garbage collection (each for at most retention + the hold limit)."),
		heldRevision:   d("held_revision", "Oldest revision a Watch stream keeps from garbage collection; 0 with none. Far below the revision: a stream has fallen behind."),

		compactions:           d("compactions_total", "Pebble compactions since the store was opened."),
		flushes:               d("flushes_total", "Pebble memtable flushes since the store was opened."),
		compactionSeconds:     d("compaction_seconds_total", "Time Pebble spent compacting since the store was opened."),
		compactionsInProgress: d("compactions_in_progress", "Pebble compactions running now."),
		debt:                  d("compaction_debt_bytes", "Pebble's estimate of the bytes left to compact for the LSM to be stable."),

		l0Files:     d("l0_files", "sstables in Pebble's level 0; many slow reads, then stall writes."),
		l0Sublevels: d("l0_sublevels", "Sublevels of Pebble's level 0; each adds one sstable to every read."),
		readAmp:     d("read_amplification", "sstables a point read may consult: L0 sublevels plus each non-empty level below."),
		levelFiles:  d("level_files", "sstables in each Pebble LSM level.", "level"),
		levelBytes:  d("level_bytes", "Bytes of the sstables in each Pebble LSM level.", "level"),

		cacheHits:   d("block_cache_hits_total", "Pebble block-cache hits since the store was opened."),
		cacheMisses: d("block_cache_misses_total", "Pebble block-cache misses since the store was opened."),
		cacheBytes:  d("block_cache_bytes", "Bytes held by Pebble's block cache."),

		diskUsage:    d("disk_usage_bytes", "Bytes of every local file of the store: sstables, WAL, manifest."),
		liveTables:   d("live_table_bytes", "Bytes of the live sstables."),
		wal:          d("wal_bytes", "Physical bytes of Pebble's write-ahead log."),
		memtables:    d("memtable_bytes", "Memory held by Pebble's memtables."),
		fsAvail:      d("filesystem_avail_bytes", "Free bytes this process may still use on the filesystem holding the store."),
		fsSize:       d("filesystem_size_bytes", "Size in bytes of the filesystem holding the store."),
		minFree:      d("filesystem_min_free_bytes", "Free bytes kept on the filesystem holding the store: below it writes fail with RESOURCE_EXHAUSTED (serve --min-free-mib)."),
		stalls:       d("write_stalls_total", "Times Pebble delayed writes (too many memtables or L0 files) since the store was opened."),
		stallSeconds: d("write_stall_seconds_total", "Time writes spent stalled by Pebble since the store was opened."),
	}
}

// Describe sends every Desc the collector may send.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.revision, c.oldestRetained, c.retained, c.relationships, c.openReaders, c.holds, c.heldRevision,
		c.compactions, c.flushes, c.compactionSeconds, c.compactionsInProgress, c.debt,
		c.l0Files, c.l0Sublevels, c.readAmp, c.levelFiles, c.levelBytes,
		c.cacheHits, c.cacheMisses, c.cacheBytes,
		c.diskUsage, c.liveTables, c.wal, c.memtables, c.fsAvail, c.fsSize, c.stalls, c.stallSeconds,
		c.minFree,
	} {
		ch <- d
	}
}

// Collect reads the store's metrics once. A closed store sends nothing: the node is going
// away, and /readyz says so.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	m, err := c.st.Metrics()
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.revision, float64(m.Revision))
	gauge(c.oldestRetained, float64(m.OldestRetained))
	gauge(c.retained, float64(m.RetainedRevisions))
	gauge(c.relationships, float64(m.Relationships))
	gauge(c.openReaders, float64(m.OpenReaders))
	gauge(c.holds, float64(m.Holds))
	gauge(c.heldRevision, float64(m.HeldRevision))

	counter(c.compactions, float64(m.Compactions))
	counter(c.flushes, float64(m.Flushes))
	counter(c.compactionSeconds, m.CompactionTime.Seconds())
	gauge(c.compactionsInProgress, float64(m.CompactionsInProgress))
	gauge(c.debt, float64(m.CompactionDebtBytes))

	gauge(c.l0Files, float64(m.L0Files))
	gauge(c.l0Sublevels, float64(m.L0Sublevels))
	gauge(c.readAmp, float64(m.ReadAmplification))
	for i, l := range m.Levels {
		level := strconv.Itoa(i)
		gauge(c.levelFiles, float64(l.Files), level)
		gauge(c.levelBytes, float64(l.Bytes), level)
	}

	counter(c.cacheHits, float64(m.BlockCacheHits))
	counter(c.cacheMisses, float64(m.BlockCacheMisses))
	gauge(c.cacheBytes, float64(m.BlockCacheBytes))

	gauge(c.diskUsage, float64(m.DiskUsageBytes))
	gauge(c.liveTables, float64(m.LiveTableBytes))
	gauge(c.wal, float64(m.WALBytes))
	gauge(c.memtables, float64(m.MemtableBytes))
	gauge(c.fsAvail, float64(m.FilesystemAvailBytes))
	gauge(c.fsSize, float64(m.FilesystemSizeBytes))
	gauge(c.minFree, float64(m.MinFreeBytes))
	counter(c.stalls, float64(m.WriteStalls))
	counter(c.stallSeconds, m.WriteStallTime.Seconds())
}

// Ready reports whether the server should receive traffic (the gRPC health service and the
// metrics listener's /readyz): nil once the store is open and Options.Ready says so, until
// Stop begins. It also brings the health status up to date, so that a caller that saw Ready
// return nil finds the health service SERVING.
func (s *Server) Ready() error {
	err := s.ready()
	s.setHealth(err == nil)
	return err
}

func (s *Server) ready() error {
	select {
	case <-s.stopping:
		return errors.New("api: not ready: the server is stopping")
	default:
	}
	if _, err := s.st.Metrics(); err != nil {
		return fmt.Errorf("api: not ready: %w", err)
	}
	if s.opts.Ready != nil {
		return s.opts.Ready()
	}
	return nil
}
