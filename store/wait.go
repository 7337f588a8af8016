package store

import (
	"context"
	"fmt"
)

// WaitApplied waits until the store has applied rev, or ctx ends: the one way kengen waits for a
// revision (a read at at_least_as_fresh, a fully consistent read after its barrier, a node
// catching up in tests). It sleeps on Applied, so it wakes at the advance itself, and it ends
// with ErrRevisionNotApplied wrapping ctx's error when the caller gives up or goes away.
func (s *Store) WaitApplied(ctx context.Context, rev Revision) error {
	for {
		ch := s.Applied() // before the check, so that an advance in between is not missed
		if s.Revision() >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: revision %d, this node has applied %d: %w", ErrRevisionNotApplied, rev, s.Revision(), ctx.Err())
		}
	}
}
