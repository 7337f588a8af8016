package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kengen/kengen/schema"
)

// Reader reads the store as it was at one revision. It is safe for concurrent use by several
// goroutines and must be Closed: an open Reader holds garbage collection back so that its
// revision stays readable. Callbacks must not call Store.Close.
type Reader struct {
	s      *Store
	v      view
	sch    *schema.Schema
	closed atomic.Bool
}

// Reader opens a Reader at rev; rev 0 is the latest applied revision. It fails with
// ErrRevisionNotApplied above Revision() and ErrRevisionNotRetained below the oldest retained
// revision.
func (s *Store) Reader(rev Revision) (*Reader, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	applied := s.Revision()
	if rev == 0 {
		rev = applied
	}
	if rev > applied {
		return nil, fmt.Errorf("%w: revision %d, the latest applied is %d", ErrRevisionNotApplied, rev, applied)
	}
	s.mu.Lock()
	if rev < s.mu.horizon {
		h := s.mu.horizon
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: revision %d, the oldest retained is %d", ErrRevisionNotRetained, rev, h)
	}
	s.mu.readers[rev]++
	s.mu.Unlock()

	r := &Reader{s: s, v: view{src: s.db, rev: rev, pool: s.iters}}
	var err error
	if r.v.at, err = s.revisionTime(rev); err == nil {
		r.sch, err = s.schemaFor(rev)
	}
	if err != nil {
		s.releaseReader(rev)
		return nil, err
	}
	return r, nil
}

func (s *Store) releaseReader(rev Revision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.readers[rev]--; s.mu.readers[rev] <= 0 {
		delete(s.mu.readers, rev)
	}
}

// Applied returns a channel that is closed when the applied revision next advances, so that
// a waiter (a Watch stream, a read waiting for a ZedToken's revision) wakes at once instead of
// polling. Take the channel, then read Revision(), then wait: an advance between the two is
// not missed.
func (s *Store) Applied() <-chan struct{} {
	for {
		if ch := s.applyCh.Load(); ch != nil {
			return *ch
		}
		ch := make(chan struct{})
		if s.applyCh.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// advanced wakes the waiters of Applied after the applied revision moved.
func (s *Store) advanced() {
	if ch := s.applyCh.Swap(nil); ch != nil {
		close(*ch)
	}
}

// revisionAt is a revision and the time it was applied with.
type revisionAt struct {
	rev Revision
	at  time.Time
}

// revisionTime returns the time of the change log entry in force at rev (the zero time for
// revision 0 of a new store).
func (s *Store) revisionTime(rev Revision) (time.Time, error) {
	l := s.latest.Load()
	if l != nil && l.rev == rev {
		return l.at, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixChange}, UpperBound: revKey(prefixChange, rev+1)})
	if err != nil {
		return time.Time{}, err
	}
	defer it.Close()
	if !it.Last() {
		return time.Time{}, it.Error()
	}
	at, err := decodeChangeTime(it.Value())
	// After Open or Restore nothing has filled the cache of the latest revision's time yet:
	// fill it here, or every Reader at the latest revision would read the change log.
	if err == nil && rev == s.Revision() && (l == nil || l.rev < rev) {
		s.latest.CompareAndSwap(l, &revisionAt{rev, at})
	}
	return at, err
}

// schemaFor returns the compiled schema in force at rev.
func (s *Store) schemaFor(rev Revision) (*schema.Schema, error) {
	s.mu.Lock()
	if s.mu.schema != nil && rev >= s.mu.schemaRev {
		defer s.mu.Unlock()
		return s.mu.schema, nil
	}
	s.mu.Unlock()
	srev, text, ok, err := s.schemaAt(rev)
	if err != nil || !ok {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.mu.schemas[srev]; ok {
		return sch, nil
	}
	sch, err := schema.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored schema of revision %d no longer parses: %w", ErrIncompatibleFormat, srev, err)
	}
	s.mu.schemas[srev] = sch
	return sch, nil
}

// Close releases the Reader. Closing twice is harmless.
func (r *Reader) Close() {
	if r.closed.CompareAndSwap(false, true) {
		r.s.releaseReader(r.v.rev)
	}
}

// Store is the store the Reader reads. Caches of answers key on it with the revision: the same
// revision of another store holds other data.
func (r *Reader) Store() *Store { return r.s }

// Revision is the revision the Reader reads at.
func (r *Reader) Revision() Revision { return r.v.rev }

// Time is the time of the batch that made the Reader's revision. Relationships whose
// expiration is at or before it are invisible.
func (r *Reader) Time() time.Time { return r.v.at }

// Schema is the schema in force at the Reader's revision; nil if none had been written.
func (r *Reader) Schema() *schema.Schema { return r.sch }

// enter guards a read against a closed Reader or Store; the caller must call leave.
func (r *Reader) enter() error {
	r.s.closeMu.RLock()
	if r.s.closed {
		r.s.closeMu.RUnlock()
		return ErrClosed
	}
	if r.closed.Load() {
		r.s.closeMu.RUnlock()
		return errors.New("store: reader is closed")
	}
	return nil
}

func (r *Reader) leave() { r.s.closeMu.RUnlock() }

// Get looks up one relationship (subjRel "" or "..." is a plain object subject). ok is false if
// it is not visible at the Reader's revision.
func (r *Reader) Get(resType, resID, relation, subjType, subjID, subjRel string) (Relationship, bool, error) {
	if err := r.enter(); err != nil {
		return Relationship{}, false, err
	}
	defer r.leave()
	return r.v.get(&Relationship{ResourceType: resType, ResourceID: resID, Relation: relation,
		SubjectType: subjType, SubjectID: subjID, SubjectRelation: plain(subjRel)})
}

// Subjects calls fn on every visible relationship of resType:resID#relation, ordered by
// (subject relation, subject type, subject id), plain objects first, until fn returns false.
func (r *Reader) Subjects(resType, resID, relation string, fn func(*Relationship) bool) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	p := objectRelationPrefix(&Relationship{ResourceType: resType, ResourceID: resID, Relation: relation})
	return r.v.scanForward(p, nil, 0, fn)
}

// Object returns every visible relationship of resType:resID, in forward index order
// (relation, subject relation, subject type, subject id), if there are at most limit of them;
// complete is false, and rels nil, if there are more. They are next to each other in the
// index, so one read answers every question about a small object's own relationships, where
// asking relation by relation costs a seek each.
func (r *Reader) Object(resType, resID string, limit int) (rels []Relationship, complete bool, err error) {
	if err := r.enter(); err != nil {
		return nil, false, err
	}
	defer r.leave()
	p := []byte{prefixForward}
	p = appendField(p, resType)
	p = appendField(p, resID)
	tooMany := false
	err = r.v.scan(p, upperBound(p), func(k, val []byte) (bool, error) {
		if !r.v.visible(k, val) {
			return true, nil
		}
		if len(rels) == limit {
			rels, tooMany = nil, true
			return false, nil
		}
		rels = append(rels, Relationship{})
		rel := &rels[len(rels)-1]
		if err := decodeForwardKey(k, rel); err != nil {
			return false, err
		}
		_, err := decodePayload(val[8:], rel)
		return err == nil, err
	})
	if err != nil {
		return nil, false, err
	}
	return rels, !tooMany, nil
}

// SubjectsOfType calls fn on every visible relationship of resType:resID#relation whose subject
// is of type subjType with subject relation subjRel ("" or "..." for plain objects, which
// include the wildcard subjType:*), in subject id order, until fn returns false.
func (r *Reader) SubjectsOfType(resType, resID, relation, subjType, subjRel string, fn func(*Relationship) bool) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	p := objectRelationPrefix(&Relationship{ResourceType: resType, ResourceID: resID, Relation: relation})
	p = appendField(p, plain(subjRel))
	p = appendField(p, subjType)
	return r.v.scanForward(p, nil, 0, fn)
}

// Resources calls fn on every visible relationship whose subject is subjType:subjID#subjRel and
// whose resource is of type resType, on relation relation ("" for any), until fn returns
// false. The order is (relation, resource id).
func (r *Reader) Resources(subjType, subjID, subjRel, resType, relation string, fn func(*Relationship) bool) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	p := []byte{prefixReverse}
	p = appendField(p, subjType)
	p = appendField(p, subjID)
	p = appendField(p, plain(subjRel))
	p = appendField(p, resType)
	if relation != "" {
		p = appendField(p, relation)
	}
	return r.v.scanReverse(p, fn)
}

// Query calls fn on every visible relationship matching f, in forward index order (resource
// type, resource id, relation, subject relation, subject type, subject id), starting strictly
// after `after` (nil for the start), at most limit of them (0 for all).
func (r *Reader) Query(f Filter, after *Relationship, limit int, fn func(*Relationship) bool) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	return r.v.query(&f, after, limit, fn)
}

func plain(subjRel string) string {
	if subjRel == "..." {
		return ""
	}
	return subjRel
}

// view reads the index at one revision and time through a Pebble reader: the DB for Readers
// and preconditions, the indexed batch for relation limits.
type view struct {
	src pebble.Reader
	rev Revision
	at  time.Time
	// pool, when set, lends the store's idle iterators (iterpool.go); src is then the store's
	// database.
	pool *iterPool
}

// scan calls fn on every key in [lower, upper), in order, until fn returns false.
func (v *view) scan(lower, upper []byte, fn func(k, val []byte) (bool, error)) error {
	it, err := v.newIter(lower, upper)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			_ = v.release(it)
			return err
		}
		if !more {
			break
		}
	}
	return corruption(v.release(it))
}

// corruption marks Pebble's corruption errors as ErrCorrupt.
func corruption(err error) error {
	if err != nil && pebble.IsCorruptionError(err) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// visible reports whether the version with key k and value v is visible in the view.
func (v *view) visible(k, val []byte) bool {
	if createdRev(k) > v.rev || v.rev >= valueDeleted(val) {
		return false
	}
	if exp, ok := valueExpiration(val); ok && !exp.After(v.at) {
		return false
	}
	return true
}

func (v *view) get(rel *Relationship) (Relationship, bool, error) {
	p := forwardPrefix(nil, rel)
	it, err := v.newIter(p, upperBound(p))
	if err != nil {
		return Relationship{}, false, err
	}
	// Versions are ordered newest first: the first one created at or before rev is the only
	// candidate.
	if !it.SeekGE(appendCreated(p, v.rev)) || !v.visible(it.Key(), it.Value()) {
		return Relationship{}, false, corruption(v.release(it))
	}
	out := Relationship{ResourceType: rel.ResourceType, ResourceID: rel.ResourceID, Relation: rel.Relation,
		SubjectType: rel.SubjectType, SubjectID: rel.SubjectID, SubjectRelation: rel.SubjectRelation}
	_, err = decodePayload(it.Value()[8:], &out)
	if err = errors.Join(err, corruption(v.release(it))); err != nil {
		return Relationship{}, false, err
	}
	return out, true, nil
}

// scanForward calls fn on the visible relationships of the forward index under prefix p,
// starting at lower if it is past p, at most limit (0 for all), that match (nil for all).
func (v *view) scanForward(p, lower []byte, limit int, fn func(*Relationship) bool, match ...func(*Relationship) bool) error {
	if lower == nil || bytes.Compare(lower, p) < 0 {
		lower = p
	}
	n := 0
	return v.scan(lower, upperBound(p), func(k, val []byte) (bool, error) {
		if !v.visible(k, val) {
			return true, nil
		}
		rel := new(Relationship)
		if err := decodeForwardKey(k, rel); err != nil {
			return false, err
		}
		for _, m := range match {
			if !m(rel) {
				return true, nil
			}
		}
		if _, err := decodePayload(val[8:], rel); err != nil {
			return false, err
		}
		n++
		return fn(rel) && (limit == 0 || n < limit), nil
	})
}

func (v *view) scanReverse(p []byte, fn func(*Relationship) bool) error {
	return v.scan(p, upperBound(p), func(k, val []byte) (bool, error) {
		if !v.visible(k, val) {
			return true, nil
		}
		rel := new(Relationship)
		if err := decodeReverseKey(k, rel); err != nil {
			return false, err
		}
		if _, err := decodePayload(val[8:], rel); err != nil {
			return false, err
		}
		return fn(rel), nil
	})
}

func (v *view) query(f *Filter, after *Relationship, limit int, fn func(*Relationship) bool) error {
	if f.ResourceType == "" && (f.ResourceID != "" || f.ResourceIDPrefix != "") {
		return fmt.Errorf("%w: a filter with a resource id needs a resource type", ErrInvalid)
	}
	if f.ResourceID != "" && f.ResourceIDPrefix != "" {
		return fmt.Errorf("%w: a filter cannot have both a resource id and a resource id prefix", ErrInvalid)
	}
	// The longest key prefix the filter fixes.
	p := []byte{prefixForward}
	if f.ResourceType != "" {
		p = appendField(p, f.ResourceType)
		switch {
		case f.ResourceIDPrefix != "":
			p = append(p, f.ResourceIDPrefix...)
		case f.ResourceID != "":
			p = appendField(p, f.ResourceID)
			if f.Relation != "" {
				p = appendField(p, f.Relation)
				if sf := f.Subject; sf != nil && sf.RelationSet {
					p = appendField(p, plain(sf.Relation))
					p = appendField(p, sf.Type)
					if sf.ID != "" {
						p = appendField(p, sf.ID)
					}
				}
			}
		}
	}
	var lower []byte
	if after != nil {
		a := *after
		normalise(&a)
		lower = upperBound(forwardPrefix(nil, &a))
	}
	return v.scanForward(p, lower, limit, fn, func(rel *Relationship) bool { return f.matches(rel) })
}

// matches reports whether rel satisfies every field of f.
func (f *Filter) matches(rel *Relationship) bool {
	if f.ResourceType != "" && rel.ResourceType != f.ResourceType ||
		f.ResourceID != "" && rel.ResourceID != f.ResourceID ||
		f.ResourceIDPrefix != "" && !strings.HasPrefix(rel.ResourceID, f.ResourceIDPrefix) ||
		f.Relation != "" && rel.Relation != f.Relation {
		return false
	}
	if sf := f.Subject; sf != nil {
		if rel.SubjectType != sf.Type || sf.ID != "" && rel.SubjectID != sf.ID ||
			sf.RelationSet && rel.SubjectRelation != plain(sf.Relation) {
			return false
		}
	}
	return true
}
