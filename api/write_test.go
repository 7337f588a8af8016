package api

import (
	"fmt"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	opCreate = v1.RelationshipUpdate_OPERATION_CREATE
	opTouch  = v1.RelationshipUpdate_OPERATION_TOUCH
	opDelete = v1.RelationshipUpdate_OPERATION_DELETE
)

var crmTypes = []string{"deal", "group", "organization"}

func crmEnv(t *testing.T) *testEnv {
	env := startServer(t, Options{})
	env.writeSchema(readFile(t, "testdata/crm.zed"))
	return env
}

func (e *testEnv) write(pre []*v1.Precondition, us ...*v1.RelationshipUpdate) (*v1.WriteRelationshipsResponse, error) {
	return e.client.WriteRelationships(ctxT(e.t), &v1.WriteRelationshipsRequest{Updates: us, OptionalPreconditions: pre})
}

func precondition(op v1.Precondition_Operation, resType, resID, relation string) *v1.Precondition {
	return &v1.Precondition{Operation: op, Filter: &v1.RelationshipFilter{
		ResourceType: resType, OptionalResourceId: resID, OptionalRelation: relation,
	}}
}

func wantRels(t *testing.T, got []string, want ...string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("relationships:\n got %q\nwant %q", got, want)
	}
}

func TestWriteOperations(t *testing.T) {
	env := crmEnv(t)
	owner := "deal:1#owner@user:sato"
	if _, err := env.write(nil, update(t, opCreate, owner)); err != nil {
		t.Fatalf("CREATE: %v", err)
	}
	_, err := env.write(nil, update(t, opCreate, owner), update(t, opCreate, "deal:1#follower@user:ito"))
	wantCode(t, err, codes.AlreadyExists, "deal:1")
	wantRels(t, env.dump(crmTypes...), owner) // the follower of the refused write is absent

	if _, err := env.write(nil, update(t, opTouch, owner), update(t, opTouch, "deal:1#follower@group:eng#member")); err != nil {
		t.Fatalf("TOUCH: %v", err)
	}
	wantRels(t, env.dump(crmTypes...), owner, "deal:1#follower@group:eng#member")

	if _, err := env.write(nil, update(t, opDelete, owner), update(t, opDelete, "deal:1#follower@user:absent")); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	wantRels(t, env.dump(crmTypes...), "deal:1#follower@group:eng#member")

	// A wildcard subject is written and read back as such.
	if _, err := env.write(nil, update(t, opTouch, "deal:1#follower@user:*")); err != nil {
		t.Fatalf("TOUCH wildcard: %v", err)
	}
	if p, err := env.check(full(), "deal:1", "view", "user:anyone"); err != nil || p != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("check through the wildcard: %v %v", p, err)
	}
}

func TestWritePreconditions(t *testing.T) {
	env := crmEnv(t)
	mustNot := precondition(v1.Precondition_OPERATION_MUST_NOT_MATCH, "deal", "2", "owner")
	must := func(subject string) *v1.Precondition {
		p := precondition(v1.Precondition_OPERATION_MUST_MATCH, "deal", "2", "owner")
		p.Filter.OptionalSubjectFilter = &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: subject}
		return p
	}

	// A new deal: the owner is set only if none is.
	if _, err := env.write([]*v1.Precondition{mustNot}, update(t, opCreate, "deal:2#owner@user:sato")); err != nil {
		t.Fatalf("first owner: %v", err)
	}
	_, err := env.write([]*v1.Precondition{mustNot}, update(t, opTouch, "deal:2#follower@user:ito"))
	wantCode(t, err, codes.FailedPrecondition, "deal")
	wantRels(t, env.dump(crmTypes...), "deal:2#owner@user:sato")

	// The owner changes from sato to suzuki only if sato still owns the deal.
	change := func(from, to string) error {
		_, err := env.write([]*v1.Precondition{must(from)},
			update(t, opDelete, "deal:2#owner@user:"+from), update(t, opTouch, "deal:2#owner@user:"+to))
		return err
	}
	if err := change("sato", "suzuki"); err != nil {
		t.Fatalf("owner change: %v", err)
	}
	wantCode(t, change("sato", "tanaka"), codes.FailedPrecondition, "deal")
	wantRels(t, env.dump(crmTypes...), "deal:2#owner@user:suzuki")
}

func TestDeleteRelationships(t *testing.T) {
	env := crmEnv(t)
	var rels []string
	for i := range 5 {
		rels = append(rels, fmt.Sprintf("deal:3#follower@user:u%d", i))
	}
	env.touch(append(rels, "deal:3#owner@user:sato", "deal:4#follower@user:u0")...)
	followers := &v1.RelationshipFilter{ResourceType: "deal", OptionalResourceId: "3", OptionalRelation: "follower"}

	// More matches than the limit without partial deletions: refused, nothing deleted.
	_, err := env.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{RelationshipFilter: followers, OptionalLimit: 2})
	wantCode(t, err, codes.FailedPrecondition, "optional_allow_partial_deletions")
	if got := env.dump("deal"); len(got) != 7 {
		t.Fatalf("after a refused delete: %d relationships, want 7", len(got))
	}

	// A failed precondition: nothing deleted.
	_, err = env.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{
		RelationshipFilter:    followers,
		OptionalPreconditions: []*v1.Precondition{precondition(v1.Precondition_OPERATION_MUST_MATCH, "deal", "3", "sub_assignee")},
	})
	wantCode(t, err, codes.FailedPrecondition)
	if got := env.dump("deal"); len(got) != 7 {
		t.Fatalf("after a failed precondition: %d relationships, want 7", len(got))
	}

	// Partial deletions in pages of 2: 2, 2, then the last one, complete.
	wantProgress := []v1.DeleteRelationshipsResponse_DeletionProgress{
		v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL,
		v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL,
		v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE,
	}
	wantCount := []uint64{2, 2, 1}
	for i := range wantProgress {
		resp, err := env.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{
			RelationshipFilter: followers, OptionalLimit: 2, OptionalAllowPartialDeletions: true,
		})
		if err != nil {
			t.Fatalf("partial delete %d: %v", i, err)
		}
		if resp.GetDeletionProgress() != wantProgress[i] || resp.GetRelationshipsDeletedCount() != wantCount[i] {
			t.Fatalf("partial delete %d: %v, %d deleted; want %v, %d", i, resp.GetDeletionProgress(), resp.GetRelationshipsDeletedCount(), wantProgress[i], wantCount[i])
		}
		if resp.GetDeletedAt().GetToken() == "" {
			t.Fatalf("partial delete %d: no deleted_at token", i)
		}
	}
	wantRels(t, env.dump("deal"), "deal:3#owner@user:sato", "deal:4#follower@user:u0")

	// A delete without a limit removes every match.
	resp, err := env.client.DeleteRelationships(ctxT(t), &v1.DeleteRelationshipsRequest{
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "deal"},
	})
	if err != nil || resp.GetRelationshipsDeletedCount() != 2 {
		t.Fatalf("delete all deals: %v, %d deleted", err, resp.GetRelationshipsDeletedCount())
	}
	wantRels(t, env.dump("deal"))
}

// TestCaveatContextCheckedAtWrite: a caveat context that does not fit its caveat (a value of
// the wrong type, a parameter the caveat does not have) is refused when it is written, naming
// the parameter, and nothing is stored; before, it was stored and every later check through
// the relationship failed with INVALID_ARGUMENT.
func TestCaveatContextCheckedAtWrite(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(`caveat within(max int, from ipaddress) { max > 0 && from.in_cidr('10.0.0.0/8') }
definition user {}
definition deal {
	relation viewer: user with within
	permission view = viewer
}`)
	write := func(ctxJSON string) error {
		c := &structpb.Struct{}
		if err := c.UnmarshalJSON([]byte(ctxJSON)); err != nil {
			t.Fatal(err)
		}
		_, err := env.write(nil, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
			Relationship: &v1.Relationship{Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "1"}, Relation: "viewer",
				Subject:        &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
				OptionalCaveat: &v1.ContextualizedCaveat{CaveatName: "within", Context: c}}})
		return err
	}
	for _, tc := range []struct {
		ctx   string
		hints []string
	}{
		{`{"max": "abc"}`, []string{`parameter "max"`, "within", "int"}},
		{`{"max": 1.5}`, []string{`parameter "max"`, "int"}},
		{`{"from": "not-an-ip"}`, []string{`parameter "from"`, "ipaddress"}},
		{`{"maximum": 3}`, []string{`no parameter "maximum"`, "max int, from ipaddress"}},
	} {
		wantCode(t, write(tc.ctx), codes.InvalidArgument, tc.hints...)
	}
	if got, err := env.read(&v1.RelationshipFilter{ResourceType: "deal"}, full()); err != nil || len(got) != 0 {
		t.Fatalf("a refused context was stored: %v %v", got, err)
	}
	// A context that fits is stored and checks answer through it.
	if err := write(`{"max": 3, "from": "10.1.2.3"}`); err != nil {
		t.Fatal(err)
	}
	if p, err := env.check(full(), "deal:1", "view", "user:sato"); err != nil || p != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("check through a fitting context: %v %v", p, err)
	}
}
