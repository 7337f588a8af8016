package schema

import "sort"

// The analysis stage: after compile, Parse works out once, for the whole schema, which
// relations recurse and how they are answered, so that store/ (which keeps the Leopard index)
// and check/ (which plans checks and lookups) read one answer from the compiled Schema:
//
//   - the recursive edges the Leopard index covers (Schema.IndexedEdges);
//   - each relation's Leopard plan (Relation.Leopard): how a check uses the index;
//   - the reverse graph lookups walk backwards (Schema.Reverse).
//
// The results hang off the Schema and go with it: nothing is cached elsewhere.

// Edge names a recursive relation the Leopard index covers: relationships
// Type:x#Relation@Type:y[#SubjectRelation]. SubjectRelation is "" for a parent-like relation
// followed by an arrow (`relation parent: role`, `parent->see`), and Relation itself for a
// nested userset (`relation member: user | group#member`).
type Edge struct {
	Type, Relation, SubjectRelation string
}

// LeopardPlan is how a check answers one relation or permission from the Leopard index:
//
//   - a permission that is a union with an arrow over its own type to itself,
//     `permission see = member + parent->see`: a subject has see on x when it is in the other
//     branches (Rest) on x or on any object reachable from x over Edge;
//   - a relation with a userset of itself, `relation member: user | group#member`: a subject
//     is a member of x when it is a direct member of x or of any group reachable from x.
//
// Holders lists the relations (of the same definition) whose direct subjects answer the
// question backwards, when Rest holds only relations with plain object subjects; nil when the
// plan must run forwards, listing the closure and evaluating Rest on each object of it.
type LeopardPlan struct {
	Edge    Edge
	Holders []string
	// Rest is the union's other branches, for a permission; nil for a relation.
	Rest *Rewrite
}

// IndexedEdges returns the edges the Leopard index covers under s, sorted.
func (s *Schema) IndexedEdges() []Edge {
	if s == nil {
		return nil
	}
	return s.indexed
}

// Indexes reports whether the Leopard index covers e under s.
func (s *Schema) Indexes(e Edge) bool {
	if s == nil {
		return false
	}
	_, ok := s.indexedSet[e]
	return ok
}

// analyse is the pipeline's last stage: it fills in the analysis of a compiled schema.
func analyse(s *Schema) {
	s.indexedSet = map[Edge]struct{}{}
	for _, ns := range s.Namespaces {
		for _, e := range indexedEdges(ns) {
			s.indexedSet[e] = struct{}{}
			s.indexed = append(s.indexed, e)
		}
		for _, r := range ns.Relations {
			r.Leopard = leopardPlan(ns, r)
		}
	}
	sort.Slice(s.indexed, func(i, j int) bool {
		a, b := s.indexed[i], s.indexed[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Relation != b.Relation {
			return a.Relation < b.Relation
		}
		return a.SubjectRelation < b.SubjectRelation
	})
	s.reverse = newReverseGraph(s)
}

// indexedEdges derives the edges of one definition the index covers: a relation whose only
// subject type is its own type, with no caveat, expiration or wildcard, used as the tupleset
// of an any-arrow (parent roles); and the self-userset entry `typ#rel` of a relation (nested
// groups), when it carries no caveat or expiration. Caveats and expirations would make the
// closure depend on request context or time, so those relations are walked.
func indexedEdges(ns *Namespace) []Edge {
	var out []Edge
	tuplesets := map[string]bool{}
	for _, r := range ns.Relations {
		collectTuplesets(r.Rewrite, tuplesets)
	}
	for _, r := range ns.Relations {
		if r.IsPermission {
			continue
		}
		if tuplesets[r.Name] && selfParent(ns, r) {
			out = append(out, Edge{ns.Name, r.Name, ""})
		}
		for _, a := range r.AllowedSubjects {
			if a.Type == ns.Name && a.Relation == r.Name && a.Caveat == "" && !a.Expiration {
				out = append(out, Edge{ns.Name, r.Name, r.Name})
				break
			}
		}
	}
	return out
}

// selfParent reports whether r's only subject type is plain objects of its own definition,
// with no caveat, expiration or wildcard.
func selfParent(ns *Namespace, r *Relation) bool {
	if len(r.AllowedSubjects) != 1 {
		return false
	}
	a := r.AllowedSubjects[0]
	return a.Type == ns.Name && a.Relation == "" && !a.Wildcard && a.Caveat == "" && !a.Expiration
}

func collectTuplesets(rw *Rewrite, into map[string]bool) {
	if rw == nil {
		return
	}
	if rw.Kind == RewriteTupleToUserset && rw.Func == ArrowAny {
		into[rw.Tupleset] = true
	}
	for _, c := range rw.Children {
		collectTuplesets(c, into)
	}
}

// leopardPlan returns how a check answers rel of ns from the index, or nil when it walks.
// Every plan's edge is one of indexedEdges(ns).
func leopardPlan(ns *Namespace, rel *Relation) *LeopardPlan {
	typ := ns.Name
	if !rel.IsPermission {
		// Nested usersets: the self-userset must be the only userset the relation allows,
		// so that its direct subjects and the closure cover everything.
		self := false
		for _, a := range rel.AllowedSubjects {
			switch {
			case a.Relation == "":
			case a.Type == typ && a.Relation == rel.Name && a.Caveat == "" && !a.Expiration:
				self = true
			default:
				return nil
			}
		}
		if !self {
			return nil
		}
		return &LeopardPlan{Edge: Edge{typ, rel.Name, rel.Name}, Holders: []string{rel.Name}}
	}
	rw := rel.Rewrite
	if rw.Kind != RewriteUnion {
		return nil
	}
	var arrow *Rewrite
	var rest []*Rewrite
	for _, c := range rw.Children {
		if arrow == nil && c.Kind == RewriteTupleToUserset && c.Func == ArrowAny && c.Relation == rel.Name {
			if t := ns.Relation(c.Tupleset); t != nil && !t.IsPermission && selfParent(ns, t) {
				arrow = c
				continue
			}
		}
		rest = append(rest, c)
	}
	if arrow == nil || len(rest) == 0 {
		return nil
	}
	p := &LeopardPlan{Edge: Edge{typ, arrow.Tupleset, ""}, Rest: &Rewrite{Kind: RewriteUnion, Children: rest}}
	var holders []string
	for _, c := range rest {
		d := ns.Relation(c.Relation)
		if c.Kind != RewriteComputedUserset || d == nil || d.IsPermission {
			return p // forwards
		}
		for _, a := range d.AllowedSubjects {
			if a.Relation != "" {
				return p
			}
		}
		holders = append(holders, d.Name)
	}
	p.Holders = holders
	return p
}
