package check

import (
	"context"
	"sync/atomic"
)

// OperationCounts adds up the work of every check evaluated under one context: the
// sub-problems evaluated and those answered from earlier work (the request's memo or the
// Checker's cache). They are what SpiceDB reports as the dispatched and cached operation
// counts of a call; api/ sends them in the response trailers.
type OperationCounts struct {
	dispatched, cached atomic.Int64
}

type opCountsKey struct{}

// WithOperationCounts returns a context under which every check adds its work to the
// returned counts.
func WithOperationCounts(ctx context.Context) (context.Context, *OperationCounts) {
	c := new(OperationCounts)
	return context.WithValue(ctx, opCountsKey{}, c), c
}

// Dispatched is how many sub-problems were evaluated.
func (c *OperationCounts) Dispatched() int64 { return c.dispatched.Load() }

// Cached is how many sub-problems were answered from earlier work instead.
func (c *OperationCounts) Cached() int64 { return c.cached.Load() }

// countOperations adds one check's work to the counts ctx carries, if any.
func countOperations(ctx context.Context, s *walkStats) {
	c, ok := ctx.Value(opCountsKey{}).(*OperationCounts)
	if !ok {
		return
	}
	c.dispatched.Add(s.subproblems.Load())
	c.cached.Add(s.memoHits.Load() + s.cacheHits.Load())
}
