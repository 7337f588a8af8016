package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// gcBatchEntries is how many change log entries one garbage collection batch covers.
const gcBatchEntries = 256

// CollectGarbage advances the oldest retained revision (the horizon) to the earliest revision
// whose time is at or after now - Retention, never past the latest revision nor past the
// revision of an open Reader, and deletes the versions no retained revision can see: those
// deleted at or before the horizon. It returns how many versions it removed.
//
// The change log says which relationships each revision ended versions of, so a collection
// costs in proportion to the changes it retires, not to the size of the store.
func (s *Store) CollectGarbage(now time.Time) (removed int, err error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	// Collecting writes tombstones before compactions free anything.
	if err := s.CheckFreeSpace(); err != nil {
		return 0, err
	}

	target, err := s.retentionTarget(now, s.opts.Retention)
	if err != nil {
		return 0, err
	}
	// An open Hold keeps its revision, unless it is older than the longer window a hold may
	// keep (then its holder fails at its next read of the change log).
	s.mu.Lock()
	_, held := s.oldestHold()
	s.mu.Unlock()
	var holdFloor Revision
	if held {
		if holdFloor, err = s.retentionTarget(now, s.opts.Retention+s.opts.HoldLimit); err != nil {
			return 0, err
		}
	}
	s.mu.Lock()
	for rev := range s.mu.readers {
		target = min(target, rev)
	}
	if h, ok := s.oldestHold(); ok {
		target = min(target, max(h, holdFloor))
	}
	if target <= s.mu.horizon {
		s.mu.Unlock()
		return 0, nil
	}
	s.mu.horizon = target
	s.mu.Unlock()
	if err := s.db.Set(keyHorizon, appendRev(nil, target), s.writeOpts); err != nil {
		return 0, fmt.Errorf("store: record oldest retained revision %d: %w", target, err)
	}

	removed, err = s.retireChanges(target)
	if err != nil {
		return removed, err
	}
	closures, err := s.retireClosures(target)
	removed += closures
	if err != nil {
		return removed, err
	}
	counters, err := s.retireCounters(target)
	removed += counters
	if err != nil {
		return removed, err
	}
	return removed, s.retireSchemas(target)
}

// retentionTarget returns the earliest revision whose time is at or after now - window, or
// the latest revision if every revision is older.
func (s *Store) retentionTarget(now time.Time, window time.Duration) (Revision, error) {
	cutoff := now.Add(-window)
	target := s.Revision()
	s.mu.Lock()
	lower := revKey(prefixChange, s.mu.horizon)
	s.mu.Unlock()
	err := scanRange(s.db, lower, []byte{prefixChange + 1}, func(k, v []byte) (bool, error) {
		t, err := decodeChangeTime(v)
		if err != nil {
			return false, err
		}
		if !t.Before(cutoff) {
			target = min(target, keyRev(k))
			return false, nil
		}
		return true, nil
	})
	return target, err
}

// retireChanges deletes, for every change log entry at or below horizon, the versions of its
// relationships that were deleted at or before horizon, and the entries themselves except the
// one in force at horizon (it gives the horizon its time).
func (s *Store) retireChanges(horizon Revision) (int, error) {
	removed := 0
	for {
		// Collect one batch worth of entries.
		var keys [][]byte
		var entries []*changeEntry
		err := scanRange(s.db, []byte{prefixChange}, revKey(prefixChange, horizon+1), func(k, v []byte) (bool, error) {
			e, err := decodeChange(v)
			if err != nil {
				return false, err
			}
			keys = append(keys, append([]byte(nil), k...))
			entries = append(entries, e)
			return len(keys) <= gcBatchEntries, nil
		})
		if err != nil {
			return removed, err
		}
		// The last entry at or below the horizon stays.
		last := len(keys) <= gcBatchEntries
		if last && len(keys) > 0 {
			keys, entries = keys[:len(keys)-1], entries[:len(entries)-1]
		}
		if len(keys) > 0 {
			wb := s.db.NewBatch()
			n, err := s.retireEntries(wb, horizon, entries)
			if err == nil {
				err = wb.DeleteRange(keys[0], upperBound(keys[len(keys)-1]), nil)
			}
			if err == nil {
				err = wb.Commit(s.writeOpts)
			}
			_ = wb.Close()
			if err != nil {
				return removed, err
			}
			removed += n
		}
		if last {
			return removed, nil
		}
	}
}

// retireEntries adds to wb the deletion of the versions of the entries' relationships that
// were deleted at or before horizon.
func (s *Store) retireEntries(wb *pebble.Batch, horizon Revision, entries []*changeEntry) (int, error) {
	removed := 0
	seen := map[string]bool{}
	for _, e := range entries {
		for i := range e.updates {
			rel := &e.updates[i].Relationship
			err := scanPrefix(s.db, forwardPrefix(nil, rel), func(k, v []byte) (bool, error) {
				if valueDeleted(v) > horizon || seen[string(k)] {
					return true, nil
				}
				seen[string(k)] = true
				if err := wb.Delete(k, nil); err != nil {
					return false, err
				}
				if err := wb.Delete(append(reversePrefix(nil, rel), k[len(k)-8:]...), nil); err != nil {
					return false, err
				}
				removed++
				return true, nil
			})
			if err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}

// retireSchemas deletes the schema versions older than the one in force at horizon.
func (s *Store) retireSchemas(horizon Revision) error {
	srev, _, ok, err := s.schemaAt(horizon)
	if err != nil || !ok {
		return err
	}
	if err := s.db.DeleteRange([]byte{prefixSchema}, revKey(prefixSchema, srev), s.writeOpts); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for rev := range s.mu.schemas {
		if rev < srev {
			delete(s.mu.schemas, rev)
		}
	}
	return nil
}

// collectPeriodically runs CollectGarbage every GCInterval until Close.
func (s *Store) collectPeriodically() {
	defer close(s.gcDone)
	if s.opts.GCInterval < 0 {
		<-s.stopGC
		return
	}
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
			if _, err := s.CollectGarbage(time.Now()); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrDiskFull) {
				s.opts.Logger.Printf("store: garbage collection: %v", err)
			}
		}
	}
}

// Change is one revision of the change log.
type Change struct {
	Revision Revision
	Time     time.Time
	// SchemaChanged is true when this revision wrote the schema.
	SchemaChanged bool
	// Updates are the relationships the revision created, touched or deleted (deletes by
	// filter appear as one OpDelete per relationship deleted).
	Updates []Update
}

// Changes calls fn on every revision after `after` that changed something, in order, until fn
// returns false. Revisions refused by Apply or WriteSchema are skipped. It fails with
// ErrRevisionNotRetained if the log after `after` is no longer complete.
func (s *Store) Changes(after Revision, fn func(*Change) bool) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.mu.Lock()
	h := s.mu.horizon
	s.mu.Unlock()
	if after < h {
		return fmt.Errorf("%w: changes after revision %d, the oldest retained is %d", ErrRevisionNotRetained, after, h)
	}
	return scanRange(s.db, revKey(prefixChange, after+1), []byte{prefixChange + 1}, func(k, v []byte) (bool, error) {
		e, err := decodeChange(v)
		if err != nil {
			return false, err
		}
		if e.kind == changeRejected {
			return true, nil
		}
		return fn(&Change{Revision: keyRev(k), Time: e.at, SchemaChanged: e.kind == changeSchema, Updates: withoutExpired(e.updates)}), nil
	})
}
