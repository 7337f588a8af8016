package check

import (
	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// `self` (schema.RewriteSelf, under `use self`) is the resource itself as a subject: user:alice
// is in user:alice#view_profile for `permission view_profile = self + manager`. As in SpiceDB,
// only the plain object counts — not a userset of it (user:alice#manager), not another object
// of the type, not a wildcard — and `self` reads no relationships. Every read API agrees:
//
//   - Check: selfCheck;
//   - Expand: a leaf whose one subject is the resource (selfExpand);
//   - LookupSubjects: the resource is a candidate subject wherever `self` appears (selfSubject),
//     then confirmed by Check like every candidate;
//   - LookupResources: from a plain object subject the reverse walk steps to the permissions of
//     its own type that name `self`, on the same object (selfResources, from the schema's
//     reverse graph), certain where `self` sits in a union position.

// selfCheck answers `self` for k: whether k's subject is k's object itself.
func (w *walker) selfCheck(k key) outcome {
	m := NoPermission
	if k.subject.relation == "" && k.subject.typ == k.resType && k.subject.id == k.resID {
		m = HasPermission
	}
	return w.leaf(outcome{m: m, low: noCycle}, "self", k.resType+":"+k.resID, "")
}

// selfExpand is the userset tree of `self` on n's object: the object itself.
func selfExpand(n node) *ExpandNode {
	return &ExpandNode{Operation: ExpandLeaf, ResourceType: n.typ, ResourceID: n.id, Relation: n.relation,
		Subjects: []ExpandSubject{{Type: n.typ, ID: n.id}}}
}

// selfSubject is the subject `self` stands for on n's object.
func selfSubject(n node) node { return node{n.typ, n.id, ""} }

// selfResources calls push for each permission of n's type that holds n's object through
// `self`, with whether it does for sure (a union position). n must be a plain object.
func selfResources(g *schema.ReverseGraph, n node, push func(n node, union bool)) {
	if n.relation != "" || n.id == store.Wildcard {
		return
	}
	for _, p := range g.Self[n.typ] {
		push(node{n.typ, n.id, p.Permission}, p.Union)
	}
}
