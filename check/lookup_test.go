package check_test

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/kengen/kengen/bench/datagen"
	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

const lookupSchema = `
caveat positive(x int) { x > 0 }

definition user {}

definition group {
	relation member: user | user:* | group#member
	relation banned: user
	permission allowed = member - banned
}

definition document {
	relation viewer: user | user:* | group#member | user with positive
	relation banned: user
	relation owner: user
	relation group: group
	relation parent: document
	permission view = (viewer + parent->view) - banned
	permission edit = owner & group->allowed
}
`

func subjectStrings(found []check.FoundSubject) []string {
	var out []string
	for _, s := range found {
		text := s.Type + ":" + s.ID
		if s.Relation != "" {
			text += "#" + s.Relation
		}
		if len(s.Excluded) > 0 {
			text += fmt.Sprintf(" - %v", s.Excluded)
		}
		text += " " + s.Membership.String()
		if len(s.MissingParams) > 0 {
			text += fmt.Sprintf(" %v", s.MissingParams)
		}
		out = append(out, text)
	}
	return out
}

func universe(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// membershipIn reads a LookupSubjects answer as a client does: an id found on its own, else
// its type's wildcard unless that excludes it, else no permission.
func membershipIn(found []check.FoundSubject, id string) check.Membership {
	for _, s := range found {
		if s.ID == id {
			return s.Membership
		}
	}
	for _, s := range found {
		if s.ID == store.Wildcard {
			for _, x := range s.Excluded {
				if x == id {
					return check.NoPermission
				}
			}
			return s.Membership
		}
	}
	return check.NoPermission
}

// randomSchema draws three permissions over fixed relations; p_i may use p_j for j < i, and
// arrows over `parent` may name any permission, cycles included.
func randomSchema(rng *rand.Rand) string {
	var b strings.Builder
	b.WriteString(`
caveat positive(x int) { x > 0 }
definition user {}
definition group {
	relation member: user | user:* | group#member | user with positive
	relation banned: user
	relation sub: group
	permission allowed = ` + randomExpr(rng, []string{"member", "banned", "sub->allowed", "sub.all(allowed)"}, 1) + `
}
definition doc {
	relation rel1: user | user:* | group#member
	relation rel2: user | group#member | user with positive
	relation rel3: user | user:*
	relation parent: doc
	relation grp: group
`)
	leaves := []string{"rel1", "rel2", "rel3", "grp->allowed", "grp->member", "parent->perm0", "parent->perm1", "parent->perm2",
		"parent.all(perm0)", "parent.all(perm1)", "parent.all(perm2)"}
	for i := range 3 {
		fmt.Fprintf(&b, "\tpermission perm%d = %s\n", i, randomExpr(rng, leaves, 2))
		leaves = append(leaves, fmt.Sprintf("perm%d", i))
	}
	b.WriteString("}\n")
	return b.String()
}

func randomExpr(rng *rand.Rand, leaves []string, depth int) string {
	if depth == 0 || rng.Intn(3) == 0 {
		return leaves[rng.Intn(len(leaves))]
	}
	op := []string{" + ", " & ", " - "}[rng.Intn(3)]
	return "(" + randomExpr(rng, leaves, depth-1) + op + randomExpr(rng, leaves, depth-1) + ")"
}

func randomRelationships(rng *rand.Rand) []string {
	seen := make(map[string]bool)
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	user := func() string {
		if rng.Intn(8) == 0 {
			return "user:*"
		}
		return fmt.Sprintf("user:user%d", rng.Intn(5))
	}
	concrete := func() string { return fmt.Sprintf("user:user%d", rng.Intn(5)) }
	for range 10 + rng.Intn(25) {
		d, g := fmt.Sprintf("doc%d", rng.Intn(5)), fmt.Sprintf("group%d", rng.Intn(3))
		switch rng.Intn(10) {
		case 0:
			add("doc:" + d + "#rel1@" + user())
		case 1:
			add(fmt.Sprintf("doc:%s#rel1@group:group%d#member", d, rng.Intn(3)))
		case 2:
			add("doc:" + d + "#rel2@" + concrete())
		case 3:
			add("doc:" + d + "#rel2@" + concrete() + "[positive]")
		case 4:
			add("doc:" + d + "#rel3@" + user())
		case 5:
			add(fmt.Sprintf("doc:%s#parent@doc:doc%d", d, rng.Intn(5)))
		case 6:
			add("doc:" + d + "#grp@group:" + g)
		case 7:
			add("group:" + g + "#member@" + user())
		case 8:
			add(fmt.Sprintf("group:%s#member@group:group%d#member", g, rng.Intn(3)))
		case 9:
			if rng.Intn(3) == 0 {
				add(fmt.Sprintf("group:%s#sub@group:group%d", g, rng.Intn(3)))
			} else if rng.Intn(2) == 0 {
				add("group:" + g + "#banned@" + concrete())
			} else {
				add("group:" + g + "#member@" + concrete() + "[positive]")
			}
		}
	}
	// Keep only one caveated or plain form of each relationship: the store keys them alike.
	byKey := make(map[string]string)
	var final []string
	for _, s := range out {
		k, _, _ := strings.Cut(s, "[")
		if _, dup := byKey[k]; dup {
			continue
		}
		byKey[k] = s
		final = append(final, s)
	}
	return final
}

// BenchmarkLookupResourcesCRM lists the deals a user may view on the CRM dataset (150,000
// deals at scale 1; see bench_test.go): a member of the root role, who sees every deal a
// role owns, and an ordinary user who sees a few dozen. Each iteration uses a new Checker,
// so the reverse walk is not cached.
func BenchmarkLookupResourcesCRM(b *testing.B) {
	st, stats := crmStore(b)
	r, err := st.Reader(0)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var root string
	if err := r.Subjects("role", datagen.RoleID(0), "member", func(t *store.Relationship) bool { root = t.SubjectID; return false }); err != nil || root == "" {
		b.Fatalf("no member of the root role: %v", err)
	}
	b.Logf("dataset: %d deals, %d relationships", stats.Deals, stats.Relationships)
	for _, tc := range []struct{ name, user string }{{"everything", root}, {"few", datagen.UserID(stats.Users / 2)}} {
		b.Run(tc.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				found, err := check.New(check.Options{}).LookupResources(context.Background(), r, check.ResourcesRequest{
					ResourceType: "deal", Permission: "view", SubjectType: "user", SubjectID: tc.user})
				if err != nil {
					b.Fatal(err)
				}
				n = len(found)
			}
			b.ReportMetric(float64(n), "deals")
		})
	}
}
