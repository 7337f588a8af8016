package check

import (
	"sync/atomic"
	"time"
)

// Observation describes one evaluated check, for metrics: Options.Observe receives one per
// request (each item of a bulk call is one). It carries no ids, only the bounded label set
// (resource type and permission) and counts.
type Observation struct {
	ResourceType string
	Permission   string
	Membership   Membership
	Err          error
	// Subproblems is how many sub-problems were evaluated (memo hits not counted).
	Subproblems int
	// MemoHits is how many sub-problems were answered from the request's memo.
	MemoHits int
	// CacheHits is how many sub-problems were answered from the Checker's cache of earlier
	// requests at the same revision.
	CacheHits int
	// Depth is the most objects one path traversed.
	Depth int
	// IndexHits is how many recursive sub-problems the Leopard index answered; IndexFallbacks
	// how many it covers but had to walk because an object's closure overflowed its bound.
	IndexHits, IndexFallbacks int
	Duration                  time.Duration
}

// walkStats counts one request's work; forked walkers share it.
type walkStats struct {
	subproblems, memoHits, depth atomic.Int64
	cacheHits                    atomic.Int64
	indexHits, indexFallbacks    atomic.Int64
}

func (s *walkStats) reachDepth(hops int) {
	for {
		cur := s.depth.Load()
		if int64(hops) <= cur || s.depth.CompareAndSwap(cur, int64(hops)) {
			return
		}
	}
}
