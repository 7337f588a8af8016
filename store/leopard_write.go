package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/kengen/kengen/schema"
)

// maintainClosures brings the Leopard index up to date with the edges this batch changed.
func (w *writer) maintainClosures(sch *schema.Schema) error {
	edges := w.s.edges(sch)
	if len(edges) == 0 {
		return nil
	}
	dirty := map[Edge]map[string]bool{}
	indexed := 0
	for _, u := range w.change.updates {
		rel := &u.Relationship
		e := Edge{Type: rel.ResourceType, Relation: rel.Relation, SubjectRelation: rel.SubjectRelation}
		if rel.SubjectType != rel.ResourceType || !w.s.indexes(sch, e) {
			continue
		}
		if dirty[e] == nil {
			dirty[e] = map[string]bool{}
		}
		dirty[e][rel.ResourceID] = true
		indexed++
	}
	// One budget for the batch: a base, so that one edge at any depth is maintained whole,
	// and a little more per indexed update, so that a large batch is not starved.
	w.budgetSet, w.budgetLeft = true, w.s.closureBudget+budgetPerUpdate*indexed
	for _, e := range edges {
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

// Bounded maintenance. One Apply spends at most the store's closure budget on the index:
// entries read, computed and written, a seek counting seekCost entries. What the budget does
// not cover is marked with the overflow marker, like a closure over ClosureLimit, and walked.
// The invariants that make this safe, at every revision:
//
//   - an unmarked object's stored closure is exact;
//   - every object that reaches a marked object is marked.
//
// A batch that changes the out-edges of the dirty objects changes the closures of the dirty
// objects and of every object that reaches one. By the second invariant the unmarked ones
// among them are found by walking backwards through unmarked objects only: a marked object
// stands for everything behind it, which is marked too. So the walk stops at marked objects
// (apart from a few it visits to try to unmark them, within the budget), and a hierarchy of
// any size above or below the written edge costs only the unmarked objects that reach it.
// Closures are then computed successors first; once the budget is spent, every object left
// is marked. Those come after (reach) the ones computed, so the second invariant holds.
//
// Marking an object does not retire its stored entries (that would cost its closure's size):
// readers ask whether the closure is complete before they trust an entry, and when the
// object is computed again its stored entries are read back and diffed, so the stale ones end
// then. A mark is cleared only by computing the object's closure exactly.
//
// Each unmarked object is marked at most once before it is computed exactly again, and
// computing costs budget, so the marking the budget does not bound is paid for in advance:
// over any run of Applies the index costs at most a budget per Apply.

// DefaultClosureBudget is the default Options.ClosureBudget, the budget of a batch of one
// edge: a few milliseconds of index work on the development machine, enough to give a new
// object a closure of ClosureLimit objects (about 6,000 units). A batch gets budgetPerUpdate more for each
// update of an indexed relation it carries.
const DefaultClosureBudget = 1 << 13

// maxExtensionBudget caps the budget of a batch that only extends the hierarchy: enough for
// a chain of 1,000 written in one batch (about 1.6 million units), and a bound on the memory
// one Apply holds (each unit written is about a hundred bytes in the batch).
const maxExtensionBudget = 1 << 21

// budgetPerUpdate is the budget a batch gets for each update of an indexed relation, on top
// of Options.ClosureBudget: a batch of 1,000 parent edges gets about 48,000.
const budgetPerUpdate = 32

// seekCost and writeCost are what one seek and one write cost in the budget's units (closure
// entries read or computed), about as they compare on the development machine.
const (
	seekCost  = 16
	writeCost = 2
)

// closureGraph reads edges of one indexed relation inside the batch, after it.
type closureGraph struct {
	w     *writer
	e     Edge
	after view
	limit int
	// left is what remains of the budget (it may go below zero by one object's marker).
	left int
	// boundary caches the stored closures of objects outside the affected set, which the
	// batch does not change.
	boundary map[string]storedClosure
	// it reads the index as stored before this maintenance wrote any (write, setVersioned).
	it *pebble.Iterator
}

// storedClosure is one object's closure as stored: ids sorted, or over when it is marked.
type storedClosure struct {
	ids  []string
	over bool
}

// out returns the objects x points to (x#rel@typ:y[#subjRel]) after the batch, sorted.
func (g *closureGraph) out(x string) ([]string, error) {
	var ids []string
	p := []byte{prefixForward}
	p = appendField(p, g.e.Type)
	p = appendField(p, x)
	p = appendField(p, g.e.Relation)
	p = appendField(p, g.e.SubjectRelation)
	p = appendField(p, g.e.Type)
	err := g.scan(p, func(k, val []byte) error {
		var rel Relationship
		if err := decodeForwardKey(k, &rel); err != nil {
			return err
		}
		ids = append(ids, rel.SubjectID)
		return nil
	})
	g.left -= seekCost + len(ids)
	return slices.Compact(ids), err
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
	err := g.scan(p, func(k, val []byte) error {
		var rel Relationship
		if err := decodeReverseKey(k, &rel); err != nil {
			return err
		}
		ids = append(ids, rel.ResourceID)
		return nil
	})
	g.left -= seekCost + len(ids)
	return ids, err
}

// scan calls fn on the relationship versions under prefix p visible after the batch, through
// g.it: one iterator serves every read of the maintenance (a new iterator over an indexed
// batch costs more than the reads themselves).
func (g *closureGraph) scan(p []byte, fn func(k, val []byte) error) error {
	it := g.it
	for ok := it.SeekGE(p); ok && bytes.HasPrefix(it.Key(), p); ok = it.Next() {
		if !g.after.visible(it.Key(), it.Value()) {
			continue
		}
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return corruption(it.Error())
}

// marked reports whether x carries a live overflow marker.
func (g *closureGraph) marked(x string) bool {
	g.left -= seekCost
	_, over := g.liveVersion(closureObjectPrefix(nil, prefixOverflow, g.e, x))
	return over
}

// storedEntry is one live closure entry as stored: the object it names and its full key.
type storedEntry struct {
	id  string
	key []byte
}

// entries returns the live closure entries stored for x before this maintenance, sorted,
// whether or not x is marked.
func (g *closureGraph) entries(x string) ([]storedEntry, error) {
	var out []storedEntry
	p := closureObjectPrefix(nil, prefixClosure, g.e, x)
	it := g.it
	for ok := it.SeekGE(p); ok && bytes.HasPrefix(it.Key(), p); ok = it.Next() {
		if valueDeleted(it.Value()) == live {
			id, _, _ := bytes.Cut(it.Key()[len(p):], []byte{0})
			out = append(out, storedEntry{string(id), bytes.Clone(it.Key())})
		}
	}
	g.left -= seekCost + len(out)
	return out, corruption(it.Error())
}

func (g *closureGraph) boundaryClosure(y string) (storedClosure, error) {
	if c, ok := g.boundary[y]; ok {
		return c, nil
	}
	c := storedClosure{over: g.marked(y)}
	if !c.over {
		entries, err := g.entries(y)
		if err != nil {
			return c, err
		}
		for _, e := range entries {
			c.ids = append(c.ids, e.id)
		}
	}
	var err error
	if err == nil {
		g.boundary[y] = c
	}
	return c, err
}

// recomputeClosures brings up to date, within the budget, the closures that change because
// the out-edges of the objects in dirty changed: those of the dirty objects and of the
// unmarked objects that reach them (see "Bounded maintenance" above). Strongly connected
// components (cycles) are found with Tarjan's algorithm, and closures computed successors
// first, each from its successors' closures. fresh says nothing is stored yet for e (a schema
// write that starts indexing it).
func (w *writer) recomputeClosures(e Edge, dirty map[string]bool, fresh bool) error {
	g := &closureGraph{w: w, e: e, limit: w.s.closureLimit, left: w.closureBudget(), boundary: map[string]storedClosure{},
		after: view{src: w.wb, rev: w.rev, at: w.at}}
	var err error
	if g.it, err = w.wb.NewIter(nil); err != nil {
		return err
	}
	defer g.it.Close()
	defer func() { w.budgetLeft = g.left }()

	// The affected set, breadth first backwards from the dirty objects through unmarked
	// objects. Marked objects are visited (to be unmarked if the budget allows) only while
	// fifteen sixteenths of the budget remain: in a hierarchy written upwards they are
	// marked again at once, so more would be spent for nothing.
	affected := map[string]bool{}
	wasOver := map[string]bool{}
	queue := make([]string, 0, len(dirty))
	for x := range dirty {
		queue = append(queue, x)
	}
	sort.Strings(queue)
	revisit := g.left - g.left/16
	reached := false // some object outside the dirty ones reaches them
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		if affected[x] {
			continue
		}
		over := !fresh && g.marked(x)
		if over && !dirty[x] && g.left < revisit {
			continue
		}
		affected[x], wasOver[x] = true, over
		in, err := g.in(x)
		if err != nil {
			return err
		}
		for _, y := range in {
			if !dirty[y] {
				reached = true
			}
		}
		queue = append(queue, in...)
	}

	// A batch that only extends the hierarchy — no object outside the batch's own dirty
	// objects reaches them, as when new roles are written below existing ones — gets enough
	// budget to give every new object its whole closure: its work is bounded by ClosureLimit
	// per update, and nothing computed is undone by the next batch. (A batch above existing
	// roles does not: their closures would all grow, and the budget above marks them.)
	if !reached && !fresh {
		g.left = max(g.left, min(len(dirty)*(3*g.limit+4*seekCost), maxExtensionBudget))
	}

	outs := make(map[string][]string, len(affected))
	for x := range affected {
		if outs[x], err = g.out(x); err != nil {
			return err
		}
	}
	if err := g.closures(affected, outs, wasOver, fresh); err != nil {
		return err
	}
	return g.it.Error()
}

// closureBudget is what remains of the store's budget for this Apply.
func (w *writer) closureBudget() int {
	if !w.budgetSet {
		w.budgetSet, w.budgetLeft = true, w.s.closureBudget
	}
	return w.budgetLeft
}

// closures computes and writes the closure of every affected object over the edges outs,
// successors first, from the stored closures of the unaffected objects they reach, while the
// budget lasts; an object whose closure overflows, reaches a marked object, or comes after
// the budget ran out is marked.
func (g *closureGraph) closures(affected map[string]bool, outs map[string][]string, wasOver map[string]bool, fresh bool) error {
	closures := make(map[string][]string, len(affected))
	over := map[string]bool{}
	spent := false
	for _, scc := range tarjan(affected, outs) {
		overflow := spent
		var set []string
		if !overflow {
			var direct []string
			var subs [][]string
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
						return err
					}
					subs, overflow = append(subs, c.ids), overflow || c.over
				}
			}
			if cyclic {
				direct = append(direct, scc...)
			}
			if !overflow {
				set = union(direct, subs)
				overflow = len(set) > g.limit
				g.left -= len(set)
			}
		}
		// Each member's stored entries, read back to be diffed; then what replacing them
		// costs at most. A component is written whole or marked whole.
		var was [][]storedEntry
		if !overflow && !fresh {
			need := 0
			for _, x := range scc {
				w, err := g.entries(x)
				if err != nil {
					return err
				}
				was = append(was, w)
				need += writeCost * (len(set) + len(w))
			}
			if g.left < need {
				spent, overflow = true, true
			}
		} else if !overflow && g.left < len(scc)*writeCost*len(set) {
			spent, overflow = true, true
		}
		for i, x := range scc {
			if overflow {
				over[x] = true
				if err := g.mark(x, wasOver[x]); err != nil {
					return err
				}
				continue
			}
			closures[x] = set
			var w []storedEntry
			if was != nil {
				w = was[i]
			}
			if err := g.write(x, set, w, wasOver[x]); err != nil {
				return err
			}
		}
	}
	return nil
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

// write replaces x's stored entries, was, with its exact closure set, and clears its marker.
func (g *closureGraph) write(x string, set []string, was []storedEntry, wasOver bool) error {
	if err := g.setVersioned(closureObjectPrefix(nil, prefixOverflow, g.e, x), false, wasOver); err != nil {
		return err
	}
	p := closureObjectPrefix(nil, prefixClosure, g.e, x)
	old := was
	for len(old) > 0 || len(set) > 0 {
		switch {
		case len(set) == 0 || (len(old) > 0 && old[0].id < set[0]):
			g.left -= writeCost
			if err := g.end(old[0].key); err != nil {
				return err
			}
			old = old[1:]
		case len(old) == 0 || set[0] < old[0].id:
			g.left -= writeCost
			if err := g.w.wb.Set(appendCreated(appendField(bytes.Clone(p), set[0]), g.w.rev), appendRev(nil, live), nil); err != nil {
				return err
			}
			set = set[1:]
		default:
			old, set = old[1:], set[1:]
		}
	}
	return nil
}

// mark marks x: its closure is not maintained and readers walk. Its stored entries stay, to
// be diffed when x is next computed exactly.
func (g *closureGraph) mark(x string, wasOver bool) error {
	if wasOver {
		return nil
	}
	g.left--
	return g.setVersioned(closureObjectPrefix(nil, prefixOverflow, g.e, x), true, false)
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
		return g.end(bytes.Clone(k))
	}
	return nil
}

// end ends the live version with full key k at the batch's revision, and logs it for garbage
// collection.
func (g *closureGraph) end(k []byte) error {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, uint64(g.w.rev))
	g.w.retired = binary.AppendUvarint(g.w.retired, uint64(len(k)))
	g.w.retired = append(g.w.retired, k...)
	return g.w.wb.Set(k, v, nil)
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
	w := &writer{s: s, wb: wb, rev: rev, at: at}
	for _, e := range s.edges(old) {
		if s.indexes(sch, e) {
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
	for _, e := range s.edges(sch) {
		if s.indexes(old, e) {
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
