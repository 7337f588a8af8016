package api

import (
	"context"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
)

func recvWatch(t *testing.T, stream v1.WatchService_WatchClient) *v1.WatchResponse {
	t.Helper()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return resp
}

func updateStrings(resp *v1.WatchResponse) []string {
	var out []string
	for _, u := range resp.GetUpdates() {
		out = append(out, u.GetOperation().String()+" "+relString(u.GetRelationship()))
	}
	return out
}

// TestWatch streams changes from a token, filtered by type, resumes from a token, and refuses a
// token below the retention window.
func TestWatch(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(lookupTestSchema)
	start := env.touch("deal:0#viewer@user:amy")

	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	// From the token (without one the stream would start wherever the server is when the
	// call arrives, which a test cannot order against its writes).
	stream, err := env.client.Watch(ctx, &v1.WatchRequest{OptionalObjectTypes: []string{"deal"}, OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	env.touch("team:sales#member@user:bob") // filtered out: a team
	second := env.touch("deal:1#viewer@user:amy", "deal:2#viewer@user:bob")
	resp := recvWatch(t, stream)
	if got := updateStrings(resp); len(got) != 2 || got[0] != "OPERATION_TOUCH deal:1#viewer@user:amy" {
		t.Fatalf("first response = %v", got)
	}
	if resp.GetChangesThrough().GetToken() != second.GetToken() {
		t.Errorf("changes_through = %v, want the write's token %v", resp.GetChangesThrough(), second)
	}
	_, err = env.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "deal", OptionalResourceId: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := updateStrings(recvWatch(t, stream)); len(got) != 1 || got[0] != "OPERATION_DELETE deal:1#viewer@user:amy" {
		t.Fatalf("delete response = %v", got)
	}
	cancel()

	// Resume from the first write's token: everything after it, the team change included.
	stream, err = env.client.Watch(ctxT(t), &v1.WatchRequest{OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for len(all) < 4 {
		all = append(all, updateStrings(recvWatch(t, stream))...)
	}
	if all[0] != "OPERATION_TOUCH team:sales#member@user:bob" || all[3] != "OPERATION_DELETE deal:1#viewer@user:amy" {
		t.Errorf("resumed changes = %v", all)
	}

	// Retire everything: the old token is below the retention window.
	if _, err := env.st.CollectGarbage(time.Now().Add(1000 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	stream, err = env.client.Watch(ctxT(t), &v1.WatchRequest{OptionalStartCursor: start})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.FailedPrecondition, "retained")
}
