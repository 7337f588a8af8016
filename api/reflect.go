package api

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/schema"
)

// ReflectSchema describes the schema in force at the revision the consistency asks for: its
// definitions with their relations (and each relation's allowed subject types) and
// permissions, and its caveats with their parameters, each with its doc comment in the
// `/** ... */` form. optional_filters narrow it: each filter's fields are name prefixes, a
// relation or permission filter needs a definition filter, and a part is included when any
// filter includes it. A relation's kengen limit is part of its comment, as ReadSchema writes
// it (`kengen:limit N`).
func (s schemaService) ReflectSchema(ctx context.Context, req *v1.ReflectSchemaRequest) (*v1.ReflectSchemaResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	filters, err := reflectionFilters(req.GetOptionalFilters())
	if err != nil {
		return nil, err
	}
	rd, rev, err := s.snapshotCtx(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	sch := rd.Schema()
	if sch == nil {
		return nil, fmt.Errorf("%w: no schema has been written; write one with WriteSchema", errNotFound)
	}
	resp := &v1.ReflectSchemaResponse{ReadAt: encodeZedToken(rev)}
	for _, ns := range sch.Namespaces {
		if d := reflectDefinition(ns, filters); d != nil {
			resp.Definitions = append(resp.Definitions, d)
		}
	}
	for _, c := range sch.Caveats {
		if filters.caveat(c.Name) {
			resp.Caveats = append(resp.Caveats, reflectCaveat(c))
		}
	}
	return resp, nil
}

// schemaFilters are a ReflectSchema request's filters.
type schemaFilters []*v1.ReflectionSchemaFilter

func reflectionFilters(fs []*v1.ReflectionSchemaFilter) (schemaFilters, error) {
	for i, f := range fs {
		if f.GetOptionalDefinitionNameFilter() == "" && (f.GetOptionalRelationNameFilter() != "" || f.GetOptionalPermissionNameFilter() != "") {
			return nil, invalidf("optional_filters[%d]: a relation or permission filter needs optional_definition_name_filter", i)
		}
	}
	return fs, nil
}

// definition reports whether a definition is included, and by which filters.
func (r schemaFilters) definition(name string) (included bool, by []*v1.ReflectionSchemaFilter) {
	if len(r) == 0 {
		return true, nil
	}
	for _, f := range r {
		if p := f.GetOptionalDefinitionNameFilter(); p != "" && strings.HasPrefix(name, p) {
			by = append(by, f)
		}
	}
	return len(by) > 0, by
}

func (r schemaFilters) caveat(name string) bool {
	if len(r) == 0 {
		return true
	}
	for _, f := range r {
		if p := f.GetOptionalCaveatNameFilter(); p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// member reports whether a relation or permission of an included definition is included by
// the filters that included the definition: one without a relation or permission filter
// includes every member; otherwise the member's name must have the filter's prefix of its kind.
func member(by []*v1.ReflectionSchemaFilter, r *schema.Relation) bool {
	if by == nil {
		return true
	}
	for _, f := range by {
		rel, perm := f.GetOptionalRelationNameFilter(), f.GetOptionalPermissionNameFilter()
		switch {
		case rel == "" && perm == "":
			return true
		case r.IsPermission && perm != "" && strings.HasPrefix(r.Name, perm):
			return true
		case !r.IsPermission && rel != "" && strings.HasPrefix(r.Name, rel):
			return true
		}
	}
	return false
}

func reflectDefinition(ns *schema.Namespace, filters schemaFilters) *v1.ReflectionDefinition {
	ok, by := filters.definition(ns.Name)
	if !ok {
		return nil
	}
	d := &v1.ReflectionDefinition{Name: ns.Name, Comment: schema.DocComment(ns.Doc)}
	for _, r := range ns.Relations {
		if !member(by, r) {
			continue
		}
		if r.IsPermission {
			d.Permissions = append(d.Permissions, reflectPermission(ns.Name, r))
		} else {
			d.Relations = append(d.Relations, reflectRelation(ns.Name, r))
		}
	}
	return d
}

func reflectPermission(def string, r *schema.Relation) *v1.ReflectionPermission {
	return &v1.ReflectionPermission{Name: r.Name, Comment: schema.DocComment(r.Doc), ParentDefinitionName: def}
}

func reflectRelation(def string, r *schema.Relation) *v1.ReflectionRelation {
	rel := &v1.ReflectionRelation{Name: r.Name, Comment: schema.DocComment(r.Comment()), ParentDefinitionName: def}
	for _, a := range r.AllowedSubjects {
		rel.SubjectTypes = append(rel.SubjectTypes, reflectSubjectType(a))
	}
	return rel
}

func reflectSubjectType(a *schema.AllowedSubject) *v1.ReflectionTypeReference {
	t := &v1.ReflectionTypeReference{SubjectDefinitionName: a.Type, OptionalCaveatName: a.Caveat}
	switch {
	case a.Wildcard:
		t.Typeref = &v1.ReflectionTypeReference_IsPublicWildcard{IsPublicWildcard: true}
	case a.Relation != "":
		t.Typeref = &v1.ReflectionTypeReference_OptionalRelationName{OptionalRelationName: a.Relation}
	default:
		t.Typeref = &v1.ReflectionTypeReference_IsTerminalSubject{IsTerminalSubject: true}
	}
	return t
}

func reflectCaveat(c *schema.Caveat) *v1.ReflectionCaveat {
	out := &v1.ReflectionCaveat{Name: c.Name, Comment: schema.DocComment(c.Doc), Expression: c.Expression}
	for _, p := range c.Parameters {
		out.Parameters = append(out.Parameters, &v1.ReflectionCaveatParameter{Name: p.Name, Type: p.Type, ParentCaveatName: c.Name})
	}
	return out
}
