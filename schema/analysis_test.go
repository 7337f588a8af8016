package schema

import (
	"fmt"
	"strings"
	"testing"
)

// The analysis decides once which relations recurse: the Leopard index's edges, and each
// relation's plan, whose edge is always one the index covers (store/ and check/ used to
// decide this separately and agree through a probe at run time).
func TestAnalysis(t *testing.T) {
	s, err := Parse(`
caveat positive(x int) { x > 0 }
definition user {}
definition group {
	relation member: user | group#member
	relation admin: user | group#member | group#admin
}
definition role {
	relation member: user
	relation guest: user | group#member
	relation parent: role
	relation cparent: role with positive
	permission see = member + parent->see
	permission visit = guest + parent->visit
	permission csee = member + cparent->csee
	permission only = parent->only
}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(s.IndexedEdges()), "[{group admin admin} {group member member} {role parent }]"; got != want {
		t.Errorf("IndexedEdges: %s, want %s", got, want)
	}
	plans := map[string]string{
		"group#member": "{group member member} holders [member]",
		"group#admin":  "none", // another userset besides its own
		"role#see":     "{role parent } holders [member]",
		"role#visit":   "{role parent } forwards", // guest admits a userset
		"role#csee":    "none",                    // the tupleset is caveated
		"role#only":    "none",                    // no other branch
		"role#member":  "none",
	}
	for name, want := range plans {
		typ, rel, _ := strings.Cut(name, "#")
		p := s.Namespace(typ).Relation(rel).Leopard
		got := "none"
		if p != nil {
			if !s.Indexes(p.Edge) {
				t.Errorf("%s: the plan's edge %v is not indexed", name, p.Edge)
			}
			got = fmt.Sprintf("%v forwards", p.Edge)
			if p.Holders != nil {
				got = fmt.Sprintf("%v holders %v", p.Edge, p.Holders)
			}
		}
		if got != want {
			t.Errorf("%s: plan %s, want %s", name, got, want)
		}
	}
}

// A permission naming `self` is an entry of the reverse graph for its own type, marked union
// only where `self` sits in a union position, and absent where `self` is only subtracted
// (it can never make a subject a member there); a Leopard plan whose other branches hold `self`
// runs forwards, evaluating `self` on each object of the closure.
func TestAnalysisSelf(t *testing.T) {
	s, err := Parse(`
use self
definition user {
	relation manager: user
	relation parent: user
	permission view_profile = self + manager
	permission not_me = manager - self
	permission me_if_managed = manager & self
	permission lineage = self + parent->lineage
}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(s.Reverse().Self["user"]), "[{view_profile true} {me_if_managed false} {lineage true}]"; got != want {
		t.Errorf("Reverse().Self[user] = %s, want %s", got, want)
	}
	p := s.Namespace("user").Relation("lineage").Leopard
	if p == nil || p.Holders != nil || p.Edge != (Edge{"user", "parent", ""}) {
		t.Errorf("user#lineage plan = %+v, want a forwards plan over user#parent", p)
	}
}
