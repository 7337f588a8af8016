package api

import (
	"github.com/kengen/kengen/schema"
	"path/filepath"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/check/validation"
	"github.com/kengen/kengen/store"
)

// TestSeedModels loads every seed CRM model (schema/examples) through the API, reads the
// schema back, and asks every assertion of the model twice: one CheckPermission each, then
// all of them in one CheckBulkPermissions.
func TestSeedModels(t *testing.T) {
	paths, err := filepath.Glob("../schema/examples/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed models found in ../schema/examples (%v)", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := validation.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range f.Docs {
				runSeedDoc(t, doc)
			}
		})
	}
}

func runSeedDoc(t *testing.T, doc *validation.Document) {
	env := startServer(t, Options{})
	env.writeSchema(doc.Schema)

	got, err := env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	if err != nil {
		t.Fatalf("ReadSchema: %v", err)
	}
	checkReadSchema(t, doc.Schema, got.GetSchemaText())

	var rels []string
	for _, r := range doc.Relationships {
		rels = append(rels, r.Value.String())
	}
	tok := env.touch(rels...)

	var items []*v1.CheckBulkPermissionsRequestItem
	for _, a := range doc.Assertions {
		want := wantPermissionship(a.Kind)
		req := checkRequestToProto(t, a.Request)
		req.Consistency = fresh(tok)
		resp, err := env.client.CheckPermission(ctxT(t), req)
		if err != nil {
			t.Errorf("line %d %s: %v", a.Line, a.Text, err)
			continue
		}
		if resp.GetPermissionship() != want {
			t.Errorf("line %d %s: got %v, want %v", a.Line, a.Text, resp.GetPermissionship(), want)
		}
		if resp.GetCheckedAt().GetToken() == "" {
			t.Errorf("line %d: CheckPermission returned no checked_at token", a.Line)
		}
		items = append(items, &v1.CheckBulkPermissionsRequestItem{
			Resource: req.Resource, Permission: req.Permission, Subject: req.Subject, Context: req.Context,
		})
	}

	bulk, err := env.client.CheckBulkPermissions(ctxT(t), &v1.CheckBulkPermissionsRequest{Consistency: full(), Items: items})
	if err != nil {
		t.Fatalf("CheckBulkPermissions: %v", err)
	}
	if len(bulk.GetPairs()) != len(items) {
		t.Fatalf("CheckBulkPermissions returned %d pairs for %d items", len(bulk.GetPairs()), len(items))
	}
	for i, pair := range bulk.GetPairs() {
		a := doc.Assertions[i]
		if e := pair.GetError(); e != nil {
			t.Errorf("bulk line %d %s: %v", a.Line, a.Text, e.GetMessage())
			continue
		}
		if got, want := pair.GetItem().GetPermissionship(), wantPermissionship(a.Kind); got != want {
			t.Errorf("bulk line %d %s: got %v, want %v", a.Line, a.Text, got, want)
		}
	}
}

func wantPermissionship(k validation.AssertionKind) v1.CheckPermissionResponse_Permissionship {
	switch k {
	case validation.AssertTrue:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	case validation.AssertCaveated:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
}

func checkRequestToProto(t testing.TB, r check.Request) *v1.CheckPermissionRequest {
	p, err := relationshipToProto(&store.Relationship{
		ResourceType: r.ResourceType, ResourceID: r.ResourceID, Relation: r.Permission,
		SubjectType: r.SubjectType, SubjectID: r.SubjectID, SubjectRelation: r.SubjectRelation,
	})
	if err != nil {
		t.Fatal(err)
	}
	req := &v1.CheckPermissionRequest{Resource: p.Resource, Permission: p.Relation, Subject: p.Subject}
	if len(r.Context) > 0 {
		if req.Context, err = structpb.NewStruct(r.Context); err != nil {
			t.Fatal(err)
		}
	}
	return req
}

// checkReadSchema: ReadSchema returns the text as written, unless that text spelled a limit as
// `limit N` (which SpiceDB's parser refuses): then it returns text with the same meaning in
// which every limit is a `kengen:limit N` doc comment line.
func checkReadSchema(t *testing.T, written, got string) {
	t.Helper()
	w, err := schema.Parse(written)
	if err != nil {
		t.Fatalf("the schema written does not parse: %v", err)
	}
	if !w.KeywordLimits {
		if got != written {
			t.Errorf("ReadSchema returned\n%s\nwant the text written:\n%s", got, written)
		}
		return
	}
	g, err := schema.Parse(got)
	if err != nil {
		t.Fatalf("ReadSchema's text does not parse: %v\n%s", err, got)
	}
	if g.KeywordLimits {
		t.Errorf("ReadSchema's text spells a limit as `limit N`, which SpiceDB's parser refuses:\n%s", got)
	}
	if g.Generate() != w.Generate() {
		t.Errorf("ReadSchema's text means another schema:\n%s\nwritten:\n%s", got, written)
	}
}
