package schema

// ReverseGraph indexes a schema backwards, for lookups that walk from a subject to the
// resources that may hold it: which relations may hold a kind of subject, which permissions
// name a relation, which arrows lead to it.
type ReverseGraph struct {
	// Direct maps a kind of subject to the relations whose type lists admit it.
	Direct map[SubjectKind][]RelationRef
	// Computed maps a relation or permission to the permissions of its definition naming it.
	Computed map[RelationRef][]ComputedEdge
	// Arrows maps a target relation or permission name to the arrows that lead to it.
	Arrows map[string][]ArrowEdge
	// Self maps a definition to its permissions that name `self`: an object of the type is a
	// subject of each of them on itself.
	Self map[string][]ComputedEdge
	// SharedScans counts, for a tupleset read by more than one arrow, how many arrows read it.
	SharedScans map[TuplesetScan]int
}

// SubjectKind is a shape of subject: Type:id, Type:id#Relation, or Type:* when Wildcard.
type SubjectKind struct {
	Type, Relation string
	Wildcard       bool
}

// RelationRef names a relation or permission of a definition.
type RelationRef struct{ Type, Relation string }

// ComputedEdge is a permission that names a relation. Union is true when some mention sits in
// a union position (reached from the root through unions only), so that a member of the
// relation is a member of the permission.
type ComputedEdge struct {
	Permission string
	Union      bool
}

// ArrowEdge is an arrow ResourceType#Permission = … Tupleset->target ….
type ArrowEdge struct {
	ResourceType, Tupleset, Permission string
	// Union is true for an any-arrow in a union position.
	Union bool
	// SubjectRelations maps a subject type the tupleset allows to its subject relations.
	SubjectRelations map[string][]string
}

// TuplesetScan is one read of a tupleset backwards, without the subject's id: the
// relationships ResourceType:?#Tupleset whose subject is SubjectType:?#SubjectRelation.
type TuplesetScan struct {
	SubjectType, SubjectRelation, ResourceType, Tupleset string
}

// Reverse returns the schema's reverse graph.
func (s *Schema) Reverse() *ReverseGraph {
	if s == nil {
		return &ReverseGraph{Self: map[string][]ComputedEdge{}}
	}
	return s.reverse
}

func newReverseGraph(sch *Schema) *ReverseGraph {
	g := &ReverseGraph{Direct: map[SubjectKind][]RelationRef{}, Computed: map[RelationRef][]ComputedEdge{},
		Arrows: map[string][]ArrowEdge{}, Self: map[string][]ComputedEdge{}}
	for _, ns := range sch.Namespaces {
		for _, rel := range ns.Relations {
			if !rel.IsPermission {
				seen := map[SubjectKind]bool{}
				for _, a := range rel.AllowedSubjects {
					k := SubjectKind{a.Type, a.Relation, a.Wildcard}
					if !seen[k] {
						seen[k] = true
						g.Direct[k] = append(g.Direct[k], RelationRef{ns.Name, rel.Name})
					}
				}
				continue
			}
			named := map[string]bool{} // relation → some mention in a union position
			self, selfUnion := false, false
			var walk func(rw *Rewrite, union bool)
			walk = func(rw *Rewrite, union bool) {
				switch rw.Kind {
				case RewriteSelf:
					self, selfUnion = true, selfUnion || union
				case RewriteComputedUserset:
					named[rw.Relation] = named[rw.Relation] || union
				case RewriteTupleToUserset:
					ts := ns.Relation(rw.Tupleset)
					if ts == nil {
						return
					}
					e := ArrowEdge{ResourceType: ns.Name, Tupleset: rw.Tupleset, Permission: rel.Name,
						Union: union && rw.Func == ArrowAny, SubjectRelations: map[string][]string{}}
					for _, a := range ts.AllowedSubjects {
						if a.Wildcard || contains(e.SubjectRelations[a.Type], a.Relation) {
							continue
						}
						e.SubjectRelations[a.Type] = append(e.SubjectRelations[a.Type], a.Relation)
					}
					g.Arrows[rw.Relation] = append(g.Arrows[rw.Relation], e)
				case RewriteUnion:
					for _, ch := range rw.Children {
						walk(ch, union)
					}
				case RewriteIntersection:
					for _, ch := range rw.Children {
						walk(ch, false)
					}
				case RewriteExclusion:
					// The subtracted side can never make a subject a member.
					walk(rw.Children[0], false)
				}
			}
			walk(rel.Rewrite, true)
			if self {
				g.Self[ns.Name] = append(g.Self[ns.Name], ComputedEdge{rel.Name, selfUnion})
			}
			// In source order of the relations named, so that lookups walk deterministically.
			for _, r := range ns.Relations {
				if union, ok := named[r.Name]; ok {
					k := RelationRef{ns.Name, r.Name}
					g.Computed[k] = append(g.Computed[k], ComputedEdge{rel.Name, union})
				}
			}
		}
	}
	g.SharedScans = map[TuplesetScan]int{}
	for _, edges := range g.Arrows {
		for _, a := range edges {
			for typ, rels := range a.SubjectRelations {
				for _, rel := range rels {
					g.SharedScans[TuplesetScan{typ, rel, a.ResourceType, a.Tupleset}]++
				}
			}
		}
	}
	for k, n := range g.SharedScans {
		if n < 2 {
			delete(g.SharedScans, k)
		}
	}
	return g
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
