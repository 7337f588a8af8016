package check_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// The Leopard index must give exactly the walk's answers: random role graphs (parents, with
// cycles) and nested groups, changed batch after batch (new edges, deleted edges,
// re-parenting), checked for every (object, user) pair at every revision with the index and
// without it.
const leopardSchema = `
caveat positive(x int) { x > 0 }
definition user {}
definition group {
	relation member: user | user:* | group#member
}
definition role {
	relation parent: role
	relation member: user | user with positive
	relation guest: user | group#member
	permission see = member + parent->see
	permission visit = guest + member + parent->visit
	permission tour = member + guest + parent->tour
}
`

// Seeds 6 and up run under closure budgets small enough that maintenance runs out and marks
// objects (store/leopard_write.go), so the answers over a partly maintained index are checked
// too.
func TestLeopardAgreesWithWalk(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { leopardRound(t, seed) })
	}
}

func leopardRound(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	budget := 0
	if seed >= 6 {
		budget = []int{1, 60, 150, 300}[seed%4]
	}
	st, err := store.Open("", store.Options{InMemory: true, NoSync: true, ClosureLimit: 6, ClosureBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.WriteSchema(store.Entry{Index: 1}, time.Now(), leopardSchema); err != nil {
		t.Fatal(err)
	}
	const roles, groups, users = 9, 6, 4
	rel := func(rt string, rid int, r string, st string, sid int, srel string) store.Relationship {
		id := fmt.Sprint(sid)
		if sid < 0 {
			id = store.Wildcard
		}
		return store.Relationship{ResourceType: rt, ResourceID: fmt.Sprint(rid), Relation: r, SubjectType: st, SubjectID: id, SubjectRelation: srel}
	}
	random := func() store.Relationship {
		switch rng.IntN(6) {
		case 0, 1:
			return rel("role", rng.IntN(roles), "parent", "role", rng.IntN(roles), "")
		case 2:
			return rel("role", rng.IntN(roles), "member", "user", rng.IntN(users), "")
		case 3:
			return rel("group", rng.IntN(groups), "member", "group", rng.IntN(groups), "member")
		case 4:
			if rng.IntN(5) == 0 {
				return rel("group", rng.IntN(groups), "member", "user", -1, "")
			}
			return rel("group", rng.IntN(groups), "member", "user", rng.IntN(users), "")
		default:
			return rel("role", rng.IntN(roles), "guest", "group", rng.IntN(groups), "member")
		}
	}
	indexed := check.New(check.Options{})
	walked := check.New(check.Options{NoIndex: true})
	var revs []store.Revision
	for batch := range 20 {
		updates := randomUpdates(rng, random, batch > 5, func(r *store.Relationship) {
			if r.Relation == "member" && r.ResourceType == "role" && rng.IntN(4) == 0 {
				r.Caveat, r.CaveatContext = "positive", map[string]any{"x": float64(rng.IntN(3) - 1)}
			}
		})
		res, err := st.Apply(store.Entry{Index: st.Revision() + 1}, time.Now(), &store.Batch{Updates: updates})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, res.Revision)
		// Every revision so far, so the closure's versions are checked too.
		for _, rev := range []store.Revision{res.Revision, revs[rng.IntN(len(revs))]} {
			compareAt(t, st, rev, indexed, walked, roles, groups, users)
		}
	}
}

func compareAt(t *testing.T, st *store.Store, rev store.Revision, indexed, walked *check.Checker, roles, groups, users int) {
	t.Helper()
	r, err := st.Reader(rev)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var reqs []check.Request
	for u := range users {
		for x := range roles {
			for _, p := range []string{"see", "visit", "tour"} {
				reqs = append(reqs, check.Request{ResourceType: "role", ResourceID: fmt.Sprint(x), Permission: p, SubjectType: "user", SubjectID: fmt.Sprint(u)})
			}
		}
		for g := range groups {
			reqs = append(reqs, check.Request{ResourceType: "group", ResourceID: fmt.Sprint(g), Permission: "member", SubjectType: "user", SubjectID: fmt.Sprint(u)})
		}
	}
	for g := range groups {
		for h := range groups {
			reqs = append(reqs, check.Request{ResourceType: "group", ResourceID: fmt.Sprint(g), Permission: "member", SubjectType: "group", SubjectID: fmt.Sprint(h), SubjectRelation: "member"})
		}
	}
	for _, req := range reqs {
		a, errA := indexed.Check(context.Background(), r, req)
		b, errB := walked.Check(context.Background(), r, req)
		if errA != nil || errB != nil {
			t.Fatalf("rev %d %+v: %v / %v", rev, req, errA, errB)
		}
		if a.Membership != b.Membership || fmt.Sprint(a.MissingParams) != fmt.Sprint(b.MissingParams) {
			t.Fatalf("rev %d %s:%s#%s@%s:%s#%s: index says %v %v, walk says %v %v", rev, req.ResourceType, req.ResourceID, req.Permission,
				req.SubjectType, req.SubjectID, req.SubjectRelation, a.Membership, a.MissingParams, b.Membership, b.MissingParams)
		}
	}
}

// randomUpdates draws one to six distinct updates from random; once deletes is set, about a
// third of them are deletes. adjust, when set, may change each relationship written.
func randomUpdates(rng *rand.Rand, random func() store.Relationship, deletes bool, adjust func(*store.Relationship)) []store.Update {
	seen := map[string]bool{}
	var updates []store.Update
	for range 1 + rng.IntN(6) {
		r := random()
		if seen[r.String()] {
			continue
		}
		seen[r.String()] = true
		op := store.OpTouch
		if deletes && rng.IntN(3) == 0 {
			op = store.OpDelete
		}
		if adjust != nil {
			adjust(&r)
		}
		updates = append(updates, store.Update{Op: op, Relationship: r})
	}
	return updates
}
