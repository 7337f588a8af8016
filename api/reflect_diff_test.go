package api

import (
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

const diffBefore = `/** who */
definition user {}

caveat small(amount int, note string) {
	amount < 10
}

definition old_thing {}

definition doc {
	/** readers */
	relation viewer: user | user:*
	relation editor: user
	relation owner: user
	permission view = viewer + editor
	/** edits */
	permission edit = editor
	permission admin = owner
}
`

const diffAfter = `/** a person */
definition user {}

/** limited */
caveat small(amount uint, limit int) {
	amount < limit
}

caveat fresh(day string) {
	day == "mon"
}

definition doc {
	/** who reads */
	relation viewer: user | user with small
	relation editor: user
	relation approver: user
	permission view = viewer + editor + approver
	/** may edit */
	permission edit = editor
	relation admin: user
}

definition folder {}
`

// diffString names a diff by its kind and the part it describes.
func diffString(d *v1.ReflectionSchemaDiff) string {
	switch x := d.GetDiff().(type) {
	case *v1.ReflectionSchemaDiff_DefinitionAdded:
		return "definition added " + x.DefinitionAdded.GetName()
	case *v1.ReflectionSchemaDiff_DefinitionRemoved:
		return "definition removed " + x.DefinitionRemoved.GetName()
	case *v1.ReflectionSchemaDiff_DefinitionDocCommentChanged:
		return "definition comment " + x.DefinitionDocCommentChanged.GetName() + " " + x.DefinitionDocCommentChanged.GetComment()
	case *v1.ReflectionSchemaDiff_RelationAdded:
		return "relation added " + x.RelationAdded.GetParentDefinitionName() + "#" + x.RelationAdded.GetName()
	case *v1.ReflectionSchemaDiff_RelationRemoved:
		return "relation removed " + x.RelationRemoved.GetParentDefinitionName() + "#" + x.RelationRemoved.GetName()
	case *v1.ReflectionSchemaDiff_RelationDocCommentChanged:
		return "relation comment " + x.RelationDocCommentChanged.GetName() + " " + x.RelationDocCommentChanged.GetComment()
	case *v1.ReflectionSchemaDiff_RelationSubjectTypeAdded:
		c := x.RelationSubjectTypeAdded
		return "subject type added " + c.GetRelation().GetName() + " " + c.GetChangedSubjectType().GetSubjectDefinitionName() + " with " + c.GetChangedSubjectType().GetOptionalCaveatName()
	case *v1.ReflectionSchemaDiff_RelationSubjectTypeRemoved:
		c := x.RelationSubjectTypeRemoved
		wild := ""
		if c.GetChangedSubjectType().GetIsPublicWildcard() {
			wild = ":*"
		}
		return "subject type removed " + c.GetRelation().GetName() + " " + c.GetChangedSubjectType().GetSubjectDefinitionName() + wild
	case *v1.ReflectionSchemaDiff_PermissionAdded:
		return "permission added " + x.PermissionAdded.GetName()
	case *v1.ReflectionSchemaDiff_PermissionRemoved:
		return "permission removed " + x.PermissionRemoved.GetName()
	case *v1.ReflectionSchemaDiff_PermissionDocCommentChanged:
		return "permission comment " + x.PermissionDocCommentChanged.GetName() + " " + x.PermissionDocCommentChanged.GetComment()
	case *v1.ReflectionSchemaDiff_PermissionExprChanged:
		return "permission expression " + x.PermissionExprChanged.GetName()
	case *v1.ReflectionSchemaDiff_CaveatAdded:
		return "caveat added " + x.CaveatAdded.GetName()
	case *v1.ReflectionSchemaDiff_CaveatRemoved:
		return "caveat removed " + x.CaveatRemoved.GetName()
	case *v1.ReflectionSchemaDiff_CaveatDocCommentChanged:
		return "caveat comment " + x.CaveatDocCommentChanged.GetName() + " " + x.CaveatDocCommentChanged.GetComment()
	case *v1.ReflectionSchemaDiff_CaveatExprChanged:
		return "caveat expression " + x.CaveatExprChanged.GetName() + " " + x.CaveatExprChanged.GetExpression()
	case *v1.ReflectionSchemaDiff_CaveatParameterAdded:
		return "parameter added " + x.CaveatParameterAdded.GetParentCaveatName() + "." + x.CaveatParameterAdded.GetName()
	case *v1.ReflectionSchemaDiff_CaveatParameterRemoved:
		return "parameter removed " + x.CaveatParameterRemoved.GetParentCaveatName() + "." + x.CaveatParameterRemoved.GetName()
	case *v1.ReflectionSchemaDiff_CaveatParameterTypeChanged:
		c := x.CaveatParameterTypeChanged
		return "parameter type " + c.GetParameter().GetName() + " " + c.GetPreviousType() + " -> " + c.GetParameter().GetType()
	}
	return "unknown"
}

// TestDiffSchema: every kind of difference between the stored schema and a comparison one,
// in SpiceDB's order, through DiffSchema and its experimental alias (which answers the same
// messages); a comparison schema with an error is refused naming it, and with nothing stored
// every part is added.
func TestDiffSchema(t *testing.T) {
	env := startServer(t, Options{})

	empty, err := env.client.DiffSchema(ctxT(t), &v1.DiffSchemaRequest{Consistency: full(), ComparisonSchema: "definition user {}"})
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.GetDiffs()) != 1 || diffString(empty.GetDiffs()[0]) != "definition added user" {
		t.Errorf("diff against no schema: %v", empty.GetDiffs())
	}

	tok := env.writeSchema(diffBefore)
	resp, err := env.client.DiffSchema(ctxT(t), &v1.DiffSchemaRequest{Consistency: full(), ComparisonSchema: diffAfter})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetReadAt().GetToken() != tok.GetToken() {
		t.Errorf("read_at %v, want %v", resp.GetReadAt(), tok)
	}
	want := []string{
		"definition added folder",
		"definition removed old_thing",
		"caveat added fresh",
		"relation added doc#approver",
		"relation added doc#admin",
		"relation removed doc#owner",
		"permission removed admin",
		"relation comment viewer /** who reads */",
		"subject type removed viewer user:*",
		"subject type added viewer user with small",
		"permission expression view",
		"permission comment edit /** may edit */",
		"definition comment user /** a person */",
		"caveat comment small /** limited */",
		"parameter type amount int -> uint",
		"parameter added small.limit",
		"parameter removed small.note",
		"caveat expression small amount < limit",
	}
	var got []string
	for _, d := range resp.GetDiffs() {
		got = append(got, diffString(d))
	}
	if len(got) != len(want) {
		t.Fatalf("diffs:\n%q\nwant:\n%q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("diff %d: %q, want %q", i, got[i], want[i])
		}
	}

	same, err := env.client.DiffSchema(ctxT(t), &v1.DiffSchemaRequest{Consistency: full(), ComparisonSchema: diffBefore})
	if err != nil || len(same.GetDiffs()) != 0 {
		t.Errorf("diff with itself: %v, %v", same.GetDiffs(), err)
	}
	_, err = env.client.DiffSchema(ctxT(t), &v1.DiffSchemaRequest{Consistency: full(), ComparisonSchema: "definition doc { relation x: nosuch }"})
	wantCode(t, err, codes.InvalidArgument, "comparison_schema", "nosuch")

	// The experimental alias answers the same diffs.
	exp, err := authzed.NewClientWithExperimentalAPIs(env.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(testKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exp.Close() })
	old, err := exp.ExperimentalDiffSchema(ctxT(t), &v1.ExperimentalDiffSchemaRequest{Consistency: full(), ComparisonSchema: diffAfter})
	if err != nil {
		t.Fatal(err)
	}
	asStable, err := convert(old, &v1.DiffSchemaResponse{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(asStable, resp) {
		t.Errorf("ExperimentalDiffSchema:\n%s\nDiffSchema:\n%s", prototext.Format(asStable), prototext.Format(resp))
	}
}

// TestExperimentalReflectionAliases: ExperimentalComputablePermissions and
// ExperimentalDependentRelations answer what their stable names answer, refusals included.
func TestExperimentalReflectionAliases(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(`definition user {}
definition folder {
	relation parent: folder
	relation viewer: user
	permission view = viewer + parent->view
}
definition document {
	relation folder: folder
	relation owner: user
	permission edit = owner
	permission view = edit + folder->view
}
`)
	exp, err := authzed.NewClientWithExperimentalAPIs(env.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(testKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exp.Close() })

	dep, err := env.client.DependentRelations(ctxT(t), &v1.DependentRelationsRequest{Consistency: full(), DefinitionName: "document", PermissionName: "view"})
	if err != nil {
		t.Fatal(err)
	}
	oldDep, err := exp.ExperimentalDependentRelations(ctxT(t), &v1.ExperimentalDependentRelationsRequest{Consistency: full(), DefinitionName: "document", PermissionName: "view"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := convert(oldDep, &v1.DependentRelationsResponse{}); err != nil || !proto.Equal(got, dep) || len(dep.GetRelations()) != 6 {
		t.Errorf("ExperimentalDependentRelations %v (%v), DependentRelations %v", got, err, dep)
	}

	comp, err := env.client.ComputablePermissions(ctxT(t), &v1.ComputablePermissionsRequest{Consistency: full(), DefinitionName: "folder", RelationName: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	oldComp, err := exp.ExperimentalComputablePermissions(ctxT(t), &v1.ExperimentalComputablePermissionsRequest{Consistency: full(), DefinitionName: "folder", RelationName: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := convert(oldComp, &v1.ComputablePermissionsResponse{}); err != nil || !proto.Equal(got, comp) || len(comp.GetPermissions()) != 2 {
		t.Errorf("ExperimentalComputablePermissions %v (%v), ComputablePermissions %v", got, err, comp)
	}

	_, err = exp.ExperimentalDependentRelations(ctxT(t), &v1.ExperimentalDependentRelationsRequest{DefinitionName: "document", PermissionName: "owner"})
	wantCode(t, err, codes.InvalidArgument, "is a relation")
	_, err = exp.ExperimentalComputablePermissions(ctxT(t), &v1.ExperimentalComputablePermissionsRequest{DefinitionName: "invoice", RelationName: "x"})
	wantCode(t, err, codes.InvalidArgument, "invoice")
}
