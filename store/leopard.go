package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

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
// callers walk the relationships for it.
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
type Edge struct {
	Type, Relation, SubjectRelation string
}

// indexedEdges derives from a schema the relations the index covers: a relation whose only
// subject type is its own type, with no caveat, expiration or wildcard, used as the tupleset
// of an arrow (parent roles); and the self-userset entry `typ#rel` of a relation (nested
// groups), when it carries no caveat or expiration. Caveats and expirations would make the
// closure depend on request context or time, so those relations are walked.
func indexedEdges(sch *schema.Schema) []Edge {
	if sch == nil {
		return nil
	}
	var out []Edge
	for _, ns := range sch.Namespaces {
		tuplesets := map[string]bool{}
		for _, r := range ns.Relations {
			collectTuplesets(r.Rewrite, tuplesets)
		}
		for _, r := range ns.Relations {
			if r.IsPermission {
				continue
			}
			if tuplesets[r.Name] && len(r.AllowedSubjects) == 1 {
				a := r.AllowedSubjects[0]
				if a.Type == ns.Name && a.Relation == "" && !a.Wildcard && a.Caveat == "" && !a.Expiration {
					out = append(out, Edge{ns.Name, r.Name, ""})
				}
			}
			for _, a := range r.AllowedSubjects {
				if a.Type == ns.Name && a.Relation == r.Name && a.Caveat == "" && !a.Expiration {
					out = append(out, Edge{ns.Name, r.Name, r.Name})
					break
				}
			}
		}
	}
	return out
}

func collectTuplesets(rw *schema.Rewrite, into map[string]bool) {
	if rw == nil {
		return
	}
	if rw.Kind == schema.RewriteTupleToUserset && rw.Func == schema.ArrowAny {
		into[rw.Tupleset] = true
	}
	for _, c := range rw.Children {
		collectTuplesets(c, into)
	}
}

// edgeSets caches indexedEdges per compiled schema.
var edgeSets sync.Map // *schema.Schema → map[Edge]bool

// edges returns the relations the store's Leopard index covers under sch: none when
// Options.NoClosureIndex turns the index off.
func (s *Store) edges(sch *schema.Schema) map[Edge]bool {
	if s.opts.NoClosureIndex {
		return nil
	}
	return edgesOf(sch)
}

func edgesOf(sch *schema.Schema) map[Edge]bool {
	if sch == nil {
		return nil
	}
	if m, ok := edgeSets.Load(sch); ok {
		return m.(map[Edge]bool)
	}
	m := map[Edge]bool{}
	for _, e := range indexedEdges(sch) {
		m[e] = true
	}
	edgeSets.Store(sch, m)
	return m
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
	return r.s.edges(r.sch)[Edge{typ, rel, plain(subjRel)}]
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
// closure is complete; otherwise a false answer means nothing.
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

// maintainClosures brings the Leopard index up to date with the edges this batch changed.
func (w *writer) maintainClosures(sch *schema.Schema) error {
	edges := w.s.edges(sch)
	if len(edges) == 0 {
		return nil
	}
	dirty := map[Edge]map[string]bool{}
	for _, u := range w.change.updates {
		rel := &u.Relationship
		e := Edge{rel.ResourceType, rel.Relation, rel.SubjectRelation}
		if rel.SubjectType != rel.ResourceType || !edges[e] {
			continue
		}
		if dirty[e] == nil {
			dirty[e] = map[string]bool{}
		}
		dirty[e][rel.ResourceID] = true
	}
	for _, e := range sortedEdges(edges) {
		if dirty[e] == nil {
			continue
		}
		if err := w.recomputeClosures(e, dirty[e], false); err != nil {
			return err
		}
	}
	return w.logRetired()
}

// logRetired records the closure versions this batch ended, so that garbage collection finds
// them without scanning the index (the change log does the same for relationships).
func (w *writer) logRetired() error {
	if len(w.retired) == 0 {
		return nil
	}
	return w.wb.Set(revKey(prefixRetired, w.rev), w.retired, nil)
}

// retireClosures deletes the closure versions ended at or before horizon, and their log.
func (s *Store) retireClosures(horizon Revision) (int, error) {
	wb := s.db.NewBatch()
	defer wb.Close()
	removed := 0
	upper := revKey(prefixRetired, horizon+1)
	err := scanRange(s.db, []byte{prefixRetired}, upper, func(_, v []byte) (bool, error) {
		for len(v) > 0 {
			k, rest, ok := readBytes(v)
			if !ok {
				return false, fmt.Errorf("%w: malformed closure retirement log", ErrCorrupt)
			}
			if err := wb.Delete(k, nil); err != nil {
				return false, err
			}
			removed++
			v = rest
		}
		return true, nil
	})
	if err == nil {
		err = wb.DeleteRange([]byte{prefixRetired}, upper, nil)
	}
	if err == nil {
		err = wb.Commit(s.writeOpts)
	}
	return removed, err
}

// closureGraph reads edges of one indexed relation inside the batch: after it (the state
// being written) and before it.
type closureGraph struct {
	w             *writer
	e             Edge
	after, before view
	limit         int
	// boundary caches the stored closures of objects outside the affected set, which the
	// batch does not change.
	boundary map[string]storedClosure
	// it reads the closures as stored before this maintenance wrote any (write, setVersioned).
	it *pebble.Iterator
}

// storedClosure is one object's closure as stored: ids sorted, or over when it overflowed.
type storedClosure struct {
	ids  []string
	over bool
}

// out returns the objects x points to (x#rel@typ:y[#subjRel]) in the view, sorted.
func (g *closureGraph) out(v *view, x string) ([]string, error) {
	var ids []string
	p := []byte{prefixForward}
	p = appendField(p, g.e.Type)
	p = appendField(p, x)
	p = appendField(p, g.e.Relation)
	p = appendField(p, g.e.SubjectRelation)
	p = appendField(p, g.e.Type)
	err := v.scanForward(p, nil, 0, func(rel *Relationship) bool {
		ids = append(ids, rel.SubjectID)
		return true
	})
	return ids, err
}

// in returns the objects that point to x after the batch.
func (g *closureGraph) in(x string) ([]string, error) {
	var ids []string
	p := []byte{prefixReverse}
	p = appendField(p, g.e.Type)
	p = appendField(p, x)
	p = appendField(p, g.e.SubjectRelation)
	p = appendField(p, g.e.Type)
	p = appendField(p, g.e.Relation)
	err := g.after.scanReverse(p, func(rel *Relationship) bool {
		ids = append(ids, rel.ResourceID)
		return true
	})
	return ids, err
}

// stored returns the live closure of x as stored before this maintenance, sorted (over when
// it overflowed).
func (g *closureGraph) stored(x string) (storedClosure, error) {
	current := view{src: g.w.wb, rev: live - 1, at: g.w.at}
	over, err := current.versionVisible(closureObjectPrefix(nil, prefixOverflow, g.e, x))
	if err != nil || over {
		return storedClosure{over: over}, err
	}
	var ids []string
	p := closureObjectPrefix(nil, prefixClosure, g.e, x)
	err = scanPrefix(g.w.wb, p, func(k, val []byte) (bool, error) {
		if valueDeleted(val) == live {
			id, _, _ := bytes.Cut(k[len(p):], []byte{0})
			ids = append(ids, string(id))
		}
		return true, nil
	})
	return storedClosure{ids: ids}, err
}

func (g *closureGraph) boundaryClosure(y string) (storedClosure, error) {
	if c, ok := g.boundary[y]; ok {
		return c, nil
	}
	c, err := g.stored(y)
	if err == nil {
		g.boundary[y] = c
	}
	return c, err
}

// recomputeClosures recomputes the closure of every object whose closure may have changed
// because the out-edges of the objects in dirty changed: those objects and everything that
// reaches them. Strongly connected components (cycles) are found with Tarjan's algorithm, and
// closures computed successors first, each from its successors' closures.
//
// The closures before the batch are computed the same way over the edges before it (an object
// reaches a dirty one before the batch only if it does after it, so the affected set is the
// same), rather than read back: reading every affected closure costs the sum of their sizes,
// quadratic down a chain. Only an overflow marker is read per object, and a stored closure
// only where the computed one overflowed (the limit may have changed since it was stored).
// fresh says nothing is stored yet for e (a schema write that starts indexing it).
func (w *writer) recomputeClosures(e Edge, dirty map[string]bool, fresh bool) error {
	g := &closureGraph{w: w, e: e, limit: w.s.closureLimit, boundary: map[string]storedClosure{},
		after:  view{src: w.wb, rev: w.rev, at: w.at},
		before: view{src: w.wb, rev: w.rev - 1, at: w.at}}

	// The affected set: dirty objects and all that reach them (breadth first, backwards).
	affected := map[string]bool{}
	queue := make([]string, 0, len(dirty))
	for x := range dirty {
		queue = append(queue, x)
	}
	sort.Strings(queue)
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		if affected[x] {
			continue
		}
		affected[x] = true
		in, err := g.in(x)
		if err != nil {
			return err
		}
		queue = append(queue, in...)
	}

	outs := make(map[string][]string, len(affected))
	for x := range affected {
		o, err := g.out(&g.after, x)
		if err != nil {
			return err
		}
		outs[x] = o
	}
	closures, over, err := g.closures(affected, outs)
	if err != nil {
		return err
	}
	var oldClosures map[string][]string
	var oldOver map[string]bool
	if !fresh {
		oldOuts := make(map[string][]string, len(outs))
		for x, o := range outs {
			oldOuts[x] = o
		}
		for x := range dirty {
			if oldOuts[x], err = g.out(&g.before, x); err != nil {
				return err
			}
		}
		if oldClosures, oldOver, err = g.closures(affected, oldOuts); err != nil {
			return err
		}
	}

	ids := make([]string, 0, len(affected))
	for x := range affected {
		ids = append(ids, x)
	}
	sort.Strings(ids)
	if g.it, err = w.wb.NewIter(nil); err != nil {
		return err
	}
	defer g.it.Close()
	for _, x := range ids {
		var was storedClosure
		if !fresh {
			p := closureObjectPrefix(nil, prefixOverflow, g.e, x)
			if _, was.over = g.liveVersion(p); !was.over {
				if oldOver[x] {
					if was, err = g.stored(x); err != nil {
						return err
					}
				} else {
					was.ids = oldClosures[x]
				}
			}
		}
		if err := g.write(x, closures[x], over[x], was); err != nil {
			return err
		}
	}
	return g.it.Error()
}

// closures computes the closure of every affected object over the edges outs, successors
// first, from the stored closures of the unaffected objects they reach. An object whose
// closure overflowed is in over, with no closure.
func (g *closureGraph) closures(affected map[string]bool, outs map[string][]string) (map[string][]string, map[string]bool, error) {
	closures := make(map[string][]string, len(affected))
	over := map[string]bool{}
	for _, scc := range tarjan(affected, outs) {
		var direct []string
		var subs [][]string
		overflow := false
		cyclic := len(scc) > 1
		var members map[string]bool
		if len(scc) > 8 {
			members = make(map[string]bool, len(scc))
			for _, x := range scc {
				members[x] = true
			}
		}
		for _, x := range scc {
			for _, y := range outs[x] {
				if y == x || members[y] || (members == nil && slices.Contains(scc, y)) {
					cyclic = true
					continue
				}
				direct = append(direct, y)
				if affected[y] {
					subs, overflow = append(subs, closures[y]), overflow || over[y]
					continue
				}
				c, err := g.boundaryClosure(y)
				if err != nil {
					return nil, nil, err
				}
				subs, overflow = append(subs, c.ids), overflow || c.over
			}
		}
		if cyclic {
			direct = append(direct, scc...)
		}
		var set []string
		if !overflow {
			set = union(direct, subs)
			overflow = len(set) > g.limit
		}
		for _, x := range scc {
			if overflow {
				over[x] = true
			} else {
				closures[x] = set
			}
		}
	}
	return closures, over, nil
}

// union returns the sorted union of the ids in direct and the sorted lists in subs. One id
// over one list, a role's single parent, is a copy with one insertion.
func union(direct []string, subs [][]string) []string {
	if len(direct) == 1 && len(subs) == 1 {
		sub, y := subs[0], direct[0]
		i, found := slices.BinarySearch(sub, y)
		if found {
			return sub
		}
		out := make([]string, 0, len(sub)+1)
		out = append(out, sub[:i]...)
		out = append(out, y)
		return append(out, sub[i:]...)
	}
	n := len(direct)
	for _, s := range subs {
		n += len(s)
	}
	out := make([]string, 0, n)
	out = append(out, direct...)
	for _, s := range subs {
		out = append(out, s...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// liveVersion finds, through g.it, the live version of the versioned key p (without its
// createdRev): its full key, and whether there is one.
func (g *closureGraph) liveVersion(p []byte) ([]byte, bool) {
	it := g.it
	if !it.SeekGE(p) || len(it.Key()) != len(p)+8 || !bytes.HasPrefix(it.Key(), p) || valueDeleted(it.Value()) != live {
		return nil, false
	}
	return it.Key(), true
}

// write replaces x's stored closure, was, with set (or the overflow marker).
func (g *closureGraph) write(x string, set []string, overflow bool, was storedClosure) error {
	if err := g.setVersioned(closureObjectPrefix(nil, prefixOverflow, g.e, x), overflow, was.over); err != nil {
		return err
	}
	p := closureObjectPrefix(nil, prefixClosure, g.e, x)
	old := was.ids
	for len(old) > 0 || len(set) > 0 {
		var y string
		var present bool
		switch {
		case len(set) == 0 || (len(old) > 0 && old[0] < set[0]):
			y, present, old = old[0], false, old[1:]
		case len(old) == 0 || set[0] < old[0]:
			y, present, set = set[0], true, set[1:]
		default:
			old, set = old[1:], set[1:]
			continue
		}
		if err := g.setVersioned(appendField(bytes.Clone(p), y), present, !present); err != nil {
			return err
		}
	}
	return nil
}

// setVersioned makes the versioned key p present (a live version created at the batch's
// revision) or absent (its live version deleted at it); was says whether it is present now.
func (g *closureGraph) setVersioned(p []byte, present, was bool) error {
	switch {
	case present && !was:
		return g.w.wb.Set(appendCreated(p, g.w.rev), appendRev(nil, live), nil)
	case !present && was:
		k, ok := g.liveVersion(p)
		if !ok {
			return fmt.Errorf("%w: closure entry %q has no live version", ErrCorrupt, p)
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, uint64(g.w.rev))
		g.w.retired = binary.AppendUvarint(g.w.retired, uint64(len(k)))
		g.w.retired = append(g.w.retired, k...)
		return g.w.wb.Set(bytes.Clone(k), v, nil)
	}
	return nil
}

// tarjan returns the strongly connected components of the graph restricted to nodes, each
// after every component reachable from it (successors first). Iterative, so a chain of any
// length does not grow the Go stack.
func tarjan(nodes map[string]bool, outs map[string][]string) [][]string {
	ids := make([]string, 0, len(nodes))
	for x := range nodes {
		ids = append(ids, x)
	}
	sort.Strings(ids)
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var sccs [][]string
	next := 0
	type frame struct {
		x string
		i int
	}
	for _, root := range ids {
		if _, seen := index[root]; seen {
			continue
		}
		call := []frame{{x: root}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(outs[f.x]) {
				y := outs[f.x][f.i]
				f.i++
				if !nodes[y] {
					continue
				}
				if _, seen := index[y]; !seen {
					index[y], low[y] = next, next
					next++
					stack = append(stack, y)
					onStack[y] = true
					call = append(call, frame{x: y})
				} else if onStack[y] {
					low[f.x] = min(low[f.x], index[y])
				}
				continue
			}
			x := f.x
			call = call[:len(call)-1]
			if len(call) > 0 {
				parent := call[len(call)-1].x
				low[parent] = min(low[parent], low[x])
			}
			if low[x] == index[x] {
				var scc []string
				for {
					y := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[y] = false
					scc = append(scc, y)
					if y == x {
						break
					}
				}
				sccs = append(sccs, scc)
			}
		}
	}
	return sccs
}

// reindexClosures, inside a schema write, builds the closures of relations the new schema
// indexes and the old one did not, and retires those of relations no longer indexed.
func (s *Store) reindexClosures(wb *pebble.Batch, rev Revision, at time.Time, old, sch *schema.Schema) error {
	before, after := s.edges(old), s.edges(sch)
	w := &writer{s: s, wb: wb, rev: rev, at: at}
	for _, e := range sortedEdges(before) {
		if after[e] {
			continue
		}
		for _, prefix := range []byte{prefixClosure, prefixOverflow} {
			p := closureObjectPrefix(nil, prefix, e, "")
			p = p[:len(p)-1] // every object
			var keys [][]byte
			err := scanPrefix(wb, p, func(k, v []byte) (bool, error) {
				if valueDeleted(v) == live {
					keys = append(keys, bytes.Clone(k))
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := wb.Set(k, appendRev(nil, rev), nil); err != nil {
					return err
				}
				w.retired = binary.AppendUvarint(w.retired, uint64(len(k)))
				w.retired = append(w.retired, k...)
			}
		}
	}
	for _, e := range sortedEdges(after) {
		if before[e] {
			continue
		}
		sources := map[string]bool{}
		p := []byte{prefixForward}
		p = appendField(p, e.Type)
		v := view{src: wb, rev: rev, at: at}
		err := v.scanForward(p, nil, 0, func(rel *Relationship) bool {
			if rel.Relation == e.Relation && rel.SubjectType == e.Type && rel.SubjectRelation == e.SubjectRelation {
				sources[rel.ResourceID] = true
			}
			return true
		})
		if err != nil {
			return err
		}
		if len(sources) > 0 {
			if err := w.recomputeClosures(e, sources, true); err != nil {
				return err
			}
		}
	}
	return w.logRetired()
}

func sortedEdges(m map[Edge]bool) []Edge {
	out := make([]Edge, 0, len(m))
	for e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Relation != b.Relation {
			return a.Relation < b.Relation
		}
		return a.SubjectRelation < b.SubjectRelation
	})
	return out
}
