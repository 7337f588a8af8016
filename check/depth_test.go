package check_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// Check, LookupResources, LookupSubjects and Expand apply one depth rule: hops count the
// objects a path traverses through arrows and usersets, bounded by MaxDepth, and a question
// past it is refused with ErrMaxDepth. A 300-role chain under MaxDepth 100, its top role
// holding user:boss: without the index every API refuses the bottom and answers near the top;
// with the index (the bottom's closure complete) Check answers the bottom from it, and so do
// the lookups, which decide what their walk reached past the depth with Check. Expand always
// walks, so it refuses the bottom either way.
func TestDepthRuleAgrees(t *testing.T) {
	const depth, maxDepth = 300, 100
	for _, indexed := range []bool{false, true} {
		t.Run(fmt.Sprint("indexed=", indexed), func(t *testing.T) {
			st := openChainStore(t, store.Options{NoClosureIndex: !indexed})
			// One edge per batch, top down, so that every closure is within the budget.
			updates := append(chainEdges(depth, "down"), store.Update{Op: store.OpTouch, Relationship: store.Relationship{ResourceType: "role", ResourceID: fmt.Sprint("c", depth-1), Relation: "member", SubjectType: "user", SubjectID: "boss"}})
			for _, u := range updates {
				if _, err := st.Apply(store.Entry{Index: st.Revision() + 1}, time.Now(), &store.Batch{Updates: []store.Update{u}}); err != nil {
					t.Fatal(err)
				}
			}
			r, err := st.Reader(0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if complete, _ := r.ClosureComplete(store.Edge{Type: "role", Relation: "parent"}, "c0"); complete != indexed {
				t.Fatalf("c0's closure complete: %v, want %v", complete, indexed)
			}
			c := check.New(check.Options{MaxDepth: maxDepth})
			ctx := context.Background()
			refused := func(api string, err error) {
				t.Helper()
				if indexed && api != "Expand" {
					if err != nil {
						t.Errorf("%s of the bottom with its closure complete: %v, want an answer", api, err)
					}
					return
				}
				if !errors.Is(err, check.ErrMaxDepth) {
					t.Errorf("%s of the bottom: %v, want ErrMaxDepth", api, err)
				}
			}
			res, err := c.Check(ctx, r, check.Request{ResourceType: "role", ResourceID: "c0", Permission: "see", SubjectType: "user", SubjectID: "boss"})
			refused("Check", err)
			if err == nil && res.Membership != check.HasPermission {
				t.Errorf("Check of the bottom: %v", res.Membership)
			}
			found, err := c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: "role", Permission: "see", SubjectType: "user", SubjectID: "boss"})
			refused("LookupResources", err)
			if err == nil && len(found) != depth {
				t.Errorf("LookupResources: %d roles, want %d", len(found), depth)
			}
			subjects, err := c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: "role", ResourceID: "c0", Permission: "see", SubjectType: "user"})
			refused("LookupSubjects", err)
			if err == nil && (len(subjects) != 1 || subjects[0].ID != "boss") {
				t.Errorf("LookupSubjects: %v, want boss", subjects)
			}
			_, err = c.Expand(ctx, r, "role", "c0", "see")
			refused("Expand", err)

			// Within the depth every API answers: c(depth-1-maxDepth) is maxDepth hops below the top.
			near := fmt.Sprint("c", depth-1-maxDepth)
			if res, err := c.Check(ctx, r, check.Request{ResourceType: "role", ResourceID: near, Permission: "see", SubjectType: "user", SubjectID: "boss"}); err != nil || res.Membership != check.HasPermission {
				t.Errorf("Check of %s: %v, %v", near, res.Membership, err)
			}
			if subjects, err := c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: "role", ResourceID: near, Permission: "see", SubjectType: "user"}); err != nil || len(subjects) != 1 {
				t.Errorf("LookupSubjects of %s: %v, %v", near, subjects, err)
			}
			if _, err := c.Expand(ctx, r, "role", near, "see"); err != nil {
				t.Errorf("Expand of %s: %v", near, err)
			}
			// One level further, and the walk refuses everywhere.
			far := fmt.Sprint("c", depth-2-maxDepth)
			if !indexed {
				if _, err := c.Check(ctx, r, check.Request{ResourceType: "role", ResourceID: far, Permission: "see", SubjectType: "user", SubjectID: "boss"}); !errors.Is(err, check.ErrMaxDepth) {
					t.Errorf("Check of %s: %v, want ErrMaxDepth", far, err)
				}
			}
			if _, err := c.Expand(ctx, r, "role", far, "see"); !errors.Is(err, check.ErrMaxDepth) {
				t.Errorf("Expand of %s: %v, want ErrMaxDepth", far, err)
			}
		})
	}
}
