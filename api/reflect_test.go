package api

import (
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

const reflectSchema = `/** checks the weekday */
caveat on_day(day string, allowed list<string>) {
	day in allowed
}

definition user {}

/** a team of users */
definition team {
	relation member: user | team#member
}

definition deal {
	/** at most five */
	relation sub_assignee: user limit 5
	relation viewer: user:* | team#member | user with on_day

	/** who may see it */
	permission view = sub_assignee + viewer
}
`

// TestReflectSchema: the schema's shape through ReflectSchema and its experimental alias,
// with comments in the /** */ form (a limit as its kengen:limit line), each subject type's
// kind, caveat parameters, the revision read at, and prefix filters.
func TestReflectSchema(t *testing.T) {
	env := startServer(t, Options{})
	first := env.writeSchema(reflectSchema)
	resp, err := env.client.ReflectSchema(ctxT(t), &v1.ReflectSchemaRequest{Consistency: full()})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetReadAt().GetToken() != first.GetToken() {
		t.Errorf("read_at %v, want %v", resp.GetReadAt(), first)
	}
	var names []string
	for _, d := range resp.GetDefinitions() {
		names = append(names, d.GetName())
	}
	if len(names) != 3 || names[0] != "user" || names[1] != "team" || names[2] != "deal" {
		t.Fatalf("definitions %v, want user, team, deal in schema order", names)
	}
	team, deal := resp.GetDefinitions()[1], resp.GetDefinitions()[2]
	if team.GetComment() != "/** a team of users */" {
		t.Errorf("team comment %q", team.GetComment())
	}
	member := team.GetRelations()[0].GetSubjectTypes()
	if len(member) != 2 || !member[0].GetIsTerminalSubject() || member[1].GetOptionalRelationName() != "member" || member[1].GetSubjectDefinitionName() != "team" {
		t.Errorf("team#member subject types %v", member)
	}
	sub, viewer := deal.GetRelations()[0], deal.GetRelations()[1]
	if sub.GetComment() != "/**\n * at most five\n * kengen:limit 5\n */" || sub.GetParentDefinitionName() != "deal" {
		t.Errorf("sub_assignee %q (parent %q)", sub.GetComment(), sub.GetParentDefinitionName())
	}
	vt := viewer.GetSubjectTypes()
	if len(vt) != 3 || !vt[0].GetIsPublicWildcard() || vt[1].GetOptionalRelationName() != "member" || vt[2].GetOptionalCaveatName() != "on_day" || !vt[2].GetIsTerminalSubject() {
		t.Errorf("deal#viewer subject types %v", vt)
	}
	if p := deal.GetPermissions(); len(p) != 1 || p[0].GetName() != "view" || p[0].GetComment() != "/** who may see it */" {
		t.Errorf("deal permissions %v", p)
	}
	c := resp.GetCaveats()
	if len(c) != 1 || c[0].GetName() != "on_day" || len(c[0].GetParameters()) != 2 || c[0].GetParameters()[1].GetType() != "list<string>" ||
		c[0].GetParameters()[0].GetParentCaveatName() != "on_day" || c[0].GetExpression() != "day in allowed" {
		t.Errorf("caveats %v", c)
	}

	// Filters: prefixes, any filter including a part.
	filtered, err := env.client.ReflectSchema(ctxT(t), &v1.ReflectSchemaRequest{OptionalFilters: []*v1.ReflectionSchemaFilter{
		{OptionalDefinitionNameFilter: "de", OptionalPermissionNameFilter: "vi"},
		{OptionalCaveatNameFilter: "on_"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if d := filtered.GetDefinitions(); len(d) != 1 || d[0].GetName() != "deal" || len(d[0].GetRelations()) != 0 || len(d[0].GetPermissions()) != 1 {
		t.Errorf("filtered definitions %v", d)
	}
	if len(filtered.GetCaveats()) != 1 {
		t.Errorf("filtered caveats %v", filtered.GetCaveats())
	}
	_, err = env.client.ReflectSchema(ctxT(t), &v1.ReflectSchemaRequest{OptionalFilters: []*v1.ReflectionSchemaFilter{{OptionalRelationNameFilter: "x"}}})
	wantCode(t, err, codes.InvalidArgument, "optional_definition_name_filter")

	// At an exact snapshot, the schema of that revision.
	env.writeSchema("definition user {}\n")
	old, err := env.client.ReflectSchema(ctxT(t), &v1.ReflectSchemaRequest{Consistency: exact(first)})
	if err != nil || len(old.GetDefinitions()) != 3 {
		t.Fatalf("at the first schema's revision: %v, %d definitions", err, len(old.GetDefinitions()))
	}

	// The experimental alias answers the same.
	exp, err := authzed.NewClientWithExperimentalAPIs(env.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(testKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exp.Close() })
	er, err := exp.ExperimentalReflectSchema(ctxT(t), &v1.ExperimentalReflectSchemaRequest{Consistency: exact(first)})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := protojson.Marshal(er)
	b, _ := protojson.Marshal(old)
	if string(a) != string(b) {
		t.Errorf("ExperimentalReflectSchema:\n%s\nReflectSchema:\n%s", a, b)
	}
}

// TestDependentAndComputable: DependentRelations follows a permission's inputs through
// permissions and arrows (onto the tupleset's subject types); ComputablePermissions follows a
// relation's uses the other way, with a definition prefix filter.
func TestDependentAndComputable(t *testing.T) {
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
	refs := func(rs []*v1.ReflectionRelationReference) []string {
		var out []string
		for _, r := range rs {
			s := r.GetDefinitionName() + "#" + r.GetRelationName()
			if r.GetIsPermission() {
				s += "(p)"
			}
			out = append(out, s)
		}
		return out
	}
	dep, err := env.client.DependentRelations(ctxT(t), &v1.DependentRelationsRequest{DefinitionName: "document", PermissionName: "view"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := refs(dep.GetRelations()), []string{"document#edit(p)", "document#folder", "document#owner", "folder#parent", "folder#view(p)", "folder#viewer"}; !slices.Equal(got, want) {
		t.Errorf("DependentRelations(document#view) = %v, want %v", got, want)
	}
	comp, err := env.client.ComputablePermissions(ctxT(t), &v1.ComputablePermissionsRequest{DefinitionName: "folder", RelationName: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := refs(comp.GetPermissions()), []string{"document#view(p)", "folder#view(p)"}; !slices.Equal(got, want) {
		t.Errorf("ComputablePermissions(folder#viewer) = %v, want %v", got, want)
	}
	comp, err = env.client.ComputablePermissions(ctxT(t), &v1.ComputablePermissionsRequest{DefinitionName: "folder", RelationName: "viewer", OptionalDefinitionNameFilter: "doc"})
	if err != nil {
		t.Fatal(err)
	}
	if got := refs(comp.GetPermissions()); !slices.Equal(got, []string{"document#view(p)"}) {
		t.Errorf("ComputablePermissions with filter doc = %v", got)
	}
	_, err = env.client.DependentRelations(ctxT(t), &v1.DependentRelationsRequest{DefinitionName: "document", PermissionName: "owner"})
	wantCode(t, err, codes.InvalidArgument, "is a relation")
	_, err = env.client.ComputablePermissions(ctxT(t), &v1.ComputablePermissionsRequest{DefinitionName: "invoice", RelationName: "x"})
	wantCode(t, err, codes.InvalidArgument, "invoice")
}
