package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kengen/kengen/schema"
)

// Apply applies one write batch at revision e.Index, with `at` the batch's time (under Raft
// the leader's clock, carried in the log entry so every node uses the same one; an `at` before
// the latest revision's time is raised to it, so revision times never go back), and records e
// as the applied entry in the same commit. e.Index must be above Revision(), else
// ErrStaleRevision and nothing changes.
//
// The batch is all or nothing: preconditions are evaluated at the state before it, then the
// updates (or the delete by filter) and the relation limits, and on any error none of it is
// written. A refused batch still advances the applied revision to rev, in a batch of its own,
// so that replaying a Raft log is idempotent and a refused entry is never applied again; a
// Reader at rev sees the state of the previous revision with rev's time.
func (s *Store) Apply(e Entry, at time.Time, b *Batch) (Result, error) {
	rev := e.Index
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return Result{}, ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.checkRevision(rev); err != nil {
		return Result{}, err
	}
	// Before anything is written, the refused-entry marker included: a write refused for want
	// of space must be retried, not recorded as refused.
	if err := s.CheckFreeSpace(); err != nil {
		return Result{}, err
	}
	if b == nil {
		b = &Batch{}
	}
	at = s.notBefore(at) // expiry.go
	wb, res, delta, err := s.build(e, at, b)
	if err == nil {
		err = wb.Commit(s.writeOpts)
		_ = wb.Close()
		if err != nil {
			return Result{}, fmt.Errorf("store: commit revision %d: %w", rev, err)
		}
		s.relationships.Add(delta)
		s.appliedTerm.Store(e.Term)
		s.applied.Store(uint64(rev))
		s.latest.Store(&revisionAt{rev, at})
		s.advanced()
		return res, nil
	}
	if wb != nil {
		_ = wb.Close()
	}
	if cerr := s.commitRejected(e, at); cerr != nil {
		return Result{}, errors.Join(err, cerr)
	}
	return Result{Revision: rev}, err
}

func (s *Store) checkRevision(rev Revision) error {
	if applied := s.Revision(); rev <= applied {
		return fmt.Errorf("%w: revision %d, the applied revision is %d", ErrStaleRevision, rev, applied)
	}
	return nil
}

// commitRejected advances the applied revision past a refused entry.
func (s *Store) commitRejected(e Entry, at time.Time) error {
	rev := e.Index
	wb := s.db.NewBatch()
	defer wb.Close()
	if err := s.advanceCountersAlone(wb, rev, at); err != nil {
		return err
	}
	if err := s.finish(wb, e, &changeEntry{at: at, kind: changeRejected}); err != nil {
		return err
	}
	if err := wb.Commit(s.writeOpts); err != nil {
		return fmt.Errorf("store: commit refused revision %d: %w", rev, err)
	}
	s.appliedTerm.Store(e.Term)
	s.applied.Store(uint64(rev))
	s.latest.Store(&revisionAt{rev, at})
	s.advanced()
	return nil
}

// finish adds the change log entry and the applied record (the revision and the entry's
// term, decodeApplied) to wb.
func (s *Store) finish(wb *pebble.Batch, e Entry, c *changeEntry) error {
	v, err := encodeChange(c)
	if err != nil {
		return err
	}
	if err := wb.Set(revKey(prefixChange, e.Index), v, nil); err != nil {
		return err
	}
	return wb.Set(keyApplied, binary.BigEndian.AppendUint64(appendRev(nil, e.Index), e.Term), nil)
}

// writer builds one batch.
type writer struct {
	s      *Store
	wb     *pebble.Batch
	rev    Revision
	at     time.Time
	pre    *pebble.Iterator // the state before the batch
	counts map[string]int64 // live count deltas by count key
	change changeEntry
	// retired lists (uvarint length + key) the closure versions the batch ended (leopard.go).
	retired []byte
	// budgetLeft is what remains of the closure budget for this batch, once budgetSet
	// (leopard_write.go): one budget covers every indexed relation the batch changes.
	budgetLeft int
	budgetSet  bool
	// The relationship counters (counters.go): those registered before the batch, the
	// batch's changes to their counts, and the registrations it writes.
	counters       []counterState
	countersLoaded bool
	counterDeltas  map[string]int64
	counterWrites  []counterState
}

func (s *Store) build(e Entry, at time.Time, b *Batch) (*pebble.Batch, Result, int64, error) {
	rev := e.Index
	res := Result{Revision: rev}
	if b.DeleteFilter != nil && len(b.Updates) > 0 {
		return nil, res, 0, fmt.Errorf("%w: a batch has either updates or a delete filter, not both", ErrInvalid)
	}
	if b.DeleteLimit < 0 {
		return nil, res, 0, fmt.Errorf("%w: delete limit %d is negative", ErrInvalid, b.DeleteLimit)
	}
	sch, _, _ := s.Schema()
	updates, err := validateUpdates(sch, b.Updates)
	if err != nil {
		return nil, res, 0, err
	}
	prev := view{src: s.db, rev: s.Revision(), at: at, pool: s.iters}
	for i := range b.Preconditions {
		if err := checkPrecondition(&prev, &b.Preconditions[i]); err != nil {
			return nil, res, 0, err
		}
	}

	pre, err := s.db.NewIter(nil)
	if err != nil {
		return nil, res, 0, err
	}
	defer pre.Close()
	w := &writer{s: s, wb: s.db.NewIndexedBatch(), rev: rev, at: at, pre: pre, counts: map[string]int64{},
		change: changeEntry{at: at, kind: changeWrite}}
	if err := w.loadCounters(); err != nil {
		return w.wb, res, 0, err
	}
	if b.Counter != nil {
		if err := w.changeCounter(&prev, b); err != nil {
			return w.wb, res, 0, err
		}
	}
	limited := map[string]*Relationship{}
	for i := range updates {
		u := &updates[i]
		if err := w.update(u); err != nil {
			return w.wb, res, 0, err
		}
		if u.Op != OpDelete {
			if r := sch.Namespace(u.Relationship.ResourceType).Relation(u.Relationship.Relation); r.Limit > 0 {
				limited[string(objectRelationPrefix(&u.Relationship))] = &u.Relationship
			}
		}
	}
	if f := b.DeleteFilter; f != nil {
		if res.Deleted, res.Partial, err = w.deleteMatching(&prev, f, b.DeleteLimit, b.AllowPartialDeletions); err != nil {
			return w.wb, res, 0, err
		}
	}
	// Expired versions end here, at the batch's time (expiry.go).
	if err := w.expire(expireLimit); err != nil {
		return w.wb, res, 0, err
	}
	if err := w.checkLimits(sch, limited); err != nil {
		return w.wb, res, 0, err
	}
	if err := w.maintainClosures(sch); err != nil {
		return w.wb, res, 0, err
	}
	delta, err := w.writeCounts()
	if err != nil {
		return w.wb, res, 0, err
	}
	if err := w.writeCounters(); err != nil {
		return w.wb, res, 0, err
	}
	if err := s.finish(w.wb, e, &w.change); err != nil {
		return w.wb, res, 0, err
	}
	return w.wb, res, delta, nil
}

// validateUpdates checks every update's form and its admission by the schema, normalises
// subject relations and refuses duplicates. It returns the normalised copies.
func validateUpdates(sch *schema.Schema, in []Update) ([]Update, error) {
	if len(in) > 0 && sch == nil {
		return nil, ErrNoSchema
	}
	out := make([]Update, len(in))
	seen := make(map[string]int, len(in))
	for i, u := range in {
		rel := &out[i].Relationship
		*rel = u.Relationship
		out[i].Op = u.Op
		normalise(rel)
		if u.Op < OpTouch || u.Op > OpDelete {
			return nil, fmt.Errorf("%w: update %d (%s) has unknown operation %d", ErrInvalid, i, relText(rel), u.Op)
		}
		if err := validateSyntax(rel); err != nil {
			return nil, within(err, "update %d", i)
		}
		k := string(forwardPrefix(nil, rel))
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("%w: %s appears twice in one batch (updates %d and %d)", ErrInvalid, relText(rel), j, i)
		}
		seen[k] = i
		if u.Op == OpDelete {
			// A delete needs only an existing relation: its caveat and expiration are ignored.
			if _, err := relationOf(sch, rel); err != nil {
				return nil, within(err, "update %d", i)
			}
			continue
		}
		if _, err := validateAgainst(sch, rel); err != nil {
			return nil, within(err, "update %d", i)
		}
	}
	return out, nil
}

func checkPrecondition(v *view, p *Precondition) error {
	if err := validateFilter(&p.Filter, "precondition"); err != nil {
		return err
	}
	found := false
	if err := v.query(&p.Filter, nil, 1, func(*Relationship) bool { found = true; return false }); err != nil {
		return err
	}
	switch p.Op {
	case MustMatch:
		if !found {
			return fmt.Errorf("%w: no relationship matches %s", ErrPreconditionFailed, filterText(&p.Filter))
		}
	case MustNotMatch:
		if found {
			return fmt.Errorf("%w: a relationship matches %s", ErrPreconditionFailed, filterText(&p.Filter))
		}
	default:
		return fmt.Errorf("%w: precondition on %s has unknown operation %d", ErrInvalid, filterText(&p.Filter), p.Op)
	}
	return nil
}

// liveVersion returns the key and value of rel's live version (deletedRev = live), if any: it
// is the newest version, the first under rel's prefix.
func (w *writer) liveVersion(rel *Relationship) ([]byte, []byte, bool) {
	p := forwardPrefix(nil, rel)
	if !w.pre.SeekGE(p) {
		return nil, nil, false
	}
	k := w.pre.Key()
	if len(k) != len(p)+8 || !bytes.HasPrefix(k, p) || valueDeleted(w.pre.Value()) != live {
		return nil, nil, false
	}
	return bytes.Clone(k), bytes.Clone(w.pre.Value()), true
}

func (w *writer) update(u *Update) error {
	rel := &u.Relationship
	k, old, exists := w.liveVersion(rel)
	if exists {
		visible := true
		if exp, ok := valueExpiration(old); ok && !exp.After(w.at) {
			visible = false
		}
		switch u.Op {
		case OpCreate:
			if visible {
				return fmt.Errorf("%w: %s", ErrAlreadyExists, relText(rel))
			}
		case OpTouch:
			payload, err := appendPayload(nil, rel)
			if err != nil {
				return err
			}
			if bytes.Equal(payload, old[8:]) {
				w.change.updates = append(w.change.updates, *u)
				return nil
			}
		}
		if err := w.markDeleted(k, old); err != nil {
			return err
		}
		if u.Op == OpDelete {
			stored := Relationship{}
			_ = decodeForwardKey(k, &stored)
			_, _ = decodePayload(old[8:], &stored)
			w.change.updates = append(w.change.updates, Update{Op: OpDelete, Relationship: stored})
			return nil
		}
	}
	if u.Op == OpDelete {
		return nil
	}
	w.change.updates = append(w.change.updates, *u)
	return w.putVersion(rel)
}

// markDeleted ends the version with forward key k and value old at the writer's revision, in
// both indexes.
func (w *writer) markDeleted(k, old []byte) error {
	var rel Relationship
	if err := decodeForwardKey(k, &rel); err != nil {
		return err
	}
	if _, err := decodePayload(old[8:], &rel); err != nil {
		return err
	}
	v := bytes.Clone(old)
	binary.BigEndian.PutUint64(v, uint64(w.rev))
	if err := w.wb.Set(k, v, nil); err != nil {
		return err
	}
	if err := w.wb.Set(append(reversePrefix(nil, &rel), k[len(k)-8:]...), v, nil); err != nil {
		return err
	}
	if err := w.unindexExpiry(k, &rel); err != nil {
		return err
	}
	w.countRel(&rel, -1)
	w.counts[string(countKey(&rel))]--
	return nil
}

// putVersion writes a live version of rel created at the writer's revision.
func (w *writer) putVersion(rel *Relationship) error {
	v, err := indexValue(live, rel)
	if err != nil {
		return err
	}
	k := appendCreated(forwardPrefix(nil, rel), w.rev)
	if err := w.wb.Set(k, v, nil); err != nil {
		return err
	}
	if err := w.wb.Set(appendCreated(reversePrefix(nil, rel), w.rev), v, nil); err != nil {
		return err
	}
	if err := w.indexExpiry(k, rel); err != nil {
		return err
	}
	w.countRel(rel, +1)
	w.counts[string(countKey(rel))]++
	return nil
}

// deleteMatching deletes the relationships visible before the batch that match f.
func (w *writer) deleteMatching(prev *view, f *Filter, limit int, partial bool) (int, bool, error) {
	if err := validateFilter(f, "delete"); err != nil {
		return 0, false, err
	}
	var matched []Relationship
	total := 0
	err := prev.query(f, nil, 0, func(rel *Relationship) bool {
		total++
		if limit == 0 || len(matched) < limit {
			matched = append(matched, *rel)
			return true
		}
		return !partial // without partial deletions, count them all for the message
	})
	if err != nil {
		return 0, false, err
	}
	if limit > 0 && total > limit && !partial {
		return 0, false, fmt.Errorf("%w: %d relationships match %s, the limit is %d; raise the limit or allow partial deletions", ErrDeleteLimit, total, filterText(f), limit)
	}
	for i := range matched {
		if err := w.update(&Update{Op: OpDelete, Relationship: matched[i]}); err != nil {
			return 0, false, err
		}
	}
	return len(matched), total > len(matched), nil
}

// objectRelationPrefix is the forward key prefix of rel's resource and relation.
func objectRelationPrefix(rel *Relationship) []byte {
	p := []byte{prefixForward}
	p = appendField(p, rel.ResourceType)
	p = appendField(p, rel.ResourceID)
	return appendField(p, rel.Relation)
}

// checkLimits counts, in the batch's own view, the subjects of every resource and relation
// the batch added to whose relation has a limit.
func (w *writer) checkLimits(sch *schema.Schema, limited map[string]*Relationship) error {
	if len(limited) == 0 {
		return nil
	}
	keys := make([]string, 0, len(limited))
	for k := range limited {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	after := view{src: w.wb, rev: w.rev, at: w.at}
	for _, k := range keys {
		rel := limited[k]
		limit := sch.Namespace(rel.ResourceType).Relation(rel.Relation).Limit
		n := 0
		if err := after.scanForward([]byte(k), nil, 0, func(*Relationship) bool { n++; return true }); err != nil {
			return err
		}
		if n > limit {
			return fmt.Errorf("%w: %s:%s#%s would have %d subjects, limit is %d", ErrRelationLimit, rel.ResourceType, rel.ResourceID, rel.Relation, n, limit)
		}
	}
	return nil
}

// writeCounts applies the live count deltas and returns their sum.
func (w *writer) writeCounts() (int64, error) {
	var total int64
	for k, d := range w.counts {
		if d == 0 {
			continue
		}
		total += d
		var cur int64
		v, closer, err := w.wb.Get([]byte(k))
		switch {
		case err == nil:
			cur = int64(decodeRev(v))
			_ = closer.Close()
		case !errors.Is(err, pebble.ErrNotFound):
			return 0, err
		}
		if cur += d; cur <= 0 {
			err = w.wb.Delete([]byte(k), nil)
		} else {
			err = w.wb.Set([]byte(k), appendRev(nil, Revision(cur)), nil)
		}
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}

// WriteSchema parses text and makes it the schema from revision rev on, at time at. It refuses
// (ErrSchemaStrands) a schema that no longer admits relationships that are stored, naming each
// relation and how many relationships use it. A parse error is returned as schema.Parse
// returns it. Like Apply, a refused schema still advances the applied revision to rev.
func (s *Store) WriteSchema(e Entry, at time.Time, text string) error {
	rev := e.Index
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.checkRevision(rev); err != nil {
		return err
	}
	if err := s.CheckFreeSpace(); err != nil {
		return err
	}
	at = s.notBefore(at) // expiry.go
	wb := s.db.NewIndexedBatch()
	defer wb.Close()
	sch, err := schema.Parse(text)
	// Expired relationships count for nothing: collect them before the stranding check.
	var expired []Update
	var delta int64
	if err == nil {
		expired, delta, err = s.expireAll(wb, rev, at)
	}
	if err == nil {
		err = s.checkStranding(wb, sch)
	}
	if err == nil {
		old, _, _ := s.Schema()
		err = s.checkLoweredLimits(old, sch, at)
	}
	if err != nil {
		if cerr := s.commitRejected(e, at); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	}
	if err := wb.Set(revKey(prefixSchema, rev), []byte(text), nil); err != nil {
		return err
	}
	old, _, _ := s.Schema()
	if err := s.reindexClosures(wb, rev, at, old, sch); err != nil {
		return err
	}
	if err := s.advanceCountersAlone(wb, rev, at); err != nil {
		return err
	}
	if err := s.finish(wb, e, &changeEntry{at: at, kind: changeSchema, updates: expired}); err != nil {
		return err
	}
	if err := wb.Commit(s.writeOpts); err != nil {
		return fmt.Errorf("store: commit schema at revision %d: %w", rev, err)
	}
	s.mu.Lock()
	s.mu.schema, s.mu.schemaText, s.mu.schemaRev = sch, text, rev
	s.mu.Unlock()
	s.relationships.Add(delta)
	s.appliedTerm.Store(e.Term)
	s.applied.Store(uint64(rev))
	s.latest.Store(&revisionAt{rev, at})
	s.advanced()
	return nil
}

// checkLoweredLimits refuses sch (ErrSchemaStrands) if it puts a relation's limit below the
// number of subjects an object already holds on it: the objects over it would keep more than
// the schema says they may. Only relations whose limit is new or lower are looked at, and only
// those whose live relationships number more than the limit in all are scanned.
func (s *Store) checkLoweredLimits(old, sch *schema.Schema, at time.Time) error {
	var problems []string
	for _, ns := range sch.Namespaces {
		for _, r := range ns.Relations {
			if r.IsPermission || r.Limit <= 0 {
				continue
			}
			if o := old.Namespace(ns.Name).Relation(r.Name); o != nil && !o.IsPermission && o.Limit > 0 && o.Limit <= r.Limit {
				continue
			}
			msg, err := s.overLimit(ns.Name, r.Name, r.Limit, at)
			if err != nil {
				return err
			}
			if msg != "" {
				problems = append(problems, msg)
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s; delete the extra relationships first, or keep the higher limit", ErrSchemaStrands, strings.Join(problems, "; "))
	}
	return nil
}

// overLimit describes the objects of typ holding more than limit subjects on relation at the
// latest revision, or returns "" if there are none.
func (s *Store) overLimit(typ, relation string, limit int, at time.Time) (string, error) {
	countPrefix := []byte{prefixCount}
	countPrefix = appendField(countPrefix, typ)
	countPrefix = appendField(countPrefix, relation)
	var total uint64
	if err := scanPrefix(s.db, countPrefix, func(_, v []byte) (bool, error) {
		total += uint64(decodeRev(v))
		return true, nil
	}); err != nil || total <= uint64(limit) {
		return "", err
	}
	const examples = 5
	var over []string
	n, objects := 0, 0
	cur := ""
	flush := func() {
		if n > limit {
			if objects++; objects <= examples {
				over = append(over, fmt.Sprintf("%s:%s holds %d", typ, cur, n))
			}
		}
	}
	v := view{src: s.db, rev: s.Revision(), at: at}
	p := appendField([]byte{prefixForward}, typ)
	err := v.scan(p, upperBound(p), func(k, val []byte) (bool, error) {
		var rel Relationship
		if err := decodeForwardKey(k, &rel); err != nil {
			return false, err
		}
		if rel.Relation != relation || !v.visible(k, val) {
			return true, nil
		}
		if rel.ResourceID != cur {
			flush()
			cur, n = rel.ResourceID, 0
		}
		n++
		return true, nil
	})
	if err != nil {
		return "", err
	}
	flush()
	if objects == 0 {
		return "", nil
	}
	if objects == 1 {
		return fmt.Sprintf("relation %s#%s: limit %d, but %s", typ, relation, limit, over[0]), nil
	}
	if objects > examples {
		over = append(over, fmt.Sprintf("and %d more", objects-examples))
	}
	return fmt.Sprintf("relation %s#%s: limit %d, but %d objects hold more: %s", typ, relation, limit, objects, strings.Join(over, ", ")), nil
}

// checkStranding refuses sch if a relationship shape stored in r is no longer admitted by it.
func (s *Store) checkStranding(r pebble.Reader, sch *schema.Schema) error {
	var problems []string
	err := scanPrefix(r, []byte{prefixCount}, func(k, v []byte) (bool, error) {
		n := decodeRev(v)
		if n == 0 {
			return true, nil
		}
		sh, err := decodeCountKey(k)
		if err != nil {
			return false, err
		}
		var why string
		ns := sch.Namespace(sh.resType)
		r := ns.Relation(sh.relation)
		switch {
		case ns == nil:
			why = "definition " + sh.resType + " is removed"
		case r == nil:
			why = "the relation is removed"
		case r.IsPermission:
			why = "it is now a permission"
		case r.Allows(sh.subjType, sh.subjRel, sh.wildcard, sh.caveat, sh.expiring) == nil:
		default:
			return true, nil
		}
		msg := fmt.Sprintf("relation %s#%s: %d relationships with subject %s would no longer be allowed",
			sh.resType, sh.relation, n, subjectShape(sh.subjType, sh.subjRel, sh.wildcard, sh.caveat, sh.expiring))
		if why != "" {
			msg += " (" + why + ")"
		}
		problems = append(problems, msg)
		return true, nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrSchemaStrands, strings.Join(problems, "; "))
	}
	return nil
}
