package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
)

// The operations a mix is made of.
const (
	OpCheck           = "check"            // CheckPermission of one pair
	OpBulkCheck       = "bulk-check"       // CheckBulkPermissions of RunOptions.BulkSize pairs
	OpLookupResources = "lookup-resources" // every resource a known subject may reach
	OpLookupSubjects  = "lookup-subjects"  // every subject that may reach a known resource
	OpWrite           = "write"            // one TOUCH, then a check at its revision
)

var allOps = []string{OpCheck, OpBulkCheck, OpLookupResources, OpLookupSubjects, OpWrite}

// Mix is a weighted list of operations; each call picks one at random by weight.
type Mix []MixEntry

// MixEntry is one operation of a mix and its weight.
type MixEntry struct {
	Op     string
	Weight int
}

func (m Mix) String() string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = e.Op
		if len(m) > 1 {
			parts[i] += "=" + strconv.Itoa(e.Weight)
		}
	}
	return strings.Join(parts, ",")
}

// ParseMix reads "check", "check=90,write=10" (operation=weight, weight 1 when left out) or
// "all" (every operation, equal weights).
func ParseMix(s string) (Mix, error) {
	if s == "all" {
		s = strings.Join(allOps, ",")
	}
	var m Mix
	for part := range strings.SplitSeq(s, ",") {
		op, w, hasWeight := strings.Cut(strings.TrimSpace(part), "=")
		e := MixEntry{Op: op, Weight: 1}
		if !contains(allOps, op) {
			return nil, fmt.Errorf("%w: operation %q in %q; choose from %s or all", ErrMix, op, s, strings.Join(allOps, ", "))
		}
		if hasWeight {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%w: weight %q of %s; give a whole number of at least 1", ErrMix, w, op)
			}
			e.Weight = n
		}
		for _, prev := range m {
			if prev.Op == op {
				return nil, fmt.Errorf("%w: operation %s twice in %q", ErrMix, op, s)
			}
		}
		m = append(m, e)
	}
	return m, nil
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// RunOptions shape a run. The run ends after Duration or after Count calls, whichever comes
// first; at least one of them must be set.
type RunOptions struct {
	Mix         Mix
	Concurrency int
	Duration    time.Duration
	Count       int
	// BulkSize is the number of checks in one bulk check (100 by default).
	BulkSize int
	// KnownFraction is the share of checks asked of known-allowed pairs, the rest being
	// random pairs: 0 means the default, one half; a negative value asks random pairs only.
	KnownFraction float64
	// Consistency is "minimize_latency" (the default), "fully_consistent" or
	// "at_least_as_fresh" (the ZedToken of the run's latest write, or of its warm-up check
	// before the first write).
	Consistency string
	// WriteBatch is the number of relationships one write touches (1 by default); the
	// write's items are its relationships.
	WriteBatch int
	// SkipWriteCheck leaves out the check that follows each write (read-your-writes at the
	// write's token), so that a write run measures writes alone.
	SkipWriteCheck bool
	// Seed varies the random pairs; runs with the same seed ask the same questions.
	Seed uint64
	// Examples is how many error and disagreement messages to keep per operation (5).
	Examples int
}

func (o *RunOptions) check() error {
	if len(o.Mix) == 0 {
		o.Mix = Mix{{Op: OpCheck, Weight: 1}}
	}
	if o.Concurrency < 1 {
		return fmt.Errorf("%w: concurrency %d; give at least 1", ErrOptions, o.Concurrency)
	}
	if o.Duration <= 0 && o.Count <= 0 {
		return fmt.Errorf("%w: neither a duration nor a count; give one to end the run", ErrOptions)
	}
	if o.BulkSize <= 0 {
		o.BulkSize = 100
	}
	if o.KnownFraction == 0 {
		o.KnownFraction = 0.5
	}
	if o.KnownFraction > 1 {
		return fmt.Errorf("%w: known fraction %g; give a share between 0 and 1", ErrOptions, o.KnownFraction)
	}
	if o.Examples <= 0 {
		o.Examples = 5
	}
	switch o.Consistency {
	case "", "minimize_latency":
		o.Consistency = "minimize_latency"
	case "fully_consistent", "full":
		o.Consistency = "fully_consistent"
	case "at_least_as_fresh", "fresh":
		o.Consistency = "at_least_as_fresh"
	default:
		return fmt.Errorf("%w: consistency %q; choose minimize_latency, fully_consistent or at_least_as_fresh", ErrOptions, o.Consistency)
	}
	if o.WriteBatch == 0 {
		o.WriteBatch = 1
	}
	if o.WriteBatch < 1 || o.WriteBatch > 1000 {
		return fmt.Errorf("%w: write batch %d; give 1 to 1000 relationships per write", ErrOptions, o.WriteBatch)
	}
	return nil
}

// opStats are one worker's figures for one operation.
type opStats struct {
	lat                                      []time.Duration
	calls, items, errors, checked, disagreed int
	errs, ex                                 examples
}

// worker is one concurrent caller.
type worker struct {
	client      *authzed.Client
	ds          *Dataset
	opts        *RunOptions
	rng         *rand.Rand
	cursor      *atomic.Int64 // the next known pair, shared so callers walk distinct pairs
	consistency *v1.Consistency
	// latest is the ZedToken of the run's latest write (at_least_as_fresh reads use it).
	latest *atomic.Pointer[v1.ZedToken]
	stats  map[string]*opStats
}

func run(ctx context.Context, client *authzed.Client, ds *Dataset, opts RunOptions) (*Report, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if len(ds.known) == 0 {
		return nil, fmt.Errorf("%w: %s has no known-allowed pairs to ask", ErrDataset, ds.Name)
	}
	consistency := &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
	if opts.Consistency == "fully_consistent" {
		consistency = &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	}
	totalWeight := 0
	for _, e := range opts.Mix {
		totalWeight += e.Weight
	}

	// Open the connection before the clock starts, and make one check of an object outside
	// the dataset, which shares no sub-problem with it: the first call of a kind costs more
	// than the rest on both ends (connection, protobuf tables), and that is not what a run
	// measures. A failure here shows again in the run's own calls.
	_, _ = client.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	const outside = "kengen-bench-warm-up"
	var latest atomic.Pointer[v1.ZedToken]
	if opts.Consistency == "at_least_as_fresh" {
		consistency = &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	}
	warm, _ := client.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: consistency,
		Resource:    &v1.ObjectReference{ObjectType: ds.ResourceType, ObjectId: outside},
		Permission:  ds.Permission,
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: ds.SubjectType, ObjectId: outside}},
	})
	if warm != nil {
		latest.Store(warm.GetCheckedAt())
	}

	var (
		cursor atomic.Int64
		issued atomic.Int64
		wg     sync.WaitGroup
	)
	workers := make([]*worker, opts.Concurrency)
	start := time.Now()
	deadline := start.Add(opts.Duration)
	for i := range workers {
		w := &worker{
			client: client, ds: ds, opts: &opts, cursor: &cursor, consistency: consistency, latest: &latest,
			rng:   rand.New(rand.NewPCG(opts.Seed, uint64(i)+1)),
			stats: make(map[string]*opStats),
		}
		for _, e := range opts.Mix {
			w.stats[e.Op] = &opStats{errs: examples{max: opts.Examples}, ex: examples{max: opts.Examples}}
		}
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				if opts.Duration > 0 && !time.Now().Before(deadline) {
					return
				}
				if opts.Count > 0 && issued.Add(1) > int64(opts.Count) {
					return
				}
				w.do(ctx, pick(opts.Mix, totalWeight, w.rng))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: run of %s interrupted: %w", opts.Mix, err)
	}

	r := &Report{Dataset: ds.Name, Mix: opts.Mix.String(), Consistency: opts.Consistency, Concurrency: opts.Concurrency, Seconds: elapsed}
	for _, e := range opts.Mix {
		merged := opStats{errs: examples{max: opts.Examples}, ex: examples{max: opts.Examples}}
		for _, w := range workers {
			s := w.stats[e.Op]
			merged.lat = append(merged.lat, s.lat...)
			merged.calls += s.calls
			merged.items += s.items
			merged.errors += s.errors
			merged.checked += s.checked
			merged.disagreed += s.disagreed
			for _, m := range s.errs.list {
				merged.errs.add("%s", m)
			}
			for _, m := range s.ex.list {
				merged.ex.add("%s", m)
			}
		}
		o := OpReport{
			Op: e.Op, Calls: merged.calls, Items: merged.items, Latency: Summarize(merged.lat),
			Errors: merged.errors, ErrorExamples: merged.errs.list,
			Checked: merged.checked, Disagreements: merged.disagreed, Examples: merged.ex.list,
		}
		if elapsed > 0 {
			o.PerSecond = float64(o.Calls) / elapsed
			o.ItemsPerSecond = float64(o.Items) / elapsed
		}
		r.Ops = append(r.Ops, o)
		r.Calls += o.Calls
		r.Errors += o.Errors
		r.Checked += o.Checked
		r.Disagreements += o.Disagreements
	}
	return r, nil
}

func pick(m Mix, total int, rng *rand.Rand) string {
	if len(m) == 1 {
		return m[0].Op
	}
	n := rng.IntN(total)
	for _, e := range m {
		if n < e.Weight {
			return e.Op
		}
		n -= e.Weight
	}
	return m[len(m)-1].Op
}
