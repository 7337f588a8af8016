package store

import (
	"bytes"

	"github.com/kengen/kengen/schema"
)

// The Leopard index (Zanzibar §3.2.4): for relations that recurse — a relation whose subjects
// are objects of its own type (`relation parent: role`, followed by an arrow), or usersets of
// itself (`relation member: user | group#member`) — the store keeps, for every object, the set
// of objects reachable from it over one or more such relationships. A membership question down
// a hierarchy of any depth then costs a few index reads instead of one read per level.
//
// It is maintained inside Apply, in the same batch as the relationships, so it is
// deterministic and identical on every node, and it is versioned like the indexes, so a read
// at any retained revision sees the closure of that revision. A closure larger than
// Options.ClosureLimit is not stored: the object carries an overflow marker instead, and
// callers walk the relationships for it. The same marker stands for a closure the budget of
// one Apply did not cover (leopard_write.go, "Bounded maintenance").
//
//	k typ\0 rel\0 subjRel\0 from\0 to\0 ^createdRev   → deletedRev   `to` is reachable from `from`
//	K typ\0 rel\0 subjRel\0 from\0 ^createdRev        → deletedRev   from's closure overflowed
//	g rev                                           → the closure versions rev ended, for GC
const (
	prefixClosure  = 'k'
	prefixOverflow = 'K'
	prefixRetired  = 'g'
)

// DefaultClosureLimit bounds one object's stored closure. A 1,000-level chain fits; deeper
// objects fall back to the walk.
const DefaultClosureLimit = 2_000

// Edge names a relation the Leopard index covers: relationships typ:x#rel@typ:y[#subjRel].
// Which relations those are is decided once, by the schema's analysis stage
// (schema.Schema.IndexedEdges), which check/ reads too.
type Edge = schema.Edge

// edges returns the relations the store's Leopard index covers under sch, sorted: none when
// Options.NoClosureIndex turns the index off.
func (s *Store) edges(sch *schema.Schema) []Edge {
	if s.opts.NoClosureIndex {
		return nil
	}
	return sch.IndexedEdges()
}

// indexes reports whether the store's Leopard index covers e under sch.
func (s *Store) indexes(sch *schema.Schema, e Edge) bool {
	return !s.opts.NoClosureIndex && sch.Indexes(e)
}

func closureObjectPrefix(b []byte, prefix byte, e Edge, from string) []byte {
	b = append(b, prefix)
	b = appendField(b, e.Type)
	b = appendField(b, e.Relation)
	b = appendField(b, e.SubjectRelation)
	return appendField(b, from)
}

// Indexed reports whether the schema in force at the Reader's revision has the Leopard index
// cover relation rel of typ with subject relation subjRel ("" for arrows over parent-like
// relations, rel itself for nested usersets).
func (r *Reader) Indexed(typ, rel, subjRel string) bool {
	return r.s.indexes(r.sch, Edge{Type: typ, Relation: rel, SubjectRelation: plain(subjRel)})
}

// Reaches reports whether object `to` is reachable from `from` over one or more relationships
// of the indexed relation e, at the Reader's revision. ok is false when the relation is not
// indexed or from's closure overflowed: the caller must walk the relationships instead.
func (r *Reader) Reaches(e Edge, from, to string) (reaches, ok bool, err error) {
	if ok, err := r.ClosureComplete(e, from); err != nil || !ok {
		return false, false, err
	}
	reaches, err = r.InClosure(e, from, to)
	return reaches, err == nil, err
}

// ClosureComplete reports whether the index holds from's whole closure over relation e at the
// Reader's revision: e is indexed and from's closure did not overflow.
func (r *Reader) ClosureComplete(e Edge, from string) (bool, error) {
	if !r.Indexed(e.Type, e.Relation, e.SubjectRelation) {
		return false, nil
	}
	if err := r.enter(); err != nil {
		return false, err
	}
	defer r.leave()
	over, err := r.v.versionVisible(closureObjectPrefix(nil, prefixOverflow, e, from))
	return !over && err == nil, err
}

// InClosure reports whether the index holds `to` in from's closure over relation e at the
// Reader's revision. It is Reaches for a caller that knows from ClosureComplete that the
// closure is complete; otherwise the answer means nothing either way (a marked object keeps
// the entries it had when it was marked).
func (r *Reader) InClosure(e Edge, from, to string) (bool, error) {
	if err := r.enter(); err != nil {
		return false, err
	}
	defer r.leave()
	return r.v.versionVisible(appendField(closureObjectPrefix(nil, prefixClosure, e, from), to))
}

// Closure calls fn on every object reachable from `from` over one or more relationships of
// the indexed relation e, at the Reader's revision, in id order. ok is false, and fn is not
// called, when the relation is not indexed or from's closure overflowed.
func (r *Reader) Closure(e Edge, from string, fn func(id string) bool) (ok bool, err error) {
	if !r.Indexed(e.Type, e.Relation, e.SubjectRelation) {
		return false, nil
	}
	if err := r.enter(); err != nil {
		return false, err
	}
	defer r.leave()
	if over, err := r.v.versionVisible(closureObjectPrefix(nil, prefixOverflow, e, from)); err != nil || over {
		return false, err
	}
	p := closureObjectPrefix(nil, prefixClosure, e, from)
	return true, r.v.scan(p, upperBound(p), func(k, val []byte) (bool, error) {
		if createdRev(k) > r.v.rev || r.v.rev >= valueDeleted(val) {
			return true, nil
		}
		id, _, _ := bytes.Cut(k[len(p):], []byte{0})
		return fn(string(id)), nil
	})
}

// versionVisible reports whether the versioned key p (without its createdRev) has a version
// visible in the view: the newest version created at or before the view's revision, not yet
// deleted by it.
func (v *view) versionVisible(p []byte) (bool, error) {
	it, err := v.newIter(p, upperBound(p))
	if err != nil {
		return false, err
	}
	ok := it.SeekGE(appendCreated(p, v.rev)) && len(it.Key()) == len(p)+8 && v.rev < valueDeleted(it.Value())
	return ok, corruption(v.release(it))
}
