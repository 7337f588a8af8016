package check

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// subjectRef is the subject a check asks about: an object (relation "") or a userset.
type subjectRef struct {
	typ, id, relation string
}

func (s subjectRef) String() string {
	if s.relation == "" {
		return s.typ + ":" + s.id
	}
	return s.typ + ":" + s.id + "#" + s.relation
}

// key is one sub-problem: is subject in resType:resID#relation?
type key struct {
	resType, resID, relation string
	subject                  subjectRef
}

func (k key) object() string { return k.resType + ":" + k.resID + "#" + k.relation }

// noCycle marks an outcome that assumed nothing about the path above it.
const noCycle = math.MaxInt

// unresolved is the answer of a sub-problem that depends on a cycle in the data through an
// intersection, an exclusion or an .all() arrow (see "Cycles" below). It never leaves the
// package: at the root it becomes ErrMaxDepth.
const unresolved Membership = -1

// Cycles. Evaluation meets a sub-problem again on its own path when the data holds a cycle
// (a folder that is its own ancestor, two groups that hold each other). The answer must not
// depend on where the cycle was entered, nor on which sub-problems an earlier item of a bulk
// call or an earlier request at the same revision left in the memo and the cache. The rule:
//
//   - The sub-problem met again counts as "no" for now: the answer above it is soft, it may
//     grow once the sub-problem's own answer is known.
//   - A union takes a soft branch as it is: a cycle through unions (and arrows, usersets,
//     caveated relationships) adds nothing, and once evaluation unwinds to the sub-problem
//     met again, the soft answer is final — the least answer, as if the cycle were not there.
//   - An intersection, an exclusion or an .all() arrow whose answer is not settled by another
//     branch (a definite "no" in an intersection; a definite "no" base or a "has" subtracted
//     in an exclusion) turns a soft branch into unresolved, and so does an exclusion whose
//     base is soft: there the cycle decides the answer, and it has none.
//   - A union with a "has" branch, or an intersection with a definite "no" one, is settled
//     whatever an unresolved branch holds. An unresolved root is ErrMaxDepth.
//
// This is the answer SpiceDB gives: it follows a cycle until its depth limit and fails there
// (max depth exceeded), unless another branch settles the operation first. kengen differs in
// one place, on purpose: a cycle through unions only is cut and answers, where SpiceDB fails.

// outcome is the three-valued answer to a sub-problem (or unresolved).
type outcome struct {
	m       Membership
	missing []string // caveat parameters that left the answer conditional
	// low is the lowest path position whose sub-problem this answer's evaluation met again (a
	// cycle in the data). Such an answer is only final once evaluation has unwound to that
	// position; until then it is not memoised.
	low int
	// softAt, when positive, says that m, "no" or conditional, counted the sub-problem at path
	// position softAt-1 (or below it) as "no" because evaluation met it again: m may grow once
	// that sub-problem is answered. "has" and unresolved are never soft. It is at least low+1:
	// low also counts cycles that a decisive branch made irrelevant.
	softAt int
	// why names the cycle of an unresolved answer, for the error at the root.
	why string
	// height is how many hops below its own sub-problem the answer's evaluation went (0 for a
	// relation's own relationships or an answer from the index). A memoised or cached answer
	// reused h hops from the root stands for a walk to h+height, so the depth rule applies to
	// it as to a fresh evaluation.
	height int
	exp    *Explanation
}

// evaluation is the state one bulk call shares between its items: the reader, the schema,
// the request context, and the memo of finished sub-problems.
type evaluation struct {
	c       *Checker
	r       *store.Reader
	sch     *schema.Schema
	reqCtx  map[string]any
	explain bool
	// forks bounds the goroutines the evaluation may fan out to, beyond the callers'.
	forks chan struct{}
	// cache is the Checker's sub-problem cache (nil when off or explaining), and cacheCtx the
	// request context's part of its keys.
	cache    *subCache
	cacheCtx string
	mu       struct {
		sync.Mutex
		memo map[key]outcome
		// objects holds the relationships of the objects read whole (objects.go).
		objects map[objectRef]*objectRels
		// holders holds the subject's direct holders for backwards Leopard questions.
		holders map[holderKey][]store.Relationship
	}
}

func (c *Checker) newEvaluation(r *store.Reader, sch *schema.Schema, reqCtx map[string]any, explain bool) *evaluation {
	ev := &evaluation{c: c, r: r, sch: sch, reqCtx: reqCtx, explain: explain}
	if c.cache != nil && !explain {
		if ck, err := contextKey(reqCtx, false); err == nil {
			ev.cache, ev.cacheCtx = c.cache, ck
		}
	}
	ev.forks = make(chan struct{}, c.fanOut-1)
	ev.mu.memo = make(map[key]outcome)
	ev.mu.objects = make(map[objectRef]*objectRels)
	ev.mu.holders = make(map[holderKey][]store.Relationship)
	return ev
}

func (ev *evaluation) memoGet(k key) (outcome, bool) {
	ev.mu.Lock()
	o, ok := ev.mu.memo[k]
	ev.mu.Unlock()
	return o, ok
}

func (ev *evaluation) memoPut(k key, o outcome) {
	ev.mu.Lock()
	ev.mu.memo[k] = o
	ev.mu.Unlock()
}

// walker evaluates on one goroutine. It carries the path from the root to the current
// sub-problem, which cuts cycles and names the path when the depth limit is reached.
type walker struct {
	ev     *evaluation
	ctx    context.Context
	onPath map[key]int
	path   []key
	stats  *walkStats
}

func (ev *evaluation) newWalker(ctx context.Context) *walker {
	return &walker{ev: ev, ctx: ctx, onPath: make(map[key]int), stats: new(walkStats)}
}

// fork returns a walker for another goroutine, with its own copy of the path.
func (w *walker) fork(ctx context.Context) *walker {
	f := &walker{ev: w.ev, ctx: ctx, onPath: make(map[key]int, len(w.onPath)), path: append([]key(nil), w.path...), stats: w.stats}
	for k, v := range w.onPath {
		f.onPath[k] = v
	}
	return f
}

// maxForkHops is how far from the root evaluation may still fan out to goroutines: the
// branches near the root are the wide, independent ones, and forking deeper only multiplies
// goroutines for sub-problems that cost a few reads each.
const maxForkHops = 2

// check answers whether k.subject is in k's userset. hops counts the objects traversed so
// far (arrows and usersets), which the depth limit bounds.
func (w *walker) check(k key, hops int) (outcome, error) {
	if err := w.ctx.Err(); err != nil {
		return outcome{}, err
	}
	if k.subject.relation != "" && k.subject.typ == k.resType && k.subject.id == k.resID && k.subject.relation == k.relation {
		return w.leaf(outcome{m: HasPermission, low: noCycle}, "self", k.object(), ""), nil
	}
	// The depth rule comes before any memo or cache, so that whether a question is refused
	// does not depend on what was asked before it (or on which node answers).
	if hops > w.ev.c.maxDepth {
		return outcome{}, w.depthError(k)
	}
	if o, ok := w.ev.memoGet(k); ok {
		if hops+o.height > w.ev.c.maxDepth {
			return outcome{}, w.depthError(k)
		}
		w.stats.memoHits.Add(1)
		if w.ev.explain {
			o.exp = &Explanation{Kind: "cached", Object: k.object(), Membership: o.m, Missing: o.missing}
		}
		return o, nil
	}
	rel := w.ev.sch.Namespace(k.resType).Relation(k.relation)
	if rel == nil {
		return outcome{}, fmt.Errorf("%w: %s has no relation or permission %q", ErrUnknownRelation, k.resType, k.relation)
	}
	// Only permissions go through the cross-request cache: a relation's own answer is one or
	// two index reads, about what a cache lookup costs, so caching it only spends memory.
	cache := w.ev.cache
	if !rel.IsPermission {
		cache = nil
	}
	var ck cacheKey
	if cache != nil {
		ck = keyOf(w.ev.r.Store(), w.ev.r.Revision(), w.ev.cacheCtx, &k)
		if o, ok := cache.get(ck); ok {
			if hops+o.height > w.ev.c.maxDepth {
				return outcome{}, w.depthError(k)
			}
			w.stats.cacheHits.Add(1)
			w.ev.memoPut(k, o)
			return o, nil
		}
	}
	if pos, ok := w.onPath[k]; ok {
		return w.leaf(outcome{m: NoPermission, low: pos, softAt: pos + 1}, "cycle", k.object(), ""), nil
	}
	before := w.stats.subproblems.Add(1)
	w.stats.reachDepth(hops)

	var start time.Time
	if w.ev.explain {
		start = time.Now()
	}
	pos := len(w.path)
	w.path = append(w.path, k)
	w.onPath[k] = pos
	o, indexed, err := w.leopard(k, rel, hops)
	switch {
	case err != nil || indexed:
	case rel.IsPermission:
		o, err = w.rewrite(k, rel.Rewrite, hops)
	default:
		o, err = w.direct(k, rel, hops)
	}
	delete(w.onPath, k)
	w.path = w.path[:pos]
	if err != nil {
		return outcome{}, err
	}
	if o.softAt > pos {
		// The cycles the answer counted as "no" end here: a soft answer is final.
		o.softAt = 0
	}
	if o.low >= pos {
		o.low = noCycle
	}
	if w.ev.explain {
		kind := "relation"
		if rel.IsPermission {
			kind = "permission"
		}
		o.exp = &Explanation{Kind: kind, Object: k.object(), Membership: o.m, Missing: o.missing, Children: children(o.exp), Duration: time.Since(start)}
	}
	if o.low == noCycle {
		w.ev.memoPut(k, o)
		if cache != nil && (indexed || w.stats.subproblems.Load()-before >= cacheMinWork) {
			cache.put(ck, o)
		}
	}
	return o, nil
}

func children(e *Explanation) []*Explanation {
	if e == nil {
		return nil
	}
	return []*Explanation{e}
}

// leaf attaches an explanation node without children when explaining.
func (w *walker) leaf(o outcome, kind, object, relationship string) outcome {
	if w.ev.explain {
		o.exp = &Explanation{Kind: kind, Object: object, Relationship: relationship, Membership: o.m, Missing: o.missing}
	}
	return o
}

func (w *walker) depthError(k key) error {
	const ends = 3
	names := make([]string, 0, 2*ends+2)
	p := append(append([]key(nil), w.path...), k)
	if len(p) <= 2*ends+1 {
		for _, step := range p {
			names = append(names, step.object())
		}
	} else {
		for _, step := range p[:ends] {
			names = append(names, step.object())
		}
		names = append(names, fmt.Sprintf("… (%d more) …", len(p)-2*ends))
		for _, step := range p[len(p)-ends:] {
			names = append(names, step.object())
		}
	}
	return fmt.Errorf("%w: checking %s for %s passed %d objects, the limit is %d; path: %s",
		ErrMaxDepth, p[0].object(), k.subject, w.ev.c.maxDepth, w.ev.c.maxDepth, strings.Join(names, " → "))
}

// rewrite evaluates a permission's userset rewrite on k's object.
func (w *walker) rewrite(k key, rw *schema.Rewrite, hops int) (outcome, error) {
	switch rw.Kind {
	case schema.RewriteNil:
		return w.leaf(outcome{m: NoPermission, low: noCycle}, "nil", k.resType+":"+k.resID, ""), nil
	case schema.RewriteSelf:
		return w.selfCheck(k), nil // self.go
	case schema.RewriteComputedUserset:
		return w.check(key{k.resType, k.resID, rw.Relation, k.subject}, hops)
	case schema.RewriteTupleToUserset:
		return w.tupleToUserset(k, rw, hops)
	case schema.RewriteUnion:
		return w.setOperation(k, rw, hops, union, "union")
	case schema.RewriteIntersection:
		return w.setOperation(k, rw, hops, intersection, "intersection")
	case schema.RewriteExclusion:
		return w.setOperation(k, rw, hops, exclusion, "exclusion")
	}
	return outcome{}, fmt.Errorf("check: unknown rewrite kind %d", rw.Kind)
}

// combiner folds the outcomes of a set operation; decisive reports whether child i's outcome,
// just recorded in outs[i], settles the operation with the children done so far, whatever the
// others say (cycles included). Children may finish in any order.
type decider func(i int, outs []outcome, done []bool) bool

type combiner struct {
	decisive decider
	fold     func(k *key, outs []outcome, done []bool) outcome
}

// definiteNo is a "no" that no cycle can turn into anything else.
func definiteNo(o outcome) bool { return o.m == NoPermission && o.softAt == 0 }

// softer is the softAt of an answer that counted both a and b as "no".
func softer(a, b int) int {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// union is "any": Kleene's three-valued or, a "has" settling it. A soft branch leaves a
// result short of "has" soft; an unresolved one leaves it unresolved.
var union = combiner{
	decisive: func(i int, outs []outcome, _ []bool) bool { return outs[i].m == HasPermission },
	fold: func(_ *key, outs []outcome, done []bool) outcome {
		acc := outcome{m: NoPermission, low: noCycle}
		var why string
		for i, o := range outs {
			if !done[i] {
				continue
			}
			acc.low = min(acc.low, o.low)
			acc.height = max(acc.height, o.height)
			switch o.m {
			case HasPermission:
				return outcome{m: HasPermission, low: acc.low, height: acc.height}
			case unresolved:
				why = o.why
			case ConditionalPermission:
				acc.m = ConditionalPermission
				acc.missing = mergeMissing(acc.missing, o.missing)
			}
			acc.softAt = softer(acc.softAt, o.softAt)
		}
		if why != "" {
			return outcome{m: unresolved, low: acc.low, height: acc.height, why: why}
		}
		return acc
	},
}

// intersection is "all": Kleene's three-valued and, a definite "no" settling it. Any other
// branch that a cycle leaves open (soft or unresolved) leaves the result unresolved.
var intersection = combiner{
	decisive: func(i int, outs []outcome, _ []bool) bool { return definiteNo(outs[i]) },
	fold: func(k *key, outs []outcome, done []bool) outcome {
		acc := outcome{m: HasPermission, low: noCycle}
		var why string
		for i, o := range outs {
			if !done[i] {
				continue
			}
			acc.low = min(acc.low, o.low)
			acc.height = max(acc.height, o.height)
			switch {
			case definiteNo(o):
				return outcome{m: NoPermission, low: acc.low, height: acc.height}
			case o.m == unresolved:
				why = o.why
			case o.softAt > 0:
				why = cycleThrough(k, "an intersection or .all() arrow")
			case o.m == ConditionalPermission:
				acc.m = ConditionalPermission
				acc.missing = mergeMissing(acc.missing, o.missing)
			}
		}
		if why != "" {
			return outcome{m: unresolved, low: acc.low, height: acc.height, why: why}
		}
		return acc
	},
}

// exclusion is the base minus the rest: a definite "no" base or a "has" subtracted settles
// it; a base that a cycle leaves open (SpiceDB waits for the base) or a subtracted branch
// left open leaves the result unresolved.
var exclusion = combiner{
	decisive: func(i int, outs []outcome, done []bool) bool {
		if !done[0] {
			return false // as SpiceDB, the base decides first
		}
		if base := outs[0]; base.m == NoPermission || base.m == unresolved || base.softAt > 0 {
			return true
		}
		if i > 0 {
			return outs[i].m == HasPermission
		}
		for j := 1; j < len(outs); j++ {
			if done[j] && outs[j].m == HasPermission {
				return true
			}
		}
		return false
	},
	fold: func(k *key, outs []outcome, done []bool) outcome {
		if !done[0] {
			return outcome{m: NoPermission, low: noCycle}
		}
		base := outs[0]
		acc := outcome{m: base.m, missing: base.missing, low: base.low, height: base.height, softAt: base.softAt, why: base.why}
		switch {
		case definiteNo(base), base.m == unresolved:
			return acc
		case base.softAt > 0:
			return outcome{m: unresolved, low: base.low, height: base.height, why: cycleThrough(k, "the base of an exclusion")}
		}
		var why string
		for i := 1; i < len(outs); i++ {
			if !done[i] {
				continue
			}
			o := outs[i]
			acc.low = min(acc.low, o.low)
			acc.height = max(acc.height, o.height)
			switch {
			case o.m == HasPermission:
				return outcome{m: NoPermission, low: acc.low, height: acc.height}
			case o.m == unresolved:
				why = o.why
			case o.softAt > 0:
				why = cycleThrough(k, "the subtracted side of an exclusion")
			case o.m == ConditionalPermission:
				acc.m = ConditionalPermission
				acc.missing = mergeMissing(acc.missing, o.missing)
			}
		}
		if why != "" {
			return outcome{m: unresolved, low: acc.low, height: acc.height, why: why}
		}
		return acc
	},
}

// withCaveat is a sub-problem reached over a caveated relationship whose caveat is
// conditional (co): both must hold, but the caveat is no cycle, so a soft or unresolved
// sub-problem stays what it is.
func withCaveat(co, o outcome) outcome {
	switch o.m {
	case NoPermission, unresolved:
		return o
	}
	o.m = ConditionalPermission
	o.missing = mergeMissing(co.missing, o.missing)
	return o
}

// cycleThrough names an operation on k's object that a cycle in the data leaves open.
func cycleThrough(k *key, op string) string {
	if k == nil {
		return "a cycle in the data passes through " + op
	}
	return "a cycle in the data passes through " + op + " in " + k.object()
}

func mergeMissing(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func (w *walker) setOperation(k key, rw *schema.Rewrite, hops int, comb combiner, kind string) (outcome, error) {
	outs, done, err := w.evaluateBranches(len(rw.Children), hops, comb.decisive, func(bw *walker, i int) (outcome, error) {
		return bw.rewrite(k, rw.Children[i], hops)
	})
	if err != nil {
		return outcome{}, err
	}
	o := comb.fold(&k, outs, done)
	if w.ev.explain {
		o.exp = &Explanation{Kind: kind, Object: k.object(), Membership: o.m, Missing: o.missing, Children: explanations(outs, done)}
	}
	return o, nil
}

func explanations(outs []outcome, done []bool) []*Explanation {
	var out []*Explanation
	for i, o := range outs {
		if done[i] && o.exp != nil {
			out = append(out, o.exp)
		}
	}
	return out
}

// evaluateBranches evaluates n independent branches, in order on this goroutine or fanned
// out to others near the root, and stops (cancelling the rest) at the first decisive
// outcome. done[i] says whether branch i finished.
func (w *walker) evaluateBranches(n, hops int, decisive decider, eval func(*walker, int) (outcome, error)) ([]outcome, []bool, error) {
	outs := make([]outcome, n)
	done := make([]bool, n)
	if n > 1 && hops <= maxForkHops && cap(w.ev.forks) > 0 {
		return w.evaluateConcurrently(outs, done, decisive, eval)
	}
	for i := range n {
		o, err := eval(w, i)
		if err != nil {
			return nil, nil, err
		}
		outs[i], done[i] = o, true
		if decisive(i, outs, done) {
			break
		}
	}
	return outs, done, nil
}

func (w *walker) evaluateConcurrently(outs []outcome, done []bool, decisive decider, eval func(*walker, int) (outcome, error)) ([]outcome, []bool, error) {
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	type result struct {
		i   int
		o   outcome
		err error
	}
	results := make(chan result, len(outs))
	pending := 0
	var wg sync.WaitGroup
	for i := range outs {
		select {
		case w.ev.forks <- struct{}{}:
			pending++
			wg.Add(1)
			go func(i int, fw *walker) {
				defer wg.Done()
				defer func() { <-w.ev.forks }()
				o, err := eval(fw, i)
				results <- result{i, o, err}
			}(i, w.fork(ctx))
		default:
			// No goroutine to spare: evaluate this branch here.
			o, err := eval(w, i)
			if err != nil {
				cancel()
				wg.Wait()
				return nil, nil, err
			}
			outs[i], done[i] = o, true
			if decisive(i, outs, done) {
				cancel()
				wg.Wait()
				return outs, done, nil
			}
		}
	}
	var firstErr error
	decided := false
	for ; pending > 0; pending-- {
		r := <-results
		if decided {
			continue
		}
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
				cancel()
			}
			continue
		}
		outs[r.i], done[r.i] = r.o, true
		if firstErr == nil && decisive(r.i, outs, done) {
			decided = true
			cancel()
		}
	}
	wg.Wait()
	if decided {
		return outs, done, nil
	}
	if firstErr != nil {
		return nil, nil, firstErr
	}
	return outs, done, nil
}

// tupleToUserset follows an arrow: for each subject of the tupleset relation on k's object,
// check the target relation on that subject (Zanzibar's tuple_to_userset).
func (w *walker) tupleToUserset(k key, rw *schema.Rewrite, hops int) (outcome, error) {
	var tuples []store.Relationship
	err := w.subjects(k.resType, k.resID, rw.Tupleset, func(t *store.Relationship) bool {
		if t.SubjectID != store.Wildcard && w.ev.sch.Namespace(t.SubjectType).Relation(rw.Relation) != nil {
			tuples = append(tuples, *t)
		}
		return true
	})
	if err != nil {
		return outcome{}, err
	}
	comb, kind := union, "arrow"
	if rw.Func == schema.ArrowAll {
		comb, kind = intersection, "all-arrow"
	}
	if len(tuples) == 0 {
		return w.leaf(outcome{m: NoPermission, low: noCycle}, kind, k.resType+":"+k.resID+"#"+rw.Tupleset+"->"+rw.Relation, ""), nil
	}
	outs, done, err := w.evaluateBranches(len(tuples), hops, comb.decisive, func(bw *walker, i int) (outcome, error) {
		t := &tuples[i]
		return bw.through(t, key{t.SubjectType, t.SubjectID, rw.Relation, k.subject}, hops+1)
	})
	if err != nil {
		return outcome{}, err
	}
	o := comb.fold(&k, outs, done)
	o.height++ // the tupleset's subjects are one hop further
	if w.ev.explain {
		o.exp = &Explanation{Kind: kind, Object: k.resType + ":" + k.resID + "#" + rw.Tupleset + "->" + rw.Relation,
			Membership: o.m, Missing: o.missing, Children: explanations(outs, done)}
	}
	return o, nil
}

// through evaluates a sub-problem reached over relationship t: t's caveat and the
// sub-problem must both hold.
func (w *walker) through(t *store.Relationship, next key, hops int) (outcome, error) {
	co, err := w.caveat(t)
	if err != nil {
		return outcome{}, err
	}
	if co.m == NoPermission {
		return w.leaf(co, "relationship", "", relationshipString(t)), nil
	}
	o, err := w.check(next, hops)
	if err != nil {
		return outcome{}, err
	}
	if co.m == ConditionalPermission {
		o = withCaveat(co, o)
		if w.ev.explain {
			o.exp = &Explanation{Kind: "relationship", Relationship: relationshipString(t), Membership: o.m, Missing: o.missing, Children: children(o.exp)}
		}
	} else if w.ev.explain {
		o.exp = &Explanation{Kind: "relationship", Relationship: relationshipString(t), Membership: o.m, Missing: o.missing, Children: children(o.exp)}
	}
	return o, nil
}

// caveat evaluates a relationship's caveat; a relationship without one holds.
func (w *walker) caveat(t *store.Relationship) (outcome, error) {
	if t.Caveat == "" {
		return outcome{m: HasPermission, low: noCycle}, nil
	}
	c := w.ev.sch.Caveat(t.Caveat)
	if c == nil {
		return outcome{}, fmt.Errorf("%w: relationship %s names caveat %q, which the schema does not declare", ErrCaveat, relationshipString(t), t.Caveat)
	}
	o, err := w.ev.c.caveats.program(c).evaluate(t.CaveatContext, w.ev.reqCtx)
	if err != nil {
		return outcome{}, err
	}
	o.low = noCycle
	return o, nil
}

// direct evaluates a relation's own relationships (Zanzibar's `_this`): the subject itself,
// a wildcard of its type, and the usersets whose members may include it.
func (w *walker) direct(k key, rel *schema.Relation, hops int) (outcome, error) {
	s := k.subject
	acc := outcome{m: NoPermission, low: noCycle}
	var exps []*Explanation
	found := func(t store.Relationship, kind string) (bool, error) {
		o, err := w.caveat(&t)
		if err != nil {
			return false, err
		}
		o = w.leaf(o, kind, "", relationshipString(&t))
		if w.ev.explain {
			exps = append(exps, o.exp)
		}
		acc = union.fold(nil, []outcome{acc, o}, []bool{true, true})
		return acc.m == HasPermission, nil
	}

	exact, wildcard := false, false
	for _, a := range rel.AllowedSubjects {
		if a.Type != s.typ {
			continue
		}
		if a.Wildcard {
			wildcard = wildcard || s.relation == ""
		} else if a.Relation == s.relation {
			exact = true
		}
	}
	if exact {
		t, ok, err := w.get(k.resType, k.resID, k.relation, s.typ, s.id, s.relation)
		if err != nil {
			return outcome{}, err
		}
		if ok {
			if done, err := found(t, "relationship"); err != nil || done {
				return w.directResult(k, acc, exps), err
			}
		}
	}
	if wildcard {
		t, ok, err := w.get(k.resType, k.resID, k.relation, s.typ, store.Wildcard, "")
		if err != nil {
			return outcome{}, err
		}
		if ok {
			if done, err := found(t, "wildcard"); err != nil || done {
				return w.directResult(k, acc, exps), err
			}
		}
	}

	// Usersets: subjects like group:eng#member, each a sub-problem one object further.
	var sets []store.Relationship
	seen := make(map[[2]string]bool, 2)
	for _, a := range rel.AllowedSubjects {
		if a.Relation == "" || seen[[2]string{a.Type, a.Relation}] {
			continue
		}
		seen[[2]string{a.Type, a.Relation}] = true
		err := w.subjectsOfType(k.resType, k.resID, k.relation, a.Type, a.Relation, func(t *store.Relationship) bool {
			sets = append(sets, *t)
			return true
		})
		if err != nil {
			return outcome{}, err
		}
	}
	if len(sets) > 0 {
		outs, done, err := w.evaluateBranches(len(sets), hops, union.decisive, func(bw *walker, i int) (outcome, error) {
			t := &sets[i]
			return bw.through(t, key{t.SubjectType, t.SubjectID, t.SubjectRelation, s}, hops+1)
		})
		if err != nil {
			return outcome{}, err
		}
		o := union.fold(nil, outs, done)
		o.height++ // the usersets are one hop further
		if w.ev.explain {
			exps = append(exps, explanations(outs, done)...)
		}
		acc = union.fold(nil, []outcome{acc, o}, []bool{true, true})
	}
	return w.directResult(k, acc, exps), nil
}

func (w *walker) directResult(k key, o outcome, exps []*Explanation) outcome {
	if w.ev.explain {
		o.exp = &Explanation{Kind: "direct", Object: k.object(), Membership: o.m, Missing: o.missing, Children: exps}
	}
	return o
}

func relationshipString(t *store.Relationship) string { return t.String() }
