package api

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
)

// page reads one page and returns the relationships and the cursor after the last one.
func (e *testEnv) page(req *v1.ReadRelationshipsRequest) ([]string, *v1.Cursor, error) {
	stream, err := e.client.ReadRelationships(ctxT(e.t), req)
	if err != nil {
		return nil, nil, err
	}
	var (
		out    []string
		cursor *v1.Cursor
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, cursor, nil
		}
		if err != nil {
			return out, cursor, err
		}
		out = append(out, relString(resp.GetRelationship()))
		cursor = resp.GetAfterResultCursor()
	}
}

func TestReadRelationshipsPages(t *testing.T) {
	env := crmEnv(t)
	var all []string
	for i := range 25 {
		all = append(all, fmt.Sprintf("deal:%02d#follower@user:u%d", i, i))
	}
	env.touch(append(all, "deal:00#owner@user:sato", "group:eng#member@user:sato")...)
	filter := &v1.RelationshipFilter{ResourceType: "deal", OptionalRelation: "follower"}

	// Pages of 10 at the revision of the first page: a write in between does not show.
	var got []string
	req := &v1.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: filter, OptionalLimit: 10}
	for pages := 0; ; pages++ {
		rels, cursor, err := env.page(req)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(rels) > 10 || pages > 3 {
			t.Fatalf("page %d: %d relationships with limit 10", pages, len(rels))
		}
		got = append(got, rels...)
		if len(rels) < 10 {
			break
		}
		if pages == 0 {
			env.touch("deal:99#follower@user:late")
		}
		req = &v1.ReadRelationshipsRequest{RelationshipFilter: filter, OptionalLimit: 10, OptionalCursor: cursor}
	}
	if !slices.Equal(got, all) {
		t.Fatalf("paged read:\n got %q\nwant %q", got, all)
	}

	// Subject filters.
	rels, _, err := env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{
		ResourceType: "deal", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "sato"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantRels(t, rels, "deal:00#owner@user:sato")

	// A cursor replayed with another filter, a garbage cursor, a limit above the maximum.
	_, cursor, _ := env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: filter, OptionalLimit: 1})
	_, _, err = env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "group"}, OptionalCursor: cursor})
	wantCode(t, err, codes.InvalidArgument, "optional_cursor", "filter")
	_, _, err = env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: filter, OptionalCursor: &v1.Cursor{Token: "garbage"}})
	wantCode(t, err, codes.InvalidArgument, "optional_cursor")
	_, _, err = env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: filter, OptionalLimit: DefaultMaxReadLimit + 1})
	wantCode(t, err, codes.InvalidArgument, "optional_limit")
	_, _, err = env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{}})
	wantCode(t, err, codes.InvalidArgument, "relationship_filter")
}
