package check_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

func TestCacheSharesAcrossRequestsAndRevisions(t *testing.T) {
	f := newFixture(t, docSchema,
		"document:1#folder@folder:f2",
		"folder:f2#parent@folder:f1",
		"folder:f1#viewer@user:ann",
	)
	var last check.Observation
	c := check.New(check.Options{Observe: func(o check.Observation) { last = o }})
	f.expect(c, "document:1#view@user:ann", check.HasPermission)
	first := last
	if first.CacheHits != 0 {
		t.Fatalf("first check: %+v, want no cache hits", first)
	}
	// Another request at the same revision, asking about a sub-problem of the first.
	f.expect(c, "folder:f2#view@user:ann", check.HasPermission)
	if last.CacheHits != 1 || last.Subproblems != 0 {
		t.Errorf("second request: %+v, want one cache hit and nothing evaluated", last)
	}

	// A new revision: the cached answers of the old one must not leak into it.
	if _, err := f.st.Apply(store.Entry{Index: f.st.Revision() + 1}, time.Now(), &store.Batch{Updates: []store.Update{
		{Op: store.OpDelete, Relationship: mustRel(t, "folder:f1#viewer@user:ann")},
	}}); err != nil {
		t.Fatal(err)
	}
	f.expect(c, "folder:f2#view@user:ann", check.NoPermission)
	f.expect(c, "document:1#view@user:ann", check.NoPermission)
}

func TestCacheKeysOnStoreAndContext(t *testing.T) {
	const caveated = `
caveat weekday(day string) { day != "sun" }
definition user {}
definition document {
	relation viewer: user with weekday | user
	permission view = viewer
}`
	a := newFixture(t, caveated, "document:1#viewer@user:tom[weekday]")
	b := newFixture(t, caveated, "document:1#viewer@user:tom")
	if a.st.Revision() != b.st.Revision() {
		t.Fatalf("the two stores should be at the same revision: %d, %d", a.st.Revision(), b.st.Revision())
	}
	c := check.New(check.Options{})
	a.expect(c, "document:1#view@user:tom", check.ConditionalPermission)
	b.expect(c, "document:1#view@user:tom", check.HasPermission) // same revision, other store
	for _, tc := range []struct {
		day  string
		want check.Membership
	}{{"mon", check.HasPermission}, {"sun", check.NoPermission}, {"mon", check.HasPermission}} {
		req := request(t, "document:1#view@user:tom")
		req.Context = map[string]any{"day": tc.day}
		res, err := c.Check(context.Background(), a.reader(), req)
		if err != nil || res.Membership != tc.want {
			t.Errorf("day %s: %v %v, want %v", tc.day, res.Membership, err, tc.want)
		}
	}
}

func TestCacheStaysWithinBudget(t *testing.T) {
	f := newFixture(t, docSchema)
	var updates []store.Update
	for i := range 2000 {
		updates = append(updates, store.Update{Op: store.OpTouch, Relationship: store.Relationship{
			ResourceType: "document", ResourceID: "d" + strconv.Itoa(i), Relation: "owner", SubjectType: "user", SubjectID: "u"}})
	}
	f.write(updates)
	// 8 KiB: far fewer entries than the 2,000 permissions asked below.
	const budget = 8 << 10
	c := check.New(check.Options{CacheBytes: budget})
	var reqs []check.Request
	for i := range 2000 {
		reqs = append(reqs, request(t, "document:d"+strconv.Itoa(i)+"#view@user:u"))
	}
	for _, res := range c.CheckBulk(context.Background(), f.reader(), reqs) {
		if res.Err != nil || res.Result.Membership != check.HasPermission {
			t.Fatalf("%+v", res)
		}
	}
	if n, most := check.CacheEntries(c), budget/check.CacheEntryBytes; n == 0 || n > most {
		t.Errorf("%d cache entries after 2,000 permissions with an 8 KiB budget, want 1 to %d", n, most)
	}
}

func mustRel(t *testing.T, s string) store.Relationship {
	t.Helper()
	r, err := store.ParseRelationship(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
