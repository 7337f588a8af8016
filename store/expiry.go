package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The expiration index: one key per live version that has an expiration,
//
//	x expiration(12 bytes) forwardKey                            expiration index (empty value)
//
// the expiration as Unix seconds with the sign bit flipped (so that byte order is time order
// for any year) and nanoseconds, then the version's whole forward key. Apply writes the entry
// with the version and deletes it when the version ends, so the index holds exactly the live
// versions that will expire, soonest first: the first key is the next pending expiration, and
// the versions expired at a time are one range scan.
//
// Every Apply, at its `at`, ends (collects) the live versions whose expiration is at or before
// `at`, at most expireLimit of them, as a delete would: deletedRev = the batch's revision in
// both indexes, the live counts decremented, an entry in the change log so that garbage
// collection retires the versions. The change log marks them opExpire, and Changes (Watch)
// does not report them: SpiceDB's Watch reports writes and deletes made through the API, not
// expirations. WriteSchema collects every expired version before its stranding check.
//
// Readers are unaffected: a Reader at R already hid a version expired at R's time, and the
// collection ends it at a revision whose time is past its expiration.
const prefixExpiry = 'x'

// keyExpiryIndexed marks a store whose expiration index is complete. A store written before
// the index existed lacks it; Open builds the index once and writes the marker.
var keyExpiryIndexed = []byte("mexpiry-indexed")

// expireLimit bounds how many expired versions one Apply collects; the next Apply (the
// leader's clock entry, raftnode/clock.go) collects the rest.
const expireLimit = 1000

// opExpire is the change log's operation for a version ended by its expiration. It is never
// accepted in a Batch (validateUpdates refuses operations past OpDelete).
const opExpire = OpDelete + 1

// expiryTimeLen is the size of the time at the front of an expiration index key.
const expiryTimeLen = 12

// appendExpiryTime appends the index form of t: order-preserving for any year.
func appendExpiryTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func decodeExpiryTime(b []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(b)^(1<<63)), int64(binary.BigEndian.Uint32(b[8:12]))).UTC()
}

// expiryKey is the expiration index key of the version with forward key k expiring at exp.
func expiryKey(exp time.Time, k []byte) []byte {
	b := make([]byte, 0, 1+expiryTimeLen+len(k))
	return append(appendExpiryTime(append(b, prefixExpiry), exp), k...)
}

// expiredBound is the upper bound of the index keys of versions expired at `at`.
func expiredBound(at time.Time) []byte {
	return upperBound(appendExpiryTime([]byte{prefixExpiry}, at))
}

// indexExpiry adds the expiration index entry of a new version with forward key k.
func (w *writer) indexExpiry(k []byte, rel *Relationship) error {
	if rel.Expiration.IsZero() {
		return nil
	}
	return w.wb.Set(expiryKey(rel.Expiration, k), nil, nil)
}

// unindexExpiry removes the expiration index entry of a version that ends.
func (w *writer) unindexExpiry(k []byte, rel *Relationship) error {
	if rel.Expiration.IsZero() {
		return nil
	}
	return w.wb.Delete(expiryKey(rel.Expiration, k), nil)
}

// expire ends the live versions expired at the writer's time, at most limit of them (0 for
// all), soonest first, and records them in the change log as opExpire.
func (w *writer) expire(limit int) error {
	bound := expiredBound(w.at)
	if w.pre != nil && !w.wroteExpired() {
		// One seek in the state before the batch: in the common case nothing has expired, and
		// the scan below (an iterator over the batch and the store) is not needed.
		if !w.pre.SeekGE([]byte{prefixExpiry}) || bytes.Compare(w.pre.Key(), bound) >= 0 {
			return w.pre.Error()
		}
	}
	var keys [][]byte
	// The batch's own view: versions the batch already ended have left the index.
	err := scanRange(w.wb, []byte{prefixExpiry}, bound, func(k, _ []byte) (bool, error) {
		keys = append(keys, bytes.Clone(k))
		return limit == 0 || len(keys) < limit, nil
	})
	if err != nil {
		return err
	}
	for _, xk := range keys {
		if len(xk) < 1+expiryTimeLen+9 {
			return fmt.Errorf("%w: malformed expiration index key %q", ErrCorrupt, xk)
		}
		k := xk[1+expiryTimeLen:]
		v, closer, err := w.wb.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			// An entry without its version (never written so): drop it.
			if err := w.wb.Delete(xk, nil); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		old := bytes.Clone(v)
		_ = closer.Close()
		if valueDeleted(old) != live {
			if err := w.wb.Delete(xk, nil); err != nil {
				return err
			}
			continue
		}
		if err := w.markDeleted(k, old); err != nil { // removes xk
			return err
		}
		var rel Relationship
		_ = decodeForwardKey(k, &rel)
		_, _ = decodePayload(old[8:], &rel)
		w.change.updates = append(w.change.updates, Update{Op: opExpire, Relationship: rel})
	}
	return nil
}

// wroteExpired reports whether the batch wrote a version already expired at its time.
func (w *writer) wroteExpired() bool {
	for i := range w.change.updates {
		u := &w.change.updates[i]
		if (u.Op == OpTouch || u.Op == OpCreate) && !u.Relationship.Expiration.IsZero() && !u.Relationship.Expiration.After(w.at) {
			return true
		}
	}
	return false
}

// expireAll collects into wb every version expired at `at`, with its live counts, for
// WriteSchema: expired relationships never strand a schema change. It returns the change log
// updates and the change of the live count.
func (s *Store) expireAll(wb *pebble.Batch, rev Revision, at time.Time) ([]Update, int64, error) {
	w := &writer{s: s, wb: wb, rev: rev, at: at, counts: map[string]int64{}}
	if err := w.expire(0); err != nil {
		return nil, 0, err
	}
	delta, err := w.writeCounts()
	return w.change.updates, delta, err
}

// NextExpiration returns the earliest expiration among the live versions at the latest
// revision; ok is false if none will expire. A version whose expiration is at or before the
// time of the latest revision is already invisible there and waits only to be collected by the
// next Apply. raftnode's clock proposes an entry when this time has come, so that expired
// relationships stop counting without waiting for a write.
func (s *Store) NextExpiration() (time.Time, bool, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return time.Time{}, false, ErrClosed
	}
	var next time.Time
	found := false
	err := scanPrefix(s.db, []byte{prefixExpiry}, func(k, _ []byte) (bool, error) {
		if len(k) < 1+expiryTimeLen {
			return false, fmt.Errorf("%w: malformed expiration index key %q", ErrCorrupt, k)
		}
		next, found = decodeExpiryTime(k[1:]), true
		return false, nil
	})
	return next, found, err
}

// indexExpirations builds the expiration index of a store written before it existed: every
// live version with an expiration gets its entry, in batches, then the marker. It runs once,
// at Open; a crash before the marker only makes the next Open do it again.
func (s *Store) indexExpirations() error {
	if _, ok, err := s.get(keyExpiryIndexed); err != nil || ok {
		return err
	}
	wb := s.db.NewBatch()
	defer func() { _ = wb.Close() }()
	n := 0
	err := scanPrefix(s.db, []byte{prefixForward}, func(k, v []byte) (bool, error) {
		if len(v) < 9 || valueDeleted(v) != live {
			return true, nil
		}
		exp, ok := valueExpiration(v)
		if !ok {
			return true, nil
		}
		if err := wb.Set(expiryKey(exp, k), nil, nil); err != nil {
			return false, err
		}
		if n++; n%10000 == 0 {
			if err := wb.Commit(pebble.NoSync); err != nil {
				return false, err
			}
			_ = wb.Close()
			wb = s.db.NewBatch()
		}
		return true, nil
	})
	if err == nil {
		err = wb.Set(keyExpiryIndexed, nil, nil)
	}
	if err == nil {
		err = wb.Commit(pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("store: building the expiration index: %w", err)
	}
	return nil
}

// withoutExpired drops the collections (opExpire) from a change log entry's updates: Changes
// reports writes and deletes only.
func withoutExpired(updates []Update) []Update {
	out := updates[:0:0]
	for _, u := range updates {
		if u.Op != opExpire {
			out = append(out, u)
		}
	}
	return out
}

// notBefore returns at, or the time of the latest revision if at is before it. Revision times
// never go back, so that a leader whose clock stepped back (or a new leader whose clock is
// behind) cannot make a relationship hidden by an earlier revision's time show again. Every
// node holds the same latest revision and time, so every node decides alike.
func (s *Store) notBefore(at time.Time) time.Time {
	if prev, err := s.revisionTime(s.Revision()); err == nil && at.Before(prev) {
		return prev
	}
	return at
}
