package check

import (
	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// The check side of the Leopard index (store/leopard.go). Two shapes of recursion are
// answered from the index instead of walking one object per level:
//
//   - a permission that is a union with an arrow over its own type to itself,
//     `permission see = member + parent->see`: subject s has see on x when s is in the other
//     branches (B) on x or on any object reachable from x over `parent`;
//   - a relation with a userset of itself, `relation member: user | group#member`: s is a
//     member of x when s is a direct member of x or of any group reachable from x.
//
// When B consists of relations whose subjects are plain objects, the question runs backwards:
// the reverse index lists the objects that hold s directly (usually one or two), and the
// closure says in one read each whether x reaches them. Otherwise the closure of x is listed
// and B evaluated on each object of it, flat, without recursion. An object whose closure
// overflowed, or a relation the index does not cover, is walked as usual.

// leopard answers k from the index when it can; ok is false when the caller must walk.
func (w *walker) leopard(k key, rel *schema.Relation, hops int) (o outcome, ok bool, err error) {
	if w.ev.c.noIndex || w.ev.explain {
		return outcome{}, false, nil
	}
	// The plan is the schema's analysis (schema.Relation.Leopard), which also decides what the
	// store indexes; Indexed only says whether this store keeps the index at all.
	p := rel.Leopard
	if p == nil || !w.ev.r.Indexed(p.Edge.Type, p.Edge.Relation, p.Edge.SubjectRelation) {
		return outcome{}, false, nil
	}
	if p.Holders != nil {
		o, ok, err = w.leopardBackwards(k, p)
	} else {
		o, ok, err = w.leopardForwards(k, p, hops)
	}
	if err == nil {
		if ok {
			w.stats.indexHits.Add(1)
		} else {
			w.stats.indexFallbacks.Add(1)
		}
	}
	return o, ok, err
}

// leopardBackwards finds the objects that hold the subject directly on one of the plan's
// relations and asks the closure whether k's object reaches each. A marked object keeps stale
// entries (store/leopard_write.go), so the closure's completeness is read before any entry is
// trusted; a subject that holds nothing needs no closure read at all.
func (w *walker) leopardBackwards(k key, p *schema.LeopardPlan) (outcome, bool, error) {
	s := k.subject
	acc := outcome{m: NoPermission, low: noCycle}
	knownComplete := false
	for _, d := range p.Holders {
		holders, err := w.holders(s, k.resType, d)
		if err != nil {
			return outcome{}, false, err
		}
		for i := range holders {
			t := &holders[i]
			if t.ResourceID != k.resID {
				if !knownComplete {
					complete, err := w.ev.r.ClosureComplete(p.Edge, k.resID)
					if err != nil || !complete {
						return outcome{}, false, err
					}
					knownComplete = true
				}
				reaches, err := w.ev.r.InClosure(p.Edge, k.resID, t.ResourceID)
				if err != nil {
					return outcome{}, false, err
				}
				if !reaches {
					continue
				}
			}
			co, err := w.caveat(t)
			if err != nil {
				return outcome{}, false, err
			}
			if acc = union.fold(nil, []outcome{acc, co}, []bool{true, true}); acc.m == HasPermission {
				return acc, true, nil
			}
		}
	}
	return acc, true, nil
}

// holderKey names the objects of one type that hold a subject directly on one relation.
type holderKey struct {
	subject       subjectRef
	typ, relation string
}

// holders returns the relationships typ:x#relation@s, and typ:x#relation@s.typ:* when the
// relation admits that wildcard: the objects a backwards Leopard question starts from. The
// same subject's holders are asked for again for every object on the way (an account's owner
// role, then each role it is shared with), so they are read once per evaluation.
func (w *walker) holders(s subjectRef, typ, relation string) ([]store.Relationship, error) {
	hk := holderKey{s, typ, relation}
	w.ev.mu.Lock()
	out, ok := w.ev.mu.holders[hk]
	w.ev.mu.Unlock()
	if ok {
		return out, nil
	}
	collect := func(t *store.Relationship) bool {
		out = append(out, *t)
		return true
	}
	err := w.ev.r.Resources(s.typ, s.id, s.relation, typ, relation, collect)
	if err == nil && s.relation == "" && w.admitsWildcard(typ, relation, s.typ) {
		err = w.ev.r.Resources(s.typ, store.Wildcard, "", typ, relation, collect)
	}
	if err != nil {
		return nil, err
	}
	w.ev.mu.Lock()
	w.ev.mu.holders[hk] = out
	w.ev.mu.Unlock()
	return out, nil
}

// admitsWildcard reports whether typ#relation admits subjType:* in the Reader's schema.
func (w *walker) admitsWildcard(typ, relation, subjType string) bool {
	for _, a := range w.ev.sch.Namespace(typ).Relation(relation).AllowedSubjects {
		if a.Type == subjType && a.Wildcard {
			return true
		}
	}
	return false
}

// leopardForwards lists the closure of k's object and evaluates the union's other branches
// on the object and on each object of its closure.
func (w *walker) leopardForwards(k key, p *schema.LeopardPlan, hops int) (outcome, bool, error) {
	objects := []string{k.resID}
	complete, err := w.ev.r.Closure(p.Edge, k.resID, func(id string) bool {
		if id != k.resID {
			objects = append(objects, id)
		}
		return true
	})
	if err != nil || !complete {
		return outcome{}, false, err
	}
	outs, done, err := w.evaluateBranches(len(objects), hops, union.decisive, func(bw *walker, i int) (outcome, error) {
		return bw.rewrite(key{k.resType, objects[i], k.relation, k.subject}, p.Rest, hops+1)
	})
	if err != nil {
		return outcome{}, false, err
	}
	o := union.fold(nil, outs, done)
	o.height++
	return o, true, nil
}
