package check_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kengen/kengen/check"
)

// TestLookupPageChecksFew pins what a small page costs: a page of n results confirms about n
// candidates, not a fixed batch, so a client paging one result at a time over a long listing
// pays one check a page. A run of refused candidates before the next member is crossed in
// chunks that double, so the page still finds its result and checks fewer than twice the
// candidates it crossed.
func TestLookupPageChecksFew(t *testing.T) {
	var rels []string
	for i := range 500 {
		rels = append(rels, fmt.Sprintf("document:d%03d#viewer@user:amy", i))
		// d100 .. d199 are refused: every candidate goes through the exclusion check.
		if i >= 100 && i < 200 {
			rels = append(rels, fmt.Sprintf("document:d%03d#banned@user:amy", i))
		}
	}
	f := newFixture(t, lookupSchema, rels...)
	r := f.reader()
	var checks atomic.Int64
	c := check.New(check.Options{Concurrency: 2, Observe: func(check.Observation) { checks.Add(1) }})

	page := func(after string, limit int) []string {
		t.Helper()
		checks.Store(0)
		found, err := c.LookupResources(context.Background(), r, check.ResourcesRequest{ResourceType: "document", Permission: "view",
			SubjectType: "user", SubjectID: "amy", After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, fr := range found {
			ids = append(ids, fr.ID)
		}
		return ids
	}

	if got := page("d010", 1); len(got) != 1 || got[0] != "d011" || checks.Load() != 1 {
		t.Errorf("page of 1 after d010 = %v with %d checks, want [d011] with 1 check", got, checks.Load())
	}
	if got := page("d020", 7); len(got) != 7 || got[6] != "d027" || checks.Load() != 7 {
		t.Errorf("page of 7 after d020 = %v with %d checks, want d021..d027 with 7 checks", got, checks.Load())
	}
	// After d099 come 100 refusals, then d200.
	if got := page("d099", 1); len(got) != 1 || got[0] != "d200" || checks.Load() < 101 || checks.Load() > 2*101 {
		t.Errorf("page of 1 after d099 = %v with %d checks, want [d200] with 101 to 202 checks", got, checks.Load())
	}
	if got := page("d495", 10); len(got) != 4 || got[3] != "d499" {
		t.Errorf("short last page after d495 = %v, want d496..d499", got)
	}
}
