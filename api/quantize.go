package api

import (
	"sync"
	"time"

	"github.com/kengen/kengen/store"
)

// sharedRevision is the revision minimize_latency reads share for up to
// Options.QuantizeWindow (Zanzibar §3.2.5): requests at one revision share the checker's
// sub-problem cache, where requests each at the newest revision would not.
type sharedRevision struct {
	mu struct {
		sync.Mutex
		rev   store.Revision
		until time.Time
	}
}

// quantizedReader opens a Reader at the shared revision, choosing a new one (the latest
// applied) when the window has passed. It returns nil when quantization is off or the
// shared revision can no longer be read (garbage collected, or a restore replaced the store),
// and the caller reads the latest revision instead.
func (s *Server) quantizedReader() *store.Reader {
	window := s.opts.QuantizeWindow
	if window <= 0 {
		return nil
	}
	now := time.Now()
	q := &s.shared
	q.mu.Lock()
	if q.mu.rev == 0 || !now.Before(q.mu.until) {
		q.mu.rev, q.mu.until = s.st.Revision(), now.Add(window)
	}
	rev := q.mu.rev
	q.mu.Unlock()
	rd, err := s.st.Reader(rev)
	if err != nil {
		return nil
	}
	return rd
}
