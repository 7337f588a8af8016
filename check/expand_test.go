package check_test

import (
	"strings"

	"github.com/kengen/kengen/check"
)

// renderTree draws an Expand tree, one node a line, for the fixtures.
func renderTree(n *check.ExpandNode, indent string) string {
	op := map[check.ExpandOperation]string{check.ExpandLeaf: "leaf", check.ExpandUnion: "union",
		check.ExpandIntersection: "intersection", check.ExpandExclusion: "exclusion"}[n.Operation]
	var b strings.Builder
	b.WriteString(indent + op + " " + n.ResourceType + ":" + n.ResourceID + "#" + n.Relation)
	if n.Operation == check.ExpandLeaf {
		b.WriteString(":")
		for _, s := range n.Subjects {
			b.WriteString(" " + s.Type + ":" + s.ID)
			if s.Relation != "" {
				b.WriteString("#" + s.Relation)
			}
			if s.Caveat != "" {
				b.WriteString("[" + s.Caveat + "]")
			}
		}
	}
	b.WriteString("\n")
	for _, ch := range n.Children {
		b.WriteString(renderTree(ch, indent+"  "))
	}
	return b.String()
}
