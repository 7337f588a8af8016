package check_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kengen/kengen/check"
)

// TestExpand pins the userset tree of a permission with an exclusion, an arrow, a caveated
// subject, a wildcard and a userset subject; and what a cycle in the data does: through
// unions only it ends in an empty leaf, through an exclusion it is refused.
func TestExpand(t *testing.T) {
	f := newFixture(t, lookupSchema,
		"document:1#viewer@user:*",
		"document:1#viewer@user:sarah[positive]",
		"document:1#viewer@group:eng#member",
		"document:1#banned@user:fred",
		"document:1#parent@document:2",
		"document:2#parent@document:3",
		"document:2#viewer@user:tom",
		"document:4#parent@document:5",
		"document:5#parent@document:4",
	)
	c := check.New(check.Options{})
	if _, err := c.Expand(context.Background(), f.reader(), "document", "4", "view"); !errors.Is(err, check.ErrMaxDepth) || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("Expand over a cycle through an exclusion: %v, want ErrMaxDepth naming the cycle", err)
	}
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
            exclusion document:3#view
              union document:3#view
                leaf document:3#viewer:
                union document:3#view
              leaf document:3#banned:
        leaf document:2#banned:
  leaf document:1#banned: user:fred
`
	if got := renderTree(tree, ""); got != want {
		t.Errorf("Expand(document:1#view) =\n%s\nwant\n%s", got, want)
	}
	g := newFixture(t, docSchema, "folder:a#parent@folder:b", "folder:b#parent@folder:a", "folder:b#viewer@user:bo")
	tree, err = c.Expand(context.Background(), g.reader(), "folder", "a", "view")
	if err != nil {
		t.Fatal(err)
	}
	want = `union folder:a#view
  leaf folder:a#viewer:
  union folder:a#view
    union folder:b#view
      leaf folder:b#viewer: user:bo
      union folder:b#view
        leaf folder:a#view:
`
	if got := renderTree(tree, ""); got != want {
		t.Errorf("Expand(folder:a#view) over a cycle through unions =\n%s\nwant\n%s", got, want)
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
