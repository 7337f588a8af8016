package check

import (
	"fmt"
	"strings"
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
