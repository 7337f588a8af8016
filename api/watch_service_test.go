package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
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

// TestWatchUpdateKinds: optional_update_kinds as SpiceDB reads it. By default a stream sends
// relationship updates only; INCLUDE_SCHEMA_UPDATES adds a response with schema_updated for a
// schema change; INCLUDE_CHECKPOINTS adds an is_checkpoint response, with no updates, whenever
// the revisions passed over gave nothing to send, so a client's cursor still advances.
func TestWatchUpdateKinds(t *testing.T) {
	env := startServer(t, Options{})
	start := env.writeSchema(lookupTestSchema)
	watch := func(kinds ...v1.WatchKind) v1.WatchService_WatchClient {
		stream, err := env.client.Watch(ctxT(t), &v1.WatchRequest{OptionalStartCursor: start, OptionalUpdateKinds: kinds,
			OptionalObjectTypes: []string{"deal"}})
		if err != nil {
			t.Fatal(err)
		}
		return stream
	}
	plain := watch()
	all := watch(v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES, v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES, v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS)
	schemaOnly := watch(v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES)

	schemaTok := env.writeSchema(lookupTestSchema + "\n") // a schema change
	folderTok := env.touch("team:t1#member@user:amy")     // filtered out: not a deal
	dealTok := env.touch("deal:1#viewer@user:amy")        // a deal update

	// The plain stream: the deal update, nothing else.
	if resp := recvWatch(t, plain); resp.GetSchemaUpdated() || resp.GetIsCheckpoint() ||
		resp.GetChangesThrough().GetToken() != dealTok.GetToken() || len(resp.GetUpdates()) != 1 {
		t.Errorf("default kinds: first response %v, want only the deal update at %s", resp, dealTok.GetToken())
	}
	// Everything: the schema change, then a checkpoint or the deal update, ending at the deal.
	resp := recvWatch(t, all)
	if !resp.GetSchemaUpdated() || len(resp.GetUpdates()) != 0 || resp.GetChangesThrough().GetToken() != schemaTok.GetToken() {
		t.Fatalf("schema updates: first response %v, want schema_updated at %s", resp, schemaTok.GetToken())
	}
	var sawDeal bool
	for !sawDeal {
		resp = recvWatch(t, all)
		switch {
		case resp.GetIsCheckpoint():
			if len(resp.GetUpdates()) != 0 || resp.GetChangesThrough().GetToken() != folderTok.GetToken() && resp.GetChangesThrough().GetToken() != schemaTok.GetToken() {
				t.Errorf("checkpoint %v, want one with no updates at the folder write", resp)
			}
		case len(resp.GetUpdates()) == 1 && resp.GetChangesThrough().GetToken() == dealTok.GetToken():
			sawDeal = true
		default:
			t.Fatalf("unexpected response %v", resp)
		}
	}
	// A revision after the last one sent that gives nothing to send: a checkpoint at it.
	lastTok := env.touch("team:t2#member@user:amy")
	if resp := recvWatch(t, all); !resp.GetIsCheckpoint() || len(resp.GetUpdates()) != 0 || resp.GetChangesThrough().GetToken() != lastTok.GetToken() {
		t.Errorf("after a filtered-out write: %v, want a checkpoint at %s", resp, lastTok.GetToken())
	}
	// Schema updates alone: the schema change and no relationship update.
	if resp := recvWatch(t, schemaOnly); !resp.GetSchemaUpdated() || len(resp.GetUpdates()) != 0 {
		t.Errorf("schema-only stream: %v, want the schema change", resp)
	}
	env.writeSchema(lookupTestSchema)
	if resp := recvWatch(t, schemaOnly); !resp.GetSchemaUpdated() || len(resp.GetUpdates()) != 0 {
		t.Errorf("schema-only stream after the deal update: %v, want the next schema change and nothing between", resp)
	}
}

// TestWatchHoldsRetention: an open Watch keeps the changes it has yet to send from garbage
// collection (a store Hold, exported as kengen_store_retention_holds), and lets go when the
// stream ends.
func TestWatchHoldsRetention(t *testing.T) {
	env := startServer(t, Options{})
	start := env.writeSchema(lookupTestSchema)
	ctx, cancel := context.WithCancel(ctxT(t))
	stream, err := env.client.Watch(ctx, &v1.WatchRequest{OptionalStartCursor: start})
	if err != nil {
		t.Fatal(err)
	}
	tok := env.touch("deal:1#viewer@user:amy")
	if resp := recvWatch(t, stream); resp.GetChangesThrough().GetToken() != tok.GetToken() {
		t.Fatalf("first response %v", resp)
	}
	held := `kengen_store_retention_holds`
	kit.Eventually(t, "the open stream holds retention", func() error {
		if v := gather(t, env.reg)[held]; v != 1 {
			return fmt.Errorf("%s = %v", held, v)
		}
		if st := env.st.Stats(); st.HeldRevision < 1 {
			return fmt.Errorf("held revision %d", st.HeldRevision)
		}
		return nil
	})
	// A collection far past the retention window cannot move past what the stream has sent.
	if _, err := env.st.CollectGarbage(time.Now().Add(90 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := env.st.Stats(); st.OldestRetained > st.HeldRevision {
		t.Errorf("horizon %d passed the stream's held revision %d", st.OldestRetained, st.HeldRevision)
	}
	next := env.touch("deal:2#viewer@user:amy")
	if resp := recvWatch(t, stream); resp.GetChangesThrough().GetToken() != next.GetToken() {
		t.Fatalf("after the collection the stream sent %v, want the next change", resp)
	}
	cancel()
	kit.Eventually(t, "the hold ends with the stream", func() error {
		if v := gather(t, env.reg)[held]; v != 0 {
			return fmt.Errorf("%s = %v", held, v)
		}
		return nil
	})
}
