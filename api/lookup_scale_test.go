package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// longTests reports whether the full-size tests run: KENGEN_LONG_TESTS=1, which .ci/run sets
// for one bounded run. Without it the same tests run at a smaller size.
func longTests() bool { return os.Getenv("KENGEN_LONG_TESTS") == "1" }

// TestLookupResourcesPagesAtScale reads one listing of at least 100,000 deals (5,000 without
// KENGEN_LONG_TESTS=1) as a client does: unpaged, then in pages of 1, 7 and 1,000, each page
// one RPC resuming from the last cursor received. Every paging must concatenate to the unpaged
// answer, which must be exactly the deals the data grants, in id order.
//
// The ids have no padding (d1, d10, d100, d2 ...) so that id order differs from the order of
// writing, and one deal in 100 bans the user, so every candidate goes through the exclusion
// check instead of the certain-member shortcut; one deal in 3 grants the user directly as
// well as through the team, so a candidate is reached twice.
func TestLookupResourcesPagesAtScale(t *testing.T) {
	deals := 5_000
	if longTests() {
		deals = 101_100
	}
	env := startServer(t, Options{})
	env.writeSchema(lookupTestSchema)

	var rels []*v1.Relationship
	var want []string
	for i := range deals {
		id := fmt.Sprintf("d%d", i)
		rels = append(rels, rel(t, "deal:"+id+"#viewer@team:sales#member"))
		if i%3 == 0 {
			rels = append(rels, rel(t, "deal:"+id+"#viewer@user:amy"))
		}
		if i%100 == 50 {
			rels = append(rels, rel(t, "deal:"+id+"#banned@user:amy"))
			continue
		}
		want = append(want, id)
	}
	rels = append(rels, rel(t, "team:sales#member@user:amy"), rel(t, "deal:other#viewer@user:bob"))
	importProtos(t, env, rels)
	sort.Strings(want)
	if longTests() && len(want) < 100_000 {
		t.Fatalf("the dataset grants %d deals, want at least 100,000", len(want))
	}

	all := pageThrough(t, env, "amy", 0)
	if len(all) != len(want) || firstDiff(all, want) != len(want) {
		t.Fatalf("unpaged: %d deals, want %d; first difference at index %d", len(all), len(want), firstDiff(all, want))
	}
	for _, size := range []uint32{1000, 7, 1} {
		start := time.Now()
		got := pageThrough(t, env, "amy", size)
		t.Logf("pages of %d: %d results in %d calls, %v", size, len(got), (len(got)+int(size))/int(size), time.Since(start).Round(time.Millisecond))
		if len(got) != len(all) || firstDiff(got, all) != len(all) {
			i := firstDiff(got, all)
			t.Errorf("pages of %d: %d deals, want %d; first difference at index %d (%s)", size, len(got), len(all), i, describeDiff(got, all, i))
		}
	}
}

// importProtos loads relationships through ImportBulkRelationships, 1,000 a message.
func importProtos(t testing.TB, env *testEnv, rels []*v1.Relationship) {
	t.Helper()
	// One stream is one atomic write of at most DefaultMaxImportRelationships: a larger
	// dataset is several streams, as `kengen import` sends it.
	for len(rels) > 0 {
		n := min(len(rels), DefaultMaxImportRelationships)
		importOneStream(t, env, rels[:n])
		rels = rels[n:]
	}
}

func importOneStream(t testing.TB, env *testEnv, rels []*v1.Relationship) {
	t.Helper()
	stream, err := env.client.ImportBulkRelationships(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(rels); i += 1000 {
		if err := stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: rels[i:min(i+1000, len(rels))]}); err != nil {
			break // CloseAndRecv says why
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("ImportBulkRelationships: %v", err)
	}
	if resp.GetNumLoaded() != uint64(len(rels)) {
		t.Fatalf("ImportBulkRelationships loaded %d relationships, want %d", resp.GetNumLoaded(), len(rels))
	}
}

// pageThrough fetches a whole deal#view listing for user:subject in pages of pageSize (0 for
// one unpaged call), one RPC per page with its own deadline, and returns the ids in order.
// A page must not exceed pageSize; the listing ends with a short page.
func pageThrough(t testing.TB, env *testEnv, subject string, pageSize uint32) []string {
	t.Helper()
	var out []string
	var cursor *v1.Cursor
	for calls := 0; ; calls++ {
		n, err := func() (int, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			stream, err := env.client.LookupResources(ctx, &v1.LookupResourcesRequest{
				Consistency: full(), ResourceObjectType: "deal", Permission: "view",
				Subject: subjectRef("user", subject, ""), OptionalLimit: pageSize, OptionalCursor: cursor,
			})
			if err != nil {
				return 0, err
			}
			n := 0
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return n, nil
				}
				if err != nil {
					return n, err
				}
				out = append(out, resp.GetResourceObjectId())
				cursor = resp.GetAfterResultCursor()
				n++
			}
		}()
		if err != nil {
			t.Fatalf("LookupResources page %d of %d: %v", calls, pageSize, err)
		}
		if pageSize > 0 && n > int(pageSize) {
			t.Fatalf("page %d holds %d results, more than the limit %d", calls, n, pageSize)
		}
		if pageSize == 0 || n < int(pageSize) {
			return out
		}
	}
}

func describeDiff(got, want []string, i int) string {
	at := func(s []string) string {
		if i < len(s) {
			return s[i]
		}
		return "<end>"
	}
	return fmt.Sprintf("got %s, want %s", at(got), at(want))
}
