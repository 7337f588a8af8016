package api

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestNewUserMistakes makes the mistakes a new user makes, each through the client: every one
// gets the right code, a message that says what to fix, and nothing is written.
func TestNewUserMistakes(t *testing.T) {
	env := crmEnv(t)
	seed := []string{"deal:5#owner@user:sato", "deal:5#follower@user:ito", "group:eng#member@user:ito"}
	for i := range 5 {
		seed = append(seed, fmt.Sprintf("deal:5#sub_assignee@user:s%d", i))
	}
	env.touch(seed...)
	noToken := dial(t, env.addr, "")
	wrongToken := dial(t, env.addr, "not-the-key")
	touch := func(r *v1.Relationship) *v1.WriteRelationshipsRequest {
		return &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: opTouch, Relationship: r}}}
	}
	badID := rel(t, "deal:5#follower@user:x")
	badID.Subject.Object.ObjectId = "sato san"
	var many []*v1.RelationshipUpdate
	for i := range DefaultMaxUpdatesPerWrite + 1 {
		many = append(many, update(t, opTouch, fmt.Sprintf("deal:%d#follower@user:ito", 100+i)))
	}
	crm := readFile(t, "testdata/crm.zed")

	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		hints []string
	}{
		{"no token", func() error {
			_, err := noToken.WriteRelationships(ctxT(t), touch(rel(t, "deal:5#follower@user:new")))
			return err
		}, codes.Unauthenticated, []string{"authorization: Bearer"}},
		{"wrong token", func() error {
			_, err := wrongToken.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: "definition user {}"})
			return err
		}, codes.Unauthenticated, []string{"preshared key"}},
		{"garbage zedtoken", func() error {
			_, err := env.check(fresh(&v1.ZedToken{Token: "yesterday"}), "deal:5", "view", "user:ito")
			return err
		}, codes.InvalidArgument, []string{"consistency.at_least_as_fresh", "earlier response"}},
		{"unknown resource type in a write", func() error {
			_, err := env.client.WriteRelationships(ctxT(t), touch(rel(t, "invoice:1#owner@user:sato")))
			return err
		}, codes.InvalidArgument, []string{"invoice"}},
		{"unknown resource type in a check", func() error {
			_, err := env.check(full(), "invoice:1", "view", "user:sato")
			return err
		}, codes.FailedPrecondition, []string{"invoice"}},
		{"unknown relation", func() error {
			_, err := env.client.WriteRelationships(ctxT(t), touch(rel(t, "deal:5#watcher@user:sato")))
			return err
		}, codes.InvalidArgument, []string{"watcher"}},
		{"unknown permission", func() error {
			_, err := env.check(full(), "deal:5", "delete", "user:sato")
			return err
		}, codes.FailedPrecondition, []string{"delete"}},
		{"subject type not allowed", func() error {
			_, err := env.client.WriteRelationships(ctxT(t), touch(rel(t, "deal:5#owner@group:eng#member")))
			return err
		}, codes.InvalidArgument, []string{"owner", "group"}},
		{"invalid object id", func() error {
			_, err := env.client.WriteRelationships(ctxT(t), touch(badID))
			return err
		}, codes.InvalidArgument, []string{"updates[0].relationship.subject.object.object_id", "a-z A-Z 0-9"}},
		{"1,001 updates in one call", func() error {
			_, err := env.client.WriteRelationships(ctxT(t), &v1.WriteRelationshipsRequest{Updates: many})
			return err
		}, codes.InvalidArgument, []string{"updates", "1001", "1000"}},
		{"a 6th sub assignee under limit 5", func() error {
			_, err := env.client.WriteRelationships(ctxT(t), touch(rel(t, "deal:5#sub_assignee@user:s5")))
			return err
		}, codes.FailedPrecondition, []string{"sub_assignee", "5"}},
		{"a schema change that strands relationships", func() error {
			_, err := env.client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{
				Schema: strings.Replace(crm, "relation follower: user | group#member", "relation follower: group#member", 1),
			})
			return err
		}, codes.FailedPrecondition, []string{"follower"}},
		{"a limit below what a deal already holds", func() error {
			_, err := env.client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{
				Schema: strings.Replace(crm, "relation sub_assignee: user limit 5", "relation sub_assignee: user limit 2", 1),
			})
			return err
		}, codes.FailedPrecondition, []string{"deal#sub_assignee", "limit 2", "deal:5 holds 5", "delete the extra relationships"}},
		{"a schema with several errors", func() error {
			_, err := env.client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{
				Schema: "definition user {}\ndefinition deal {\n  relation owner: usr\n  permission view = ownr\n}\n",
			})
			return err
		}, codes.InvalidArgument, []string{"3:", "usr", "4:", "ownr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := env.dump(crmTypes...)
			err := tc.call()
			t.Logf("%v", err)
			wantCode(t, err, tc.code, tc.hints...)
			if after := env.dump(crmTypes...); !slices.Equal(before, after) {
				t.Errorf("relationships changed:\nbefore %q\nafter  %q", before, after)
			}
			if s, err := env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{}); err != nil {
				t.Errorf("ReadSchema: %v", err)
			} else {
				checkReadSchema(t, crm, s.GetSchemaText())
			}
		})
	}
}

func TestUnimplementedAndHealth(t *testing.T) {
	env := startServer(t, Options{})
	// A field kengen does not serve answers UNIMPLEMENTED, saying what to do instead.
	_, err := env.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "deal"}, OptionalCursor: &v1.Cursor{Token: "x"}})
	wantCode(t, err, codes.Unimplemented, "optional_limit")

	_, err = env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.NotFound, "WriteSchema")

	// Health answers without a token.
	hc := healthpb.NewHealthClient(rawConn(t, env.addr))
	resp, err := hc.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: v1.PermissionsService_ServiceDesc.ServiceName})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp.GetStatus(), err)
	}
}
