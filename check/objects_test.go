package check_test

import (
	"fmt"
	"testing"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// A small object is read whole and answered from memory; a large one relation by relation.
// Both must give the same answers for every kind of direct relationship: a subject, a
// wildcard, a userset, an arrow, and a deleted relationship.
func TestSmallAndLargeObjectsAnswerAlike(t *testing.T) {
	for _, padding := range []int{0, check.ObjectReadLimit + 5} {
		t.Run(fmt.Sprintf("padding=%d", padding), func(t *testing.T) {
			f := newFixture(t, docSchema,
				"document:1#owner@user:ann",
				"document:1#viewer@group:eng#member",
				"group:eng#member@user:bob",
				"document:1#folder@folder:f",
				"folder:f#viewer@user:cid",
				"document:2#viewer@user:*",
				"document:1#viewer@user:del",
				"document:1#banned@user:eve",
				"document:1#viewer@user:eve",
			)
			var pad []store.Update
			for i := range padding {
				for _, doc := range []string{"1", "2"} {
					pad = append(pad, store.Update{Op: store.OpTouch, Relationship: mustRel(t, fmt.Sprintf("document:%s#viewer@user:pad%d", doc, i))})
				}
			}
			pad = append(pad, store.Update{Op: store.OpDelete, Relationship: mustRel(t, "document:1#viewer@user:del")})
			f.write(pad)
			c := check.New(check.Options{CacheBytes: -1})
			for _, tc := range []struct {
				q    string
				want check.Membership
			}{
				{"document:1#view@user:ann", check.HasPermission}, // owner, through edit
				{"document:1#edit@user:bob", check.NoPermission},
				{"document:1#view@user:bob", check.HasPermission}, // userset
				{"document:1#view@user:cid", check.HasPermission}, // arrow
				{"document:1#view@user:del", check.NoPermission},  // deleted
				{"document:1#view@user:eve", check.NoPermission},  // banned
				{"document:2#view@user:zed", check.HasPermission}, // wildcard
				{"document:1#view@user:zed", check.NoPermission},
				{"document:1#viewer@group:eng#member", check.HasPermission},
			} {
				f.expect(c, tc.q, tc.want)
			}
		})
	}
}
