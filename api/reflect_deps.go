package api

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// DependentRelations lists every relation and permission a permission is computed from,
// through other permissions and arrows, at any depth: what a change to the permission's
// inputs can reach. A relation (rather than a permission) is INVALID_ARGUMENT.
func (s schemaService) DependentRelations(ctx context.Context, req *v1.DependentRelationsRequest) (*v1.DependentRelationsResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	sch, rev, err := s.schemaAt(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	r, err := reflectedRelation(sch, req.GetDefinitionName(), req.GetPermissionName(), "permission_name")
	if err != nil {
		return nil, err
	}
	if !r.IsPermission {
		return nil, invalidf("permission_name: %s#%s is a relation; DependentRelations takes a permission", req.GetDefinitionName(), r.Name)
	}
	deps := dependencies(sch)
	start := relRef{req.GetDefinitionName(), r.Name}
	seen := map[relRef]bool{}
	var walk func(relRef)
	walk = func(x relRef) {
		for _, d := range deps[x] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(start)
	delete(seen, start)
	return &v1.DependentRelationsResponse{Relations: refsToProto(sch, seen), ReadAt: encodeZedToken(rev)}, nil
}

// ComputablePermissions lists every permission computed, at any depth, from a relation or
// permission: what may change when it changes. optional_definition_name_filter keeps only
// the permissions of definitions with that prefix.
func (s schemaService) ComputablePermissions(ctx context.Context, req *v1.ComputablePermissionsRequest) (*v1.ComputablePermissionsResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	sch, rev, err := s.schemaAt(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	r, err := reflectedRelation(sch, req.GetDefinitionName(), req.GetRelationName(), "relation_name")
	if err != nil {
		return nil, err
	}
	users := map[relRef][]relRef{} // x → what is computed directly from x
	for p, ds := range dependencies(sch) {
		for _, d := range ds {
			users[d] = append(users[d], p)
		}
	}
	start := relRef{req.GetDefinitionName(), r.Name}
	seen := map[relRef]bool{}
	var walk func(relRef)
	walk = func(x relRef) {
		for _, u := range users[x] {
			if !seen[u] {
				seen[u] = true
				walk(u)
			}
		}
	}
	walk(start)
	delete(seen, start)
	for x := range seen {
		if !strings.HasPrefix(x.def, req.GetOptionalDefinitionNameFilter()) {
			delete(seen, x)
		}
	}
	return &v1.ComputablePermissionsResponse{Permissions: refsToProto(sch, seen), ReadAt: encodeZedToken(rev)}, nil
}

// schemaAt is the schema in force at the revision the consistency asks for.
func (s schemaService) schemaAt(ctx context.Context, c *v1.Consistency) (*schema.Schema, store.Revision, error) {
	rd, rev, err := s.snapshotCtx(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	defer rd.Close()
	sch := rd.Schema()
	if sch == nil {
		return nil, 0, fmt.Errorf("%w: no schema has been written; write one with WriteSchema", errNotFound)
	}
	return sch, rev, nil
}

func reflectedRelation(sch *schema.Schema, def, name, field string) (*schema.Relation, error) {
	ns := sch.Namespace(def)
	if ns == nil {
		return nil, invalidf("definition_name: %q is not defined in the schema", def)
	}
	r := ns.Relation(name)
	if r == nil {
		return nil, invalidf("%s: definition %s has no relation or permission %q", field, def, name)
	}
	return r, nil
}

// relRef names a relation or permission of a definition.
type relRef struct{ def, name string }

// dependencies maps every permission to the relations and permissions its rewrite refers to
// directly: computed usersets and tuplesets of its own definition, and an arrow's target on
// every subject type its tupleset allows (where that type has it).
func dependencies(sch *schema.Schema) map[relRef][]relRef {
	deps := map[relRef][]relRef{}
	for _, ns := range sch.Namespaces {
		for _, r := range ns.Relations {
			if !r.IsPermission {
				continue
			}
			self := relRef{ns.Name, r.Name}
			var visit func(rw *schema.Rewrite)
			visit = func(rw *schema.Rewrite) {
				if rw == nil {
					return
				}
				switch rw.Kind {
				case schema.RewriteComputedUserset:
					deps[self] = append(deps[self], relRef{ns.Name, rw.Relation})
				case schema.RewriteTupleToUserset:
					deps[self] = append(deps[self], relRef{ns.Name, rw.Tupleset})
					if ts := ns.Relation(rw.Tupleset); ts != nil {
						for _, a := range ts.AllowedSubjects {
							if target := sch.Namespace(a.Type); target != nil && target.Relation(rw.Relation) != nil {
								deps[self] = append(deps[self], relRef{a.Type, rw.Relation})
							}
						}
					}
				}
				for _, c := range rw.Children {
					visit(c)
				}
			}
			visit(r.Rewrite)
		}
	}
	return deps
}

// refsToProto sorts refs by definition, then name.
func refsToProto(sch *schema.Schema, refs map[relRef]bool) []*v1.ReflectionRelationReference {
	list := make([]relRef, 0, len(refs))
	for x := range refs {
		list = append(list, x)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].def != list[j].def {
			return list[i].def < list[j].def
		}
		return list[i].name < list[j].name
	})
	out := make([]*v1.ReflectionRelationReference, len(list))
	for i, x := range list {
		isPerm := false
		if r := sch.Namespace(x.def).Relation(x.name); r != nil {
			isPerm = r.IsPermission
		}
		out[i] = &v1.ReflectionRelationReference{DefinitionName: x.def, RelationName: x.name, IsPermission: isPerm}
	}
	return out
}
