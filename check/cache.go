package check

import (
	"encoding/binary"
	"hash/maphash"
	"math"
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
// the request's caveat context is part of the key. A conditional answer (one that names
// missing caveat parameters) is not cached: it is rare, and leaving it out keeps every entry
// free of pointers.
//
// An entry is keyed by a 128-bit hash of (store, revision, caveat context, sub-problem) and
// holds one byte, so the cache holds no pointers at all: the garbage collector never scans
// it, and a lookup hashes the sub-problem's strings once instead of comparing them. Two
// different sub-problems share a key with probability about n²/2¹²⁹ for n entries ever
// stored — for a billion entries, about 10⁻²¹.

// cacheShards spreads the lock; a power of two.
const cacheShards = 32

// cacheEntryBytes is the memory of one entry: the 16-byte key and 1-byte answer in the map
// with its control bytes and load factor (about 32 bytes), and the key again in the eviction
// ring.
const cacheEntryBytes = 48

type cacheKey [2]uint64

var cacheSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// keyOf hashes the identity of a sub-problem's answer.
func keyOf(st *store.Store, rev store.Revision, ctx string, k *key) cacheKey {
	var out cacheKey
	for i, seed := range cacheSeeds {
		var h maphash.Hash
		h.SetSeed(seed)
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], st.ID())
		binary.LittleEndian.PutUint64(b[8:], uint64(rev))
		h.Write(b[:])
		for _, s := range [...]string{ctx, k.resType, k.resID, k.relation, k.subject.typ, k.subject.id, k.subject.relation} {
			h.WriteString(s)
			h.WriteByte(0)
		}
		out[i] = h.Sum64()
	}
	return out
}

type subCache struct {
	shardEntries int
	shards       [cacheShards]cacheShard
}

type cacheShard struct {
	mu struct {
		sync.Mutex
		m map[cacheKey]cached
		// ring holds the keys in insertion order; once full, next is the oldest, which the
		// next insertion evicts.
		ring []cacheKey
		next int
	}
}

// newSubCache returns a cache holding about budget bytes, or nil for a budget <= 0.
func newSubCache(budget int64) *subCache {
	if budget <= 0 {
		return nil
	}
	c := &subCache{shardEntries: max(1, int(budget/cacheEntryBytes/cacheShards))}
	for i := range c.shards {
		c.shards[i].mu.m = make(map[cacheKey]cached)
	}
	return c
}

func (c *subCache) shard(ck cacheKey) *cacheShard { return &c.shards[ck[0]&(cacheShards-1)] }

func (c *subCache) get(ck cacheKey) (outcome, bool) {
	s := c.shard(ck)
	s.mu.Lock()
	e, ok := s.mu.m[ck]
	s.mu.Unlock()
	return outcome{m: e.m, low: noCycle, height: int(e.height)}, ok
}

func (c *subCache) put(ck cacheKey, o outcome) {
	if o.m == ConditionalPermission || o.m == unresolved {
		return
	}
	s := c.shard(ck)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.m[ck]; ok {
		return
	}
	if len(s.mu.ring) < c.shardEntries {
		s.mu.ring = append(s.mu.ring, ck)
	} else {
		delete(s.mu.m, s.mu.ring[s.mu.next])
		s.mu.ring[s.mu.next] = ck
		s.mu.next = (s.mu.next + 1) % len(s.mu.ring)
	}
	s.mu.m[ck] = cached{o.m, int32(min(o.height, math.MaxInt32))}
}

// cached is one cache entry: the answer, and its outcome's height (the depth rule needs it).
type cached struct {
	m      Membership
	height int32
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

// cacheMinWork is how many sub-problems an answer must have taken, itself included, to earn
// a cache entry (answers from the Leopard index always do). A permission over two direct
// relations costs about what the cache lookup that would replace it costs; under random
// traffic most entries are never read again, and storing them is then pure overhead
// (docs/benchmarks.md, "sub-problem cache").
const cacheMinWork = 3
