package api

import (
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
)

// A cursor continues only the read it came from: ReadRelationships and
// ExportBulkRelationships refuse a cursor issued for another filter, naming the field.
func TestCursorBelongsToItsFilter(t *testing.T) {
	env := crmEnv(t)
	env.touch("deal:1#owner@user:sato", "deal:2#owner@user:sato", "deal:3#owner@user:tanaka")

	deals := &v1.RelationshipFilter{ResourceType: "deal"}
	_, cursor, err := env.page(&v1.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: deals, OptionalLimit: 1})
	if err != nil || cursor == nil {
		t.Fatalf("first page: cursor %v, %v", cursor, err)
	}
	other := &v1.RelationshipFilter{ResourceType: "deal", OptionalRelation: "owner"}
	_, _, err = env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: other, OptionalLimit: 1, OptionalCursor: cursor})
	if codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "different relationship_filter") {
		t.Errorf("read with another filter's cursor: %v, want INVALID_ARGUMENT naming relationship_filter", err)
	}
	// The same filter continues where the first page stopped.
	rest, _, err := env.page(&v1.ReadRelationshipsRequest{RelationshipFilter: deals, OptionalCursor: cursor})
	if err != nil || len(rest) != 2 {
		t.Errorf("the same filter resumed: %v, %v; want the other two relationships", rest, err)
	}

	_, cursors := env.export(1, nil)
	stream, err := env.client.ExportBulkRelationships(ctxT(t), &v1.ExportBulkRelationshipsRequest{
		OptionalRelationshipFilter: other, OptionalCursor: cursors[0]})
	if err == nil {
		for err == nil {
			_, err = stream.Recv()
		}
	}
	if errors.Is(err, io.EOF) || codeOf(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "different optional_relationship_filter") {
		t.Errorf("export with another filter's cursor: %v, want INVALID_ARGUMENT naming optional_relationship_filter", err)
	}
}
