package check_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// selfSchema uses `self` in a union, an exclusion, an intersection, a recursive permission
// (which the Leopard index answers by walking forwards), on a second type, and through an
// arrow and a userset from another definition.
const selfSchema = `use self

definition user {
	relation manager: user
	relation parent: user
	permission view_profile = self + manager
	permission not_me = manager - self
	permission me_if_managed = manager & self
	permission lineage = self + parent->lineage
}

definition team {
	relation member: user
	permission members = member + self
}

definition document {
	relation owner: user
	relation profile_viewer: user#view_profile
	permission owner_profile = owner->view_profile
	permission view = profile_viewer
}
`

var selfRelationships = []string{
	"user:bob#manager@user:alice",
	"user:dave#manager@user:dave",
	"user:carol#parent@user:bob",
	"user:bob#parent@user:alice",
	"team:t1#member@user:erin",
	"document:d1#owner@user:bob",
	"document:d2#profile_viewer@user:carol#view_profile",
}

// selfReader opens an in-memory store holding selfSchema and selfRelationships.
func selfReader(t *testing.T) *store.Reader {
	t.Helper()
	return selfStoreWith(t, selfSchema, selfRelationships)
}

// selfStoreWith opens an in-memory store holding schemaText and rels, and a reader of it.
func selfStoreWith(t *testing.T, schemaText string, rels []string) *store.Reader {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.WriteSchema(store.Entry{Index: 1}, time.Now(), schemaText); err != nil {
		t.Fatal(err)
	}
	b := &store.Batch{}
	for _, s := range rels {
		r, err := store.ParseRelationship(s)
		if err != nil {
			t.Fatal(err)
		}
		b.Updates = append(b.Updates, store.Update{Op: store.OpTouch, Relationship: r})
	}
	if _, err := st.Apply(store.Entry{Index: 2}, time.Now(), b); err != nil {
		t.Fatal(err)
	}
	r, err := st.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// selfRequest parses `type:id#permission@type:id[#relation]`.
func selfRequest(t *testing.T, s string) check.Request {
	t.Helper()
	res, subj, ok := strings.Cut(s, "@")
	obj, perm, ok2 := strings.Cut(res, "#")
	typ, id, ok3 := strings.Cut(obj, ":")
	styp, rest, ok4 := strings.Cut(subj, ":")
	if !ok || !ok2 || !ok3 || !ok4 {
		t.Fatalf("bad request %q", s)
	}
	sid, srel, _ := strings.Cut(rest, "#")
	return check.Request{ResourceType: typ, ResourceID: id, Permission: perm, SubjectType: styp, SubjectID: sid, SubjectRelation: srel}
}

// TestSelfCheck pins what `self` means to Check: the plain object itself, nothing else.
func TestSelfCheck(t *testing.T) {
	r := selfReader(t)
	tests := []struct {
		req  string
		want check.Membership
	}{
		{"user:bob#view_profile@user:bob", check.HasPermission},
		{"user:bob#view_profile@user:alice", check.HasPermission}, // the manager
		{"user:bob#view_profile@user:carol", check.NoPermission},
		{"user:bob#view_profile@user:bob#parent", check.NoPermission}, // a userset of bob is not bob
		{"user:bob#not_me@user:alice", check.HasPermission},
		{"user:bob#not_me@user:bob", check.NoPermission},
		{"user:dave#not_me@user:dave", check.NoPermission}, // managed by himself, but subtracted
		{"user:dave#me_if_managed@user:dave", check.HasPermission},
		{"user:bob#me_if_managed@user:bob", check.NoPermission},
		{"user:carol#lineage@user:carol", check.HasPermission},
		{"user:carol#lineage@user:bob", check.HasPermission},
		{"user:carol#lineage@user:alice", check.HasPermission},
		{"user:alice#lineage@user:carol", check.NoPermission},
		{"team:t1#members@team:t1", check.HasPermission},
		{"team:t1#members@user:erin", check.HasPermission},
		{"team:t1#members@user:t1", check.NoPermission}, // same id, another type
		{"team:t1#members@team:t2", check.NoPermission},
		{"document:d1#owner_profile@user:bob", check.HasPermission}, // self, evaluated on the owner
		{"document:d1#owner_profile@user:alice", check.HasPermission},
		{"document:d1#owner_profile@user:carol", check.NoPermission},
		{"document:d2#view@user:carol", check.HasPermission}, // through the userset carol#view_profile
		{"document:d2#view@user:bob", check.NoPermission},
	}
	for _, opts := range []check.Options{{}, {NoIndex: true}, {CacheBytes: -1}} {
		c := check.New(opts)
		for _, tt := range tests {
			res, err := c.Check(context.Background(), r, selfRequest(t, tt.req))
			if err != nil {
				t.Fatalf("%+v: Check(%s): %v", opts, tt.req, err)
			}
			if res.Membership != tt.want {
				t.Errorf("%+v: Check(%s) = %v, want %v", opts, tt.req, res.Membership, tt.want)
			}
		}
	}
	req := selfRequest(t, "user:bob#view_profile@user:bob")
	req.Explain = true
	res, err := check.New(check.Options{}).Check(context.Background(), r, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Explanation.String(); !strings.Contains(got, "✓ self user:bob\n") {
		t.Errorf("explanation has no `self` node that holds:\n%s", got)
	}
}

// TestSelfLookupsAgreeWithCheck checks both lookups against Check for every permission over
// every object of the data, and pins a few answers.
func TestSelfLookupsAgreeWithCheck(t *testing.T) {
	r := selfReader(t)
	c := check.New(check.Options{Concurrency: 1})
	ctx := context.Background()
	ids := map[string][]string{
		"user":     {"alice", "bob", "carol", "dave", "erin", "t1", "d1", "nobody"},
		"team":     {"t1", "t2"},
		"document": {"d1", "d2"},
	}
	perms := map[string][]string{
		"user":     {"view_profile", "not_me", "me_if_managed", "lineage"},
		"team":     {"members"},
		"document": {"owner_profile", "view"},
	}
	for resType, ps := range perms {
		for _, perm := range ps {
			for _, subjType := range []string{"user", "team"} {
				for _, sid := range ids[subjType] {
					found, err := c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: resType, Permission: perm, SubjectType: subjType, SubjectID: sid})
					if err != nil {
						t.Fatalf("LookupResources(%s#%s, %s:%s): %v", resType, perm, subjType, sid, err)
					}
					got := map[string]check.Membership{}
					for _, f := range found {
						got[f.ID] = f.Membership
					}
					for _, id := range ids[resType] {
						want := selfMembership(t, c, r, check.Request{ResourceType: resType, ResourceID: id, Permission: perm, SubjectType: subjType, SubjectID: sid})
						if got[id] != want {
							t.Errorf("LookupResources(%s#%s, %s:%s): %s is %v, Check says %v", resType, perm, subjType, sid, id, got[id], want)
						}
					}
				}
			}
			for _, id := range ids[resType] {
				for _, subjType := range []string{"user", "team"} {
					found, err := c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: resType, ResourceID: id, Permission: perm, SubjectType: subjType})
					if err != nil {
						t.Fatalf("LookupSubjects(%s:%s#%s, %s): %v", resType, id, perm, subjType, err)
					}
					got := map[string]check.Membership{}
					for _, f := range found {
						got[f.ID] = f.Membership
					}
					for _, sid := range ids[subjType] {
						want := selfMembership(t, c, r, check.Request{ResourceType: resType, ResourceID: id, Permission: perm, SubjectType: subjType, SubjectID: sid})
						if got[sid] != want {
							t.Errorf("LookupSubjects(%s:%s#%s, %s): %s is %v, Check says %v", resType, id, perm, subjType, sid, got[sid], want)
						}
					}
				}
			}
		}
	}

	pins := []struct {
		name string
		got  func() ([]string, error)
		want []string
	}{
		{"resources user#view_profile for alice", func() ([]string, error) {
			return resourceIDs(c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: "user", Permission: "view_profile", SubjectType: "user", SubjectID: "alice"}))
		}, []string{"alice", "bob"}},
		{"resources user#lineage for alice", func() ([]string, error) {
			return resourceIDs(c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: "user", Permission: "lineage", SubjectType: "user", SubjectID: "alice"}))
		}, []string{"alice", "bob", "carol"}},
		{"resources document#owner_profile for bob", func() ([]string, error) {
			return resourceIDs(c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: "document", Permission: "owner_profile", SubjectType: "user", SubjectID: "bob"}))
		}, []string{"d1"}},
		{"resources user#view_profile for a userset of bob", func() ([]string, error) {
			return resourceIDs(c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: "user", Permission: "view_profile", SubjectType: "user", SubjectID: "bob", SubjectRelation: "parent"}))
		}, nil},
		{"subjects of user:bob#view_profile, any type", func() ([]string, error) {
			return subjectIDs(c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: "user", ResourceID: "bob", Permission: "view_profile"}))
		}, []string{"user:alice", "user:bob"}},
		{"subjects of team:t1#members, any type", func() ([]string, error) {
			return subjectIDs(c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: "team", ResourceID: "t1", Permission: "members"}))
		}, []string{"team:t1", "user:erin"}},
		{"subjects of document:d2#view, users", func() ([]string, error) {
			return subjectIDs(c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: "document", ResourceID: "d2", Permission: "view", SubjectType: "user"}))
		}, []string{"user:carol"}},
	}
	for _, p := range pins {
		got, err := p.got()
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if !reflect.DeepEqual(got, p.want) {
			t.Errorf("%s = %q, want %q", p.name, got, p.want)
		}
	}
}

func selfMembership(t *testing.T, c *check.Checker, r *store.Reader, req check.Request) check.Membership {
	t.Helper()
	res, err := c.Check(context.Background(), r, req)
	if err != nil {
		t.Fatalf("Check(%+v): %v", req, err)
	}
	return res.Membership
}

func resourceIDs(found []check.FoundResource, err error) ([]string, error) {
	var out []string
	for _, f := range found {
		if f.Membership != check.HasPermission {
			return nil, fmt.Errorf("%s is %v, want has permission", f.ID, f.Membership)
		}
		out = append(out, f.ID)
	}
	return out, err
}

func subjectIDs(found []check.FoundSubject, err error) ([]string, error) {
	var out []string
	for _, f := range found {
		s := f.Type + ":" + f.ID
		if f.Relation != "" {
			s += "#" + f.Relation
		}
		out = append(out, s)
	}
	return out, err
}

// TestSelfExpand: `self` expands to a leaf holding the resource itself.
func TestSelfExpand(t *testing.T) {
	r := selfReader(t)
	tree, err := check.New(check.Options{}).Expand(context.Background(), r, "user", "bob", "view_profile")
	if err != nil {
		t.Fatal(err)
	}
	if tree.Operation != check.ExpandUnion || len(tree.Children) != 2 {
		t.Fatalf("Expand(user:bob#view_profile) = %+v, want a union of two", tree)
	}
	self, manager := tree.Children[0], tree.Children[1]
	want := []check.ExpandSubject{{Type: "user", ID: "bob"}}
	if self.Operation != check.ExpandLeaf || self.ResourceID != "bob" || !reflect.DeepEqual(self.Subjects, want) {
		t.Errorf("self branch = %+v, want a leaf of user:bob", self)
	}
	if !reflect.DeepEqual(manager.Subjects, []check.ExpandSubject{{Type: "user", ID: "alice"}}) {
		t.Errorf("manager branch = %+v, want a leaf of user:alice", manager)
	}
}

// TestSelfRandomLookupsAgreeWithCheck draws schemas that mix `self` with unions,
// intersections, exclusions, arrows (any and all, cycles included), wildcards and usersets of
// the same type, and checks that both lookups return exactly what Check answers.
func TestSelfRandomLookupsAgreeWithCheck(t *testing.T) {
	seeds := 80
	if testing.Short() {
		seeds = 20
	}
	ctx := context.Background()
	ids := []string{"n0", "n1", "n2", "n3", "n4"}
	for seed := range seeds {
		rng := rand.New(rand.NewSource(int64(seed)))
		var b strings.Builder
		b.WriteString("use self\ndefinition node {\n\trelation peer: node | node:* | node#perm0\n\trelation owner: node\n\trelation parent: node\n")
		leaves := []string{"self", "self", "peer", "owner", "parent->perm0", "parent->perm1", "parent.all(perm0)", "owner->perm2"}
		for i := range 3 {
			fmt.Fprintf(&b, "\tpermission perm%d = %s\n", i, selfRandomExpr(rng, leaves, 2))
			leaves = append(leaves, fmt.Sprintf("perm%d", i))
		}
		b.WriteString("}\n")
		schemaText := b.String()
		var rels []string
		seen := map[string]bool{}
		for range 5 + rng.Intn(15) {
			from, to := ids[rng.Intn(len(ids))], ids[rng.Intn(len(ids))]
			var s string
			switch rng.Intn(6) {
			case 0:
				s = "node:" + from + "#peer@node:*"
			case 1:
				s = "node:" + from + "#peer@node:" + to + "#perm0"
			case 2:
				s = "node:" + from + "#owner@node:" + to
			case 3, 4:
				s = "node:" + from + "#parent@node:" + to
			default:
				s = "node:" + from + "#peer@node:" + to
			}
			if !seen[s] {
				seen[s] = true
				rels = append(rels, s)
			}
		}
		r := selfStoreWith(t, schemaText, rels)
		c := check.New(check.Options{Concurrency: 1})
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: %s\nschema:\n%s\nrelationships: %q", seed, fmt.Sprintf(format, args...), schemaText, rels)
		}
		for _, perm := range []string{"perm0", "perm1", "perm2"} {
			for _, x := range append(ids, "never") {
				found, err := c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: "node", Permission: perm, SubjectType: "node", SubjectID: x})
				// A cycle through an intersection or exclusion refuses the checks it
				// decides (ErrMaxDepth); a lookup that needs one of them is refused too.
				if err != nil {
					if !errors.Is(err, check.ErrMaxDepth) || !anySelfRefused(c, r, ids, func(y string) check.Request {
						return check.Request{ResourceType: "node", ResourceID: y, Permission: perm, SubjectType: "node", SubjectID: x}
					}) {
						fail("LookupResources(node#%s, node:%s): %v", perm, x, err)
					}
					continue
				}
				got := map[string]check.Membership{}
				for _, f := range found {
					got[f.ID] = f.Membership
				}
				for _, y := range ids {
					want, refused := selfMembershipOrRefused(t, c, r, check.Request{ResourceType: "node", ResourceID: y, Permission: perm, SubjectType: "node", SubjectID: x})
					if refused {
						if _, ok := got[y]; ok {
							fail("LookupResources(node#%s, node:%s) found node:%s, whose Check is refused", perm, x, y)
						}
						continue
					}
					if got[y] != want {
						fail("LookupResources(node#%s, node:%s): node:%s is %v, Check says %v", perm, x, y, got[y], want)
					}
				}
			}
			for _, y := range ids {
				found, err := c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: "node", ResourceID: y, Permission: perm, SubjectType: "node"})
				if err != nil {
					if !errors.Is(err, check.ErrMaxDepth) || !anySelfRefused(c, r, append(ids, "never"), func(x string) check.Request {
						return check.Request{ResourceType: "node", ResourceID: y, Permission: perm, SubjectType: "node", SubjectID: x}
					}) {
						fail("LookupSubjects(node:%s#%s): %v", y, perm, err)
					}
					continue
				}
				for _, x := range append(ids, "never") {
					want, refused := selfMembershipOrRefused(t, c, r, check.Request{ResourceType: "node", ResourceID: y, Permission: perm, SubjectType: "node", SubjectID: x})
					if refused {
						continue // a subject whose Check is refused: the lookup may name it or not
					}
					if got := selfMembershipIn(found, x); got != want {
						fail("LookupSubjects(node:%s#%s): node:%s is %v, Check says %v", y, perm, x, got, want)
					}
				}
			}
		}
	}
}

// selfMembershipOrRefused is Check's answer, or refused when Check fails with ErrMaxDepth
// (a cycle through an intersection or exclusion decides it); any other error fails the test.
func selfMembershipOrRefused(t *testing.T, c *check.Checker, r *store.Reader, req check.Request) (check.Membership, bool) {
	t.Helper()
	res, err := c.Check(context.Background(), r, req)
	if errors.Is(err, check.ErrMaxDepth) {
		return 0, true
	}
	if err != nil {
		t.Fatalf("Check(%+v): %v", req, err)
	}
	return res.Membership, false
}

// anySelfRefused reports whether Check refuses the request made for any of ids.
func anySelfRefused(c *check.Checker, r *store.Reader, ids []string, req func(string) check.Request) bool {
	for _, id := range ids {
		if _, err := c.Check(context.Background(), r, req(id)); errors.Is(err, check.ErrMaxDepth) {
			return true
		}
	}
	return false
}

func selfRandomExpr(rng *rand.Rand, leaves []string, depth int) string {
	if depth == 0 || rng.Intn(3) == 0 {
		return leaves[rng.Intn(len(leaves))]
	}
	op := []string{" + ", " & ", " - "}[rng.Intn(3)]
	return "(" + selfRandomExpr(rng, leaves, depth-1) + op + selfRandomExpr(rng, leaves, depth-1) + ")"
}

// selfMembershipIn reads a LookupSubjects answer as a client does: an id found on its own,
// else its type's wildcard unless that excludes it.
func selfMembershipIn(found []check.FoundSubject, id string) check.Membership {
	for _, s := range found {
		if s.ID == id && s.Relation == "" {
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
