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

// With store.Options.NoClosureIndex the store keeps no closures and says so through
// Reader.Indexed, so the checker walks: its answers must equal those over a store with the
// index, batch after batch of random role and group edges (re-parenting and deletions too).
func TestLeopardIndexOff(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	open := func(off bool) *store.Store {
		st, err := store.Open("", store.Options{InMemory: true, NoSync: true, ClosureLimit: 6, NoClosureIndex: off})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.WriteSchema(store.Entry{Index: 1}, time.Now(), leopardSchema); err != nil {
			t.Fatal(err)
		}
		return st
	}
	on, off := open(false), open(true)
	const roles, groups, users = 9, 6, 4
	random := func() store.Relationship {
		r := store.Relationship{ResourceType: "role", ResourceID: fmt.Sprint(rng.IntN(roles)), Relation: "parent", SubjectType: "role", SubjectID: fmt.Sprint(rng.IntN(roles))}
		switch rng.IntN(4) {
		case 1:
			r.Relation, r.SubjectType, r.SubjectID = "member", "user", fmt.Sprint(rng.IntN(users))
		case 2:
			r = store.Relationship{ResourceType: "group", ResourceID: fmt.Sprint(rng.IntN(groups)), Relation: "member", SubjectType: "group", SubjectID: fmt.Sprint(rng.IntN(groups)), SubjectRelation: "member"}
		case 3:
			r = store.Relationship{ResourceType: "group", ResourceID: fmt.Sprint(rng.IntN(groups)), Relation: "member", SubjectType: "user", SubjectID: fmt.Sprint(rng.IntN(users))}
		}
		return r
	}
	c := check.New(check.Options{})
	for batch := range 15 {
		updates := randomUpdates(rng, random, batch > 4, nil)
		for _, st := range []*store.Store{on, off} {
			if _, err := st.Apply(store.Entry{Index: st.Revision() + 1}, time.Now(), &store.Batch{Updates: updates}); err != nil {
				t.Fatal(err)
			}
		}
		rOn, err := on.Reader(0)
		if err != nil {
			t.Fatal(err)
		}
		rOff, err := off.Reader(0)
		if err != nil {
			t.Fatal(err)
		}
		if !rOn.Indexed("role", "parent", "") || rOff.Indexed("role", "parent", "") {
			t.Fatalf("Indexed(role#parent): %v with the index, %v without, want true and false",
				rOn.Indexed("role", "parent", ""), rOff.Indexed("role", "parent", ""))
		}
		if _, ok, _ := rOff.Reaches(store.Edge{Type: "role", Relation: "parent"}, "0", "1"); ok {
			t.Fatal("Reaches answered from the index with the index off")
		}
		for u := range users {
			var reqs []check.Request
			for x := range roles {
				reqs = append(reqs, check.Request{ResourceType: "role", ResourceID: fmt.Sprint(x), Permission: "see", SubjectType: "user", SubjectID: fmt.Sprint(u)})
			}
			for g := range groups {
				reqs = append(reqs, check.Request{ResourceType: "group", ResourceID: fmt.Sprint(g), Permission: "member", SubjectType: "user", SubjectID: fmt.Sprint(u)})
			}
			for _, req := range reqs {
				a, errA := c.Check(context.Background(), rOn, req)
				b, errB := c.Check(context.Background(), rOff, req)
				if errA != nil || errB != nil {
					t.Fatalf("batch %d %+v: %v / %v", batch, req, errA, errB)
				}
				if a.Membership != b.Membership {
					t.Fatalf("batch %d %s:%s#%s@user:%s: %v with the index, %v without", batch, req.ResourceType, req.ResourceID, req.Permission, req.SubjectID, a.Membership, b.Membership)
				}
			}
		}
		rOn.Close()
		rOff.Close()
	}
}
