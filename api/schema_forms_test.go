package api

import (
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// formsSchema uses the forms of SpiceDB v1.56's schema language: `self`, a type annotation
// checked under `use typechecking`, and a partial.
const formsSchema = `use self
use typechecking
use partial

partial owned {
	relation owner: user
	permission owner_profile: user = owner->view_profile
}

definition user {
	relation manager: user
	permission view_profile: user = self + manager
}

definition document {
	...owned
	relation viewer: user
	permission view = viewer + owner
}
`

// TestSchemaFormsThroughClient drives the new forms through the real authzed-go client:
// ReadSchema returns the text written (partials and all), `self` answers the same in Check,
// both lookups and Expand, and a schema whose annotation leaves a type out, or that imports a
// file, is refused with INVALID_ARGUMENT saying what to fix, leaving the schema as it was.
func TestSchemaFormsThroughClient(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(formsSchema)
	full := &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}

	read, err := env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if read.GetSchemaText() != formsSchema {
		t.Errorf("ReadSchema =\n%s\nwant the text written\n%s", read.GetSchemaText(), formsSchema)
	}

	_, err = env.client.WriteRelationships(ctxT(t), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
		update(t, v1.RelationshipUpdate_OPERATION_TOUCH, "user:bob#manager@user:alice"),
		update(t, v1.RelationshipUpdate_OPERATION_TOUCH, "document:d1#owner@user:bob"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	subject := func(id string) *v1.SubjectReference {
		return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: id}}
	}
	for _, tt := range []struct {
		typ, id, perm, subj string
		want                v1.CheckPermissionResponse_Permissionship
	}{
		{"user", "bob", "view_profile", "bob", v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION},
		{"user", "bob", "view_profile", "alice", v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION},
		{"user", "alice", "view_profile", "bob", v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION},
		{"document", "d1", "owner_profile", "bob", v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION},
		{"document", "d1", "owner_profile", "alice", v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION},
		{"document", "d1", "view", "bob", v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION},
	} {
		resp, err := env.client.CheckPermission(ctxT(t), &v1.CheckPermissionRequest{Consistency: full,
			Resource: &v1.ObjectReference{ObjectType: tt.typ, ObjectId: tt.id}, Permission: tt.perm, Subject: subject(tt.subj)})
		if err != nil {
			t.Fatalf("CheckPermission(%s:%s#%s@user:%s): %v", tt.typ, tt.id, tt.perm, tt.subj, err)
		}
		if resp.GetPermissionship() != tt.want {
			t.Errorf("CheckPermission(%s:%s#%s@user:%s) = %v, want %v", tt.typ, tt.id, tt.perm, tt.subj, resp.GetPermissionship(), tt.want)
		}
	}

	lr, err := env.client.LookupResources(ctxT(t), &v1.LookupResourcesRequest{Consistency: full, ResourceObjectType: "user",
		Permission: "view_profile", Subject: subject("alice")})
	if err != nil {
		t.Fatal(err)
	}
	var resources []string
	for {
		r, err := lr.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, r.GetResourceObjectId())
	}
	sort.Strings(resources)
	if strings.Join(resources, ",") != "alice,bob" {
		t.Errorf("LookupResources(user#view_profile, user:alice) = %v, want alice (self) and bob (managed)", resources)
	}

	ls, err := env.client.LookupSubjects(ctxT(t), &v1.LookupSubjectsRequest{Consistency: full,
		Resource: &v1.ObjectReference{ObjectType: "user", ObjectId: "bob"}, Permission: "view_profile", SubjectObjectType: "user"})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for {
		r, err := ls.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, r.GetSubject().GetSubjectObjectId())
	}
	sort.Strings(subjects)
	if strings.Join(subjects, ",") != "alice,bob" {
		t.Errorf("LookupSubjects(user:bob#view_profile, user) = %v, want alice and bob (self)", subjects)
	}

	ex, err := env.client.ExpandPermissionTree(ctxT(t), &v1.ExpandPermissionTreeRequest{Consistency: full,
		Resource: &v1.ObjectReference{ObjectType: "user", ObjectId: "bob"}, Permission: "view_profile"})
	if err != nil {
		t.Fatal(err)
	}
	var leaves []string
	var walk func(n *v1.PermissionRelationshipTree)
	walk = func(n *v1.PermissionRelationshipTree) {
		if l := n.GetLeaf(); l != nil {
			for _, s := range l.GetSubjects() {
				leaves = append(leaves, s.GetObject().GetObjectType()+":"+s.GetObject().GetObjectId())
			}
		}
		for _, c := range n.GetIntermediate().GetChildren() {
			walk(c)
		}
	}
	walk(ex.GetTreeRoot())
	sort.Strings(leaves)
	if strings.Join(leaves, ",") != "user:alice,user:bob" {
		t.Errorf("ExpandPermissionTree(user:bob#view_profile) leaves = %v, want user:alice and user:bob (self)", leaves)
	}

	for _, bad := range []struct{ text, want string }{
		{strings.Replace(formsSchema, "permission view_profile: user =", "permission view_profile: document =", 1),
			"the type annotation `document` leaves out `user`"},
		{"use import\nimport \"people.zed\"\n" + formsSchema, "a schema given as text cannot import files"},
		{strings.Replace(formsSchema, "use self\n", "", 1), "to mean the resource itself, add `use self`"},
	} {
		_, err := env.client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: bad.text})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), bad.want) {
			t.Errorf("WriteSchema: %v, want INVALID_ARGUMENT containing %q", err, bad.want)
		}
	}
	read, err = env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	if err != nil || read.GetSchemaText() != formsSchema {
		t.Errorf("after refused writes ReadSchema = %v, %v; want the schema unchanged", read.GetSchemaText(), err)
	}
}
