package main

import (
	"fmt"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// The command line names objects as SpiceDB's tools do: `deal:1`, a subject `user:sato`,
// `group:eng#member` or `user:*`, a filter `deal`, `deal:1` or `deal:1#owner`. These parsers
// only split the text; the server validates names and ids and says what is wrong.

// parseObject reads `type:id`.
func parseObject(what, s string) (*v1.ObjectReference, error) {
	typ, id, ok := strings.Cut(s, ":")
	if !ok || typ == "" || id == "" || strings.Contains(id, "#") {
		return nil, fmt.Errorf("%s %q: want type:id, e.g. deal:1", what, s)
	}
	return &v1.ObjectReference{ObjectType: typ, ObjectId: id}, nil
}

// parseSubject reads `type:id`, `type:id#relation` or `type:*`.
func parseSubject(s string) (*v1.SubjectReference, error) {
	obj, rel, _ := strings.Cut(s, "#")
	o, err := parseObject("subject", obj)
	if err != nil {
		return nil, fmt.Errorf("subject %q: want type:id, type:id#relation or type:*, e.g. user:sato, group:eng#member, user:*", s)
	}
	if rel == "..." {
		rel = ""
	}
	return &v1.SubjectReference{Object: o, OptionalRelation: rel}, nil
}

// parseFilter reads `type`, `type:id`, `type#relation` or `type:id#relation`.
func parseFilter(s string) (*v1.RelationshipFilter, error) {
	head, rel, _ := strings.Cut(s, "#")
	typ, id, _ := strings.Cut(head, ":")
	if typ == "" {
		return nil, fmt.Errorf("filter %q: want type, type:id or type:id#relation, e.g. deal, deal:1, deal:1#owner", s)
	}
	return &v1.RelationshipFilter{ResourceType: typ, OptionalResourceId: id, OptionalRelation: rel}, nil
}

// parseSubjectFilter reads `type`, `type:id` or `type:id#relation` as a subject filter.
func parseSubjectFilter(s string) (*v1.SubjectFilter, error) {
	head, rel, hasRel := strings.Cut(s, "#")
	typ, id, _ := strings.Cut(head, ":")
	if typ == "" {
		return nil, fmt.Errorf("subject filter %q: want type, type:id or type:id#relation, e.g. user:sato", s)
	}
	f := &v1.SubjectFilter{SubjectType: typ, OptionalSubjectId: id}
	if hasRel {
		if rel == "..." {
			rel = ""
		}
		f.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: rel}
	}
	return f, nil
}

// formatRelationship prints a relationship as `deal:1#owner@user:sato`, with the caveat and
// expiration in brackets when present.
func formatRelationship(r *v1.Relationship) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s#%s@%s", formatObject(r.GetResource()), r.GetRelation(), formatSubject(r.GetSubject()))
	if c := r.GetOptionalCaveat(); c != nil {
		b.WriteString("[" + c.GetCaveatName())
		if ctx := c.GetContext(); ctx != nil && len(ctx.GetFields()) > 0 {
			j, _ := ctx.MarshalJSON()
			b.WriteString(":" + string(j))
		}
		b.WriteString("]")
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		b.WriteString("[expiration:" + e.AsTime().UTC().Format("2006-01-02T15:04:05Z07:00") + "]")
	}
	return b.String()
}

func formatObject(o *v1.ObjectReference) string {
	return o.GetObjectType() + ":" + o.GetObjectId()
}

func formatSubject(s *v1.SubjectReference) string {
	out := formatObject(s.GetObject())
	if s.GetOptionalRelation() != "" {
		out += "#" + s.GetOptionalRelation()
	}
	return out
}
