package check

import (
	"sync"

	"github.com/kengen/kengen/store"
)

// The sub-problem cache (Zanzibar §3.2.5): answers of finished sub-problems, kept across
// requests for the revision they were computed at. A revision's data never changes, so an
// entry is never stale; it only ages out when the byte budget needs room. Requests that read
// at the same revision — minimize_latency callers share one when the API quantises revisions
// — share entries, and an expensive shared sub-problem (a role high in the tree, a large group)
// is evaluated once per revision instead of once per request.
//
// Only answers that assumed nothing about the path above them (no cycle cut) are cached, and
// the request's caveat context is part of the key.

// cacheShards spreads the lock; a power of two.
const cacheShards = 32

type cacheKey struct {
	st  *store.Store
	rev store.Revision
	ctx string // the request's caveat context, as bulk check groups it
	k   key
}

type subCache struct {
	shardBudget int64
	shards      [cacheShards]cacheShard
}

type cacheShard struct {
	mu struct {
		sync.Mutex
		m     map[cacheKey]outcome
		order []cacheKey // insertion order, for eviction
		head  int        // the oldest live position in order
		bytes int64
	}
}

// newSubCache returns a cache holding about budget bytes, or nil for a budget <= 0.
func newSubCache(budget int64) *subCache {
	if budget <= 0 {
		return nil
	}
	c := &subCache{shardBudget: budget / cacheShards}
	for i := range c.shards {
		c.shards[i].mu.m = make(map[cacheKey]outcome)
	}
	return c
}

func (ck *cacheKey) shard() int {
	h := uint32(2166136261)
	for _, s := range [...]string{ck.k.resType, ck.k.resID, ck.k.relation, ck.k.subject.id} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint32(s[i])) * 16777619
		}
	}
	return int(h^uint32(ck.rev)) & (cacheShards - 1)
}

// entrySize estimates an entry's memory: its strings, the map slot and the order slot.
func (ck *cacheKey) entrySize(o *outcome) int64 {
	n := len(ck.ctx) + len(ck.k.resType) + len(ck.k.resID) + len(ck.k.relation) +
		len(ck.k.subject.typ) + len(ck.k.subject.id) + len(ck.k.subject.relation)
	for _, m := range o.missing {
		n += len(m) + 16
	}
	return int64(n) + 3*160
}

func (c *subCache) get(ck cacheKey) (outcome, bool) {
	s := &c.shards[ck.shard()]
	s.mu.Lock()
	o, ok := s.mu.m[ck]
	s.mu.Unlock()
	return o, ok
}

func (c *subCache) put(ck cacheKey, o outcome) {
	o.exp = nil
	size := ck.entrySize(&o)
	s := &c.shards[ck.shard()]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.m[ck]; ok {
		return
	}
	s.mu.m[ck] = o
	s.mu.order = append(s.mu.order, ck)
	s.mu.bytes += size
	for s.mu.bytes > c.shardBudget && s.mu.head < len(s.mu.order) {
		old := s.mu.order[s.mu.head]
		s.mu.order[s.mu.head] = cacheKey{}
		s.mu.head++
		if eo, ok := s.mu.m[old]; ok {
			s.mu.bytes -= old.entrySize(&eo)
			delete(s.mu.m, old)
		}
	}
	// Compact the order slice once its evicted prefix dominates.
	if s.mu.head > 1024 && s.mu.head*2 > len(s.mu.order) {
		s.mu.order = append([]cacheKey(nil), s.mu.order[s.mu.head:]...)
		s.mu.head = 0
	}
}

// entries reports how many entries the cache holds, for tests and metrics.
func (c *subCache) entries() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.mu.m)
		s.mu.Unlock()
	}
	return n
}
