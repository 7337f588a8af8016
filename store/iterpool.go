package store

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// iterPool keeps the store's idle Pebble iterators for reuse by every Reader: creating an
// iterator, and positioning it in a level's files for the first time, cost more than the
// seek that follows, and a check makes a dozen short reads. Sharing across Readers matters
// because the API opens a Reader per request.
//
// An iterator sees the database as it was when it was created. It can serve a Reader at
// revision R if the store had applied R by then (born >= R): every version visible at R is
// in its view, and garbage collection only removes versions no open Reader can see. A
// returned iterator older than the latest revision is closed rather than kept, since new
// Readers ask for the latest; and none is kept longer than maxIterAge, since an open iterator
// keeps the memtables and files it reads from alive after flushes and compactions.
type iterPool struct {
	applied *atomic.Uint64 // the store's latest applied revision
	mu      struct {
		sync.Mutex
		free   []*iter
		closed bool
	}
}

// iter is a Pebble iterator with the revision the store had applied when it was created.
type iter struct {
	*pebble.Iterator
	born   Revision
	bornAt time.Time
}

const (
	// maxPooledIters bounds the idle iterators kept: a few per concurrent request.
	maxPooledIters = 64
	// maxIterAge bounds how long an iterator is reused.
	maxIterAge = time.Second
)

// take returns an idle iterator that can serve revision rev, or nil.
func (p *iterPool) take(rev Revision) *iter {
	var stale []*iter
	defer func() {
		for _, it := range stale {
			_ = it.Close()
		}
	}()
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.mu.free); n > 0; n = len(p.mu.free) {
		it := p.mu.free[n-1]
		p.mu.free[n-1] = nil
		p.mu.free = p.mu.free[:n-1]
		if now.Sub(it.bornAt) > maxIterAge {
			stale = append(stale, it)
			continue
		}
		if it.born >= rev {
			return it
		}
		stale = append(stale, it)
	}
	return nil
}

func (p *iterPool) latest() Revision { return Revision(p.applied.Load()) }

// put keeps it for reuse if it can still serve the latest revision (take checks its age);
// ok is false if the caller must close it.
func (p *iterPool) put(it *iter) (ok bool) {
	if it.born < p.latest() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed || len(p.mu.free) >= maxPooledIters {
		return false
	}
	p.mu.free = append(p.mu.free, it)
	return true
}

// drain closes the idle iterators; with closing, the pool keeps none afterwards. The store
// drains it before closing or replacing its database, when no read is in flight.
func (p *iterPool) drain(closing bool) {
	p.mu.Lock()
	free := p.mu.free
	p.mu.free = nil
	p.mu.closed = p.mu.closed || closing
	p.mu.Unlock()
	for _, it := range free {
		_ = it.Close()
	}
}

// newIter returns an iterator bounded to [lower, upper), lent from the store's pool when it
// can be.
func (v *view) newIter(lower, upper []byte) (*iter, error) {
	if v.pool == nil {
		it, err := v.src.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		return &iter{Iterator: it}, err
	}
	if it := v.pool.take(v.rev); it != nil {
		it.SetBounds(lower, upper)
		return it, nil
	}
	born, bornAt := v.pool.latest(), time.Now()
	it, err := v.src.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	return &iter{Iterator: it, born: born, bornAt: bornAt}, nil
}

// release returns it to the pool, or closes it; the error is the iterator's own.
func (v *view) release(it *iter) error {
	if err := it.Error(); err != nil {
		return errors.Join(err, it.Close())
	}
	if v.pool != nil && v.pool.put(it) {
		return nil
	}
	return it.Close()
}
