package pgsync

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// A caveat whose context comes from a jsonb column and an expiration from a timestamptz
// column, in the copy and in the stream; NULL gives none.
func TestSyncCaveatAndExpiration(t *testing.T) {
	c := newCRM(t)
	k := startKengen(t)
	if _, err := k.client.WriteSchema(context.Background(), &v1.WriteSchemaRequest{Schema: "use expiration\n\n" +
		"caveat office_hours(hour int) {\n\thour >= 9 && hour < 18\n}\n\n" +
		strings.Replace(crmSchema, "relation sub_assignee: user limit 5", "relation sub_assignee: user limit 5\n\trelation guest: user with office_hours\n\trelation temp: user with expiration\n\tpermission guest_view = guest", 1)}); err != nil {
		t.Fatal(err)
	}
	c.seed()
	c.exec(`CREATE TABLE deal_guests (deal_id text, user_id text, ctx jsonb, until timestamptz, PRIMARY KEY (deal_id, user_id));
		ALTER TABLE deal_guests REPLICA IDENTITY FULL;
		INSERT INTO deal_guests VALUES ('d1', 'mori', '{"hour": 10}', '2030-01-02 03:04:05+00')`)
	text := `tables:
  - table: deal_guests
    relationships:
      - relationship: deal:{deal_id}#guest@user:{user_id}
        caveat: office_hours
        caveat_context: ctx
      - relationship: deal:{deal_id}#temp@user:{user_id}
        expiration: until
`
	file := filepath.Join(t.TempDir(), "guests.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseMapping(file, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	m.Slot, m.Publication = c.mapping.Slot, c.mapping.Publication
	opts := c.opts(k)
	opts.Mapping, opts.MappingFile = m, file
	r := c.start(opts, nil)
	r.wait(t)
	got := k.relationships(t)
	for _, want := range []string{`deal:d1#guest@user:mori[office_hours:{"hour":10}]`, "deal:d1#temp@user:mori[expiration:2030-01-02T03:04:05Z]"} {
		if !slices.Contains(got, want) {
			t.Errorf("the copy lacks %s: %v", want, got)
		}
	}
	// The context changes: the relationship is touched with the new one; NULLs drop them.
	c.exec(`UPDATE deal_guests SET ctx = '{"hour": 20}', until = NULL WHERE user_id = 'mori'`)
	tok := r.wait(t)
	got = k.relationships(t)
	for _, want := range []string{`deal:d1#guest@user:mori[office_hours:{"hour":20}]`, "deal:d1#temp@user:mori"} {
		if !slices.Contains(got, want) {
			t.Errorf("after the update, no %s: %v", want, got)
		}
	}
	ctx, _ := structpb.NewStruct(map[string]any{})
	resp, err := k.client.CheckPermission(context.Background(), &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: tok}},
		Resource:    &v1.ObjectReference{ObjectType: "deal", ObjectId: "d1"}, Permission: "guest_view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "mori"}}, Context: ctx,
	})
	if err == nil && resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Error("hour 20 is outside office hours, yet mori may view")
	}
	if diffs, err := Check(context.Background(), opts); err != nil || len(diffs) > 0 {
		t.Fatalf("Check: %v %v", diffs, err)
	}
}
