package api

import (
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

func experimentalClient(t *testing.T, addr string) *authzed.ClientWithExperimental {
	t.Helper()
	c, err := authzed.NewClientWithExperimentalAPIs(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(testKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countOf reads a counter, failing t unless it answers; the revision read at comes back too.
func countOf(t *testing.T, c *authzed.ClientWithExperimental, name string) (uint64, *v1.ZedToken) {
	t.Helper()
	resp, err := c.ExperimentalCountRelationships(ctxT(t), &v1.ExperimentalCountRelationshipsRequest{Name: name})
	if err != nil {
		t.Fatalf("count %s: %v", name, err)
	}
	v := resp.GetReadCounterValue()
	if v == nil {
		t.Fatalf("count %s: %v, want a counter value", name, resp)
	}
	return v.GetRelationshipCount(), v.GetReadAt()
}

// TestRelationshipCounters: SpiceDB's counters through authzed-go's experimental client —
// register over a filter (counting what is there already), counts that follow writes and
// deletes at once, a name in use or not registered refused with FAILED_PRECONDITION, a bad
// filter with INVALID_ARGUMENT, and a name free again once unregistered.
func TestRelationshipCounters(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(traceSchema)
	env.touch("doc:1#viewer@user:ann", "doc:2#viewer@user:bob", "doc:2#editor@user:ann")
	c := experimentalClient(t, env.addr)

	viewers := &v1.RelationshipFilter{ResourceType: "doc", OptionalRelation: "viewer"}
	if _, err := c.ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{Name: "viewers", RelationshipFilter: viewers}); err != nil {
		t.Fatal(err)
	}
	ann := &v1.RelationshipFilter{ResourceType: "doc", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "ann"}}
	if _, err := c.ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{Name: "ann", RelationshipFilter: ann}); err != nil {
		t.Fatal(err)
	}
	if n, _ := countOf(t, c, "viewers"); n != 2 {
		t.Errorf("viewers = %d, want 2", n)
	}
	if n, _ := countOf(t, c, "ann"); n != 2 {
		t.Errorf("ann = %d, want 2", n)
	}

	tok := env.touch("doc:3#viewer@user:ann", "doc:4#viewer@user:cat")
	n, at := countOf(t, c, "viewers")
	if n != 4 || at.GetToken() != tok.GetToken() {
		t.Errorf("viewers after two more = %d at %v, want 4 at %v", n, at, tok)
	}
	if _, err := env.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{RelationshipFilter: ann}); err != nil {
		t.Fatal(err)
	}
	if n, _ := countOf(t, c, "ann"); n != 0 {
		t.Errorf("ann after deleting ann's = %d, want 0", n)
	}
	if n, _ := countOf(t, c, "viewers"); n != 2 {
		t.Errorf("viewers after deleting ann's = %d, want 2", n)
	}

	_, err := c.ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{Name: "viewers", RelationshipFilter: ann})
	wantCode(t, err, codes.FailedPrecondition, "viewers", "already")
	_, err = c.ExperimentalCountRelationships(ctxT(t), &v1.ExperimentalCountRelationshipsRequest{Name: "nobody"})
	wantCode(t, err, codes.FailedPrecondition, "nobody")
	_, err = c.ExperimentalUnregisterRelationshipCounter(ctxT(t), &v1.ExperimentalUnregisterRelationshipCounterRequest{Name: "nobody"})
	wantCode(t, err, codes.FailedPrecondition, "nobody")
	_, err = c.ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{Name: "bad_filter", RelationshipFilter: &v1.RelationshipFilter{ResourceType: "invoice"}})
	wantCode(t, err, codes.InvalidArgument, "invoice")
	_, err = c.ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{Name: "bad_filter", RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc", OptionalRelation: "owner"}})
	wantCode(t, err, codes.InvalidArgument, "owner")
	_, err = c.ExperimentalCountRelationships(ctxT(t), &v1.ExperimentalCountRelationshipsRequest{})
	wantCode(t, err, codes.InvalidArgument, "name")

	if _, err := c.ExperimentalUnregisterRelationshipCounter(ctxT(t), &v1.ExperimentalUnregisterRelationshipCounterRequest{Name: "viewers"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ExperimentalCountRelationships(ctxT(t), &v1.ExperimentalCountRelationshipsRequest{Name: "viewers"})
	wantCode(t, err, codes.FailedPrecondition, "viewers")
	if _, err := c.ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{Name: "viewers", RelationshipFilter: ann}); err != nil {
		t.Errorf("registering a free name again: %v", err)
	}
}

// TestRelationshipCountersOverRaft: a counter registered through one node counts on every
// node, the same at the same revision, and follows a write made through another.
func TestRelationshipCountersOverRaft(t *testing.T) {
	nodes := startAPICluster(t)
	kit.Eventually(t, "a schema write", func() error {
		_, err := nodes[0].client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: traceSchema})
		return err
	})
	clients := make([]*authzed.ClientWithExperimental, len(nodes))
	for i, cn := range nodes {
		clients[i] = experimentalClient(t, cn.addr)
	}
	if _, err := clients[2].ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{
		Name: "viewers", RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc", OptionalRelation: "viewer"}}); err != nil {
		t.Fatal(err)
	}
	for i, w := range nodes {
		if _, err := w.client.WriteRelationships(ctxT(t), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
			update(t, v1.RelationshipUpdate_OPERATION_TOUCH, "doc:"+w.id+"#viewer@user:ann")}}); err != nil {
			t.Fatal(err)
		}
		for j, c := range clients {
			if n, _ := countOf(t, c, "viewers"); n != uint64(i+1) {
				t.Errorf("after the write through %s, %s counts %d, want %d", w.id, nodes[j].id, n, i+1)
			}
		}
	}
	_, err := clients[1].ExperimentalRegisterRelationshipCounter(ctxT(t), &v1.ExperimentalRegisterRelationshipCounterRequest{
		Name: "viewers", RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"}})
	wantCode(t, err, codes.FailedPrecondition, "already")
}
