package store

import "sync/atomic"

// A Hold keeps the change log from a revision on: garbage collection does not move the
// horizon past it, so a Watch stream that has fallen behind can still send every change it
// owes, instead of failing in the middle with ErrRevisionNotRetained. It is bounded: a held
// revision older than Retention + Options.HoldLimit is no longer kept, and the holder's next
// read of the change log fails clearly. Holds do not delay a snapshot restore (Readers do).
type Hold struct {
	s   *Store
	id  uint64
	rev atomic.Uint64
}

// Hold keeps the changes after rev retained until Release (within the bound above).
func (s *Store) Hold(rev Revision) *Hold {
	h := &Hold{s: s}
	h.rev.Store(uint64(rev))
	s.mu.Lock()
	s.mu.nextHold++
	h.id = s.mu.nextHold
	s.mu.holds[h.id] = h
	s.mu.Unlock()
	return h
}

// Move moves the hold to rev: the changes up to rev have been sent.
func (h *Hold) Move(rev Revision) { h.rev.Store(uint64(rev)) }

// Release ends the hold.
func (h *Hold) Release() {
	h.s.mu.Lock()
	delete(h.s.mu.holds, h.id)
	h.s.mu.Unlock()
}

// oldestHold is the lowest held revision and whether any hold is open. Call with s.mu held.
func (s *Store) oldestHold() (Revision, bool) {
	var oldest Revision
	ok := false
	for _, h := range s.mu.holds {
		if r := Revision(h.rev.Load()); !ok || r < oldest {
			oldest, ok = r, true
		}
	}
	return oldest, ok
}
