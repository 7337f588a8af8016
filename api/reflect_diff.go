package api

import (
	"context"
	"fmt"
	"sort"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/schema"
)

// DiffSchema compares the schema in force at the revision the consistency asks for (the
// existing one; none counts as empty) with comparison_schema, as SpiceDB does: definitions
// and caveats added, then removed, then for each definition present in both (in name order)
// its changes — doc comment, relations and permissions added or removed, their doc comments,
// a relation's subject types added or removed, a permission's expression — then for each
// caveat in both its doc comment, parameters added, removed or retyped, and expression. An
// added part is described as the comparison schema has it, a removed one as the existing
// schema had it. A relation that became a permission (or the reverse) is removed and added.
func (s schemaService) DiffSchema(ctx context.Context, req *v1.DiffSchemaRequest) (*v1.DiffSchemaResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	cmp, err := schema.Parse(req.GetComparisonSchema())
	if err != nil {
		return nil, fmt.Errorf("%w: comparison_schema: %w", errInvalidArgument, err)
	}
	rd, rev, err := s.snapshotCtx(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	existing := rd.Schema()
	if existing == nil {
		existing = &schema.Schema{}
	}
	return &v1.DiffSchemaResponse{Diffs: schemaDiffs(existing, cmp), ReadAt: encodeZedToken(rev)}, nil
}

func schemaDiffs(old, cmp *schema.Schema) []*v1.ReflectionSchemaDiff {
	var out []*v1.ReflectionSchemaDiff
	for _, ns := range cmp.Namespaces {
		if old.Namespace(ns.Name) == nil {
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_DefinitionAdded{DefinitionAdded: reflectDefinition(ns, nil)}})
		}
	}
	for _, ns := range old.Namespaces {
		if cmp.Namespace(ns.Name) == nil {
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_DefinitionRemoved{DefinitionRemoved: reflectDefinition(ns, nil)}})
		}
	}
	for _, c := range cmp.Caveats {
		if old.Caveat(c.Name) == nil {
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatAdded{CaveatAdded: reflectCaveat(c)}})
		}
	}
	for _, c := range old.Caveats {
		if cmp.Caveat(c.Name) == nil {
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatRemoved{CaveatRemoved: reflectCaveat(c)}})
		}
	}
	for _, name := range sharedNames(namespaceNames(old), namespaceNames(cmp)) {
		out = append(out, definitionDiffs(old.Namespace(name), cmp.Namespace(name))...)
	}
	for _, name := range sharedNames(caveatNames(old), caveatNames(cmp)) {
		out = append(out, caveatDiffs(old.Caveat(name), cmp.Caveat(name))...)
	}
	return out
}

func definitionDiffs(old, cmp *schema.Namespace) []*v1.ReflectionSchemaDiff {
	var out []*v1.ReflectionSchemaDiff
	if old.Doc != cmp.Doc {
		out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_DefinitionDocCommentChanged{DefinitionDocCommentChanged: reflectDefinition(cmp, nil)}})
	}
	added := func(r *schema.Relation) *v1.ReflectionSchemaDiff {
		if r.IsPermission {
			return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_PermissionAdded{PermissionAdded: reflectPermission(cmp.Name, r)}}
		}
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationAdded{RelationAdded: reflectRelation(cmp.Name, r)}}
	}
	removed := func(r *schema.Relation) *v1.ReflectionSchemaDiff {
		if r.IsPermission {
			return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_PermissionRemoved{PermissionRemoved: reflectPermission(old.Name, r)}}
		}
		return &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationRemoved{RelationRemoved: reflectRelation(old.Name, r)}}
	}
	for _, r := range cmp.Relations {
		if o := old.Relation(r.Name); o == nil || o.IsPermission != r.IsPermission {
			out = append(out, added(r))
		}
	}
	for _, r := range old.Relations {
		if c := cmp.Relation(r.Name); c == nil || c.IsPermission != r.IsPermission {
			out = append(out, removed(r))
		}
	}
	for _, r := range cmp.Relations {
		o := old.Relation(r.Name)
		if o == nil || o.IsPermission != r.IsPermission {
			continue
		}
		if r.IsPermission {
			p := reflectPermission(cmp.Name, r)
			if o.Doc != r.Doc {
				out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_PermissionDocCommentChanged{PermissionDocCommentChanged: p}})
			}
			if o.Rewrite.String() != r.Rewrite.String() {
				out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_PermissionExprChanged{PermissionExprChanged: p}})
			}
			continue
		}
		rel := reflectRelation(cmp.Name, r)
		if o.Comment() != r.Comment() {
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationDocCommentChanged{RelationDocCommentChanged: rel}})
		}
		oldTypes, newTypes := subjectTypeSet(o), subjectTypeSet(r)
		for _, a := range o.AllowedSubjects {
			if !newTypes[a.String()] {
				out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationSubjectTypeRemoved{
					RelationSubjectTypeRemoved: &v1.ReflectionRelationSubjectTypeChange{Relation: rel, ChangedSubjectType: reflectSubjectType(a)}}})
			}
		}
		for _, a := range r.AllowedSubjects {
			if !oldTypes[a.String()] {
				out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_RelationSubjectTypeAdded{
					RelationSubjectTypeAdded: &v1.ReflectionRelationSubjectTypeChange{Relation: rel, ChangedSubjectType: reflectSubjectType(a)}}})
			}
		}
	}
	return out
}

func caveatDiffs(old, cmp *schema.Caveat) []*v1.ReflectionSchemaDiff {
	var out []*v1.ReflectionSchemaDiff
	if old.Doc != cmp.Doc {
		out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatDocCommentChanged{CaveatDocCommentChanged: reflectCaveat(cmp)}})
	}
	oldParams, newParams := paramTypes(old), paramTypes(cmp)
	for _, p := range cmp.Parameters {
		typ, ok := oldParams[p.Name]
		switch {
		case !ok:
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatParameterAdded{CaveatParameterAdded: reflectParam(cmp.Name, p)}})
		case typ != p.Type:
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatParameterTypeChanged{
				CaveatParameterTypeChanged: &v1.ReflectionCaveatParameterTypeChange{Parameter: reflectParam(cmp.Name, p), PreviousType: typ}}})
		}
	}
	for _, p := range old.Parameters {
		if _, ok := newParams[p.Name]; !ok {
			out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatParameterRemoved{CaveatParameterRemoved: reflectParam(old.Name, p)}})
		}
	}
	if old.Expression != cmp.Expression {
		out = append(out, &v1.ReflectionSchemaDiff{Diff: &v1.ReflectionSchemaDiff_CaveatExprChanged{CaveatExprChanged: reflectCaveat(cmp)}})
	}
	return out
}

func subjectTypeSet(r *schema.Relation) map[string]bool {
	set := make(map[string]bool, len(r.AllowedSubjects))
	for _, a := range r.AllowedSubjects {
		set[a.String()] = true
	}
	return set
}

func paramTypes(c *schema.Caveat) map[string]string {
	m := make(map[string]string, len(c.Parameters))
	for _, p := range c.Parameters {
		m[p.Name] = p.Type
	}
	return m
}

func reflectParam(caveat string, p schema.CaveatParameter) *v1.ReflectionCaveatParameter {
	return &v1.ReflectionCaveatParameter{Name: p.Name, Type: p.Type, ParentCaveatName: caveat}
}

func namespaceNames(s *schema.Schema) []string {
	names := make([]string, len(s.Namespaces))
	for i, ns := range s.Namespaces {
		names[i] = ns.Name
	}
	return names
}

func caveatNames(s *schema.Schema) []string {
	names := make([]string, len(s.Caveats))
	for i, c := range s.Caveats {
		names[i] = c.Name
	}
	return names
}

// sharedNames is the names in both a and b, sorted.
func sharedNames(a, b []string) []string {
	inB := make(map[string]bool, len(b))
	for _, n := range b {
		inB[n] = true
	}
	var out []string
	for _, n := range a {
		if inB[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
