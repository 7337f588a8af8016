package check_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kengen/kengen/check"
)

// TestExpand pins the userset tree of a permission with an exclusion, an arrow through a
// cycle in the data, a caveated subject, a wildcard and a userset subject.
func TestExpand(t *testing.T) {
	f := newFixture(t, lookupSchema,
		"document:1#viewer@user:*",
		"document:1#viewer@user:sarah[positive]",
		"document:1#viewer@group:eng#member",
		"document:1#banned@user:fred",
		"document:1#parent@document:2",
		"document:2#parent@document:1",
		"document:2#viewer@user:tom",
	)
	c := check.New(check.Options{})
	tree, err := c.Expand(context.Background(), f.reader(), "document", "1", "view")
	if err != nil {
		t.Fatal(err)
	}
	want := `exclusion document:1#view
  union document:1#view
    leaf document:1#viewer: user:* user:sarah[positive] group:eng#member
    union document:1#view
      exclusion document:2#view
        union document:2#view
          leaf document:2#viewer: user:tom
          union document:2#view
            leaf document:1#view:
        leaf document:2#banned:
  leaf document:1#banned: user:fred
`
	if got := renderTree(tree, ""); got != want {
		t.Errorf("Expand(document:1#view) =\n%s\nwant\n%s", got, want)
	}
	if _, err := c.Expand(context.Background(), f.reader(), "document", "1", "nope"); !errors.Is(err, check.ErrUnknownRelation) {
		t.Errorf("Expand of an unknown permission: %v, want ErrUnknownRelation", err)
	}
}

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
