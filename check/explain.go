package check

import (
	"fmt"
	"strings"
	"time"

	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// Explanation is the evaluation tree behind an answer: which rewrites were evaluated, which
// relationships were followed, and what each part answered. Kind is one of "permission",
// "relation", "direct", "union", "intersection", "exclusion", "arrow", "all-arrow",
// "relationship", "wildcard", "nil", "self", "cycle" (met again on its own path, counted as
// no) and "cached" (answered earlier in the same request).
type Explanation struct {
	Kind string
	// Object is the userset evaluated, `deal:1#view`, or for an arrow `deal:1#account->view`.
	Object string
	// Relationship is the relationship followed, for "relationship" and "wildcard" nodes.
	Relationship string
	Membership   Membership
	Missing      []string
	Children     []*Explanation
	// Duration is how long a "permission" or "relation" sub-problem took, its own
	// sub-problems included (zero for the other kinds).
	Duration time.Duration
}

// String renders the tree, one node a line, indented by depth: ✓ for has permission, ✗ for
// no permission, ? for conditional.
func (e *Explanation) String() string {
	var b strings.Builder
	e.write(&b, 0)
	return b.String()
}

func (e *Explanation) write(b *strings.Builder, depth int) {
	if e == nil {
		return
	}
	mark := "✗"
	switch e.Membership {
	case HasPermission:
		mark = "✓"
	case ConditionalPermission:
		mark = "?"
	}
	b.WriteString(strings.Repeat("  ", depth))
	fmt.Fprintf(b, "%s %s", mark, e.Kind)
	if e.Object != "" {
		b.WriteString(" " + e.Object)
	}
	if e.Relationship != "" {
		b.WriteString(" " + e.Relationship)
	}
	if len(e.Missing) > 0 {
		fmt.Fprintf(b, " (missing %s)", strings.Join(e.Missing, ", "))
	}
	b.WriteString("\n")
	for _, c := range e.Children {
		c.write(b, depth+1)
	}
}

// TraceNode is one node of a check's trace in the shape SpiceDB reports it: one node per
// sub-problem (a relation or permission on one object, for the request's subject), whose
// children are the sub-problems its evaluation asked. Set operations and arrows are not nodes
// of their own: a permission's children are the sub-problems of its whole rewrite, an arrow's
// targets (the permission on each object the tupleset names) among them, as SpiceDB's
// dispatched checks are.
type TraceNode struct {
	ResourceType, ResourceID, Relation string
	// IsPermission tells a permission from a relation.
	IsPermission bool
	Membership   Membership
	// Missing names the caveat parameters that left the answer conditional.
	Missing []string
	// Cached is set for a sub-problem answered from earlier in the same request.
	Cached bool
	// Duration is how long the sub-problem took (zero for a cached one).
	Duration time.Duration
	// Caveats are the caveated relationships this sub-problem followed itself (those of
	// its children are theirs), with what each caveat answered.
	Caveats  []CaveatUse
	Children []*TraceNode
}

// CaveatUse is one caveated relationship a sub-problem followed.
type CaveatUse struct {
	Relationship store.Relationship
	// Membership is what the caveat itself answered: HasPermission for true, NoPermission for
	// false, ConditionalPermission when parameters were missing (Missing names them).
	Membership Membership
	Missing    []string
}

// Trace folds the explanation into SpiceDB's trace shape. sch is the schema the check ran
// against (it tells permissions from relations). A nil explanation has no trace.
func (e *Explanation) Trace(sch *schema.Schema) *TraceNode {
	if e == nil {
		return nil
	}
	if n := traceNodeOf(e, sch); n != nil {
		return n
	}
	// The root is always a sub-problem; anything else is an explanation not from check().
	n := &TraceNode{Membership: e.Membership, Missing: e.Missing}
	n.collect(e, sch)
	return n
}

// traceNodeOf is the node for a sub-problem's explanation, nil for the parts in between (set
// operations, arrows, a relation's direct relationships).
func traceNodeOf(e *Explanation, sch *schema.Schema) *TraceNode {
	switch e.Kind {
	case "permission", "relation", "cached", "self", "cycle":
	default:
		return nil
	}
	typ, rest, _ := strings.Cut(e.Object, ":")
	id, rel, _ := strings.Cut(rest, "#")
	n := &TraceNode{ResourceType: typ, ResourceID: id, Relation: rel, Membership: e.Membership, Missing: e.Missing, Duration: e.Duration}
	switch e.Kind {
	case "permission":
		n.IsPermission = true
	case "relation":
	default:
		if r := sch.Namespace(typ).Relation(rel); r != nil {
			n.IsPermission = r.IsPermission
		}
	}
	n.Cached = e.Kind == "cached"
	for _, c := range e.Children {
		n.collect(c, sch)
	}
	return n
}

// collect adds what e contributes to n: a sub-problem as a child, the children of the parts
// in between, and the caveated relationships n followed.
func (n *TraceNode) collect(e *Explanation, sch *schema.Schema) {
	if c := traceNodeOf(e, sch); c != nil {
		n.Children = append(n.Children, c)
		return
	}
	if e.Kind == "relationship" || e.Kind == "wildcard" {
		if r, err := store.ParseRelationship(e.Relationship); err == nil && r.Caveat != "" {
			n.Caveats = append(n.Caveats, caveatUseOf(r, e, sch))
		}
	}
	for _, c := range e.Children {
		n.collect(c, sch)
	}
}

// caveatUseOf reads what the caveat of r answered from the node that followed r: a caveat
// that failed ends the path there (no children); one that holds passes the answer below it
// on; parameters of the caveat that r's own context lacks and the node misses are missing.
func caveatUseOf(r store.Relationship, e *Explanation, sch *schema.Schema) CaveatUse {
	u := CaveatUse{Relationship: r, Membership: HasPermission}
	if cv := sch.Caveat(r.Caveat); cv != nil {
		for _, m := range e.Missing {
			_, given := r.CaveatContext[m]
			if !given && hasParam(cv, m) {
				u.Missing = append(u.Missing, m)
			}
		}
	}
	switch {
	case len(u.Missing) > 0:
		u.Membership = ConditionalPermission
	case len(e.Children) == 0 && e.Membership == NoPermission:
		u.Membership = NoPermission
	}
	return u
}

func hasParam(cv *schema.Caveat, name string) bool {
	for _, p := range cv.Parameters {
		if p.Name == name {
			return true
		}
	}
	return false
}
