package api

import (
	"errors"
	"io"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// TestExperimentalAliases: the deprecated ExperimentalService names of bulk import, bulk export
// and bulk check, which older clients still call, answer through authzed-go's experimental
// client exactly as their stable PermissionsService counterparts do.
func TestExperimentalAliases(t *testing.T) {
	env := crmEnv(t)
	client, err := authzed.NewClientWithExperimentalAPIs(env.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(testKey)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })

	// Import: a stream of two messages, one atomic load.
	want := []string{"deal:1#owner@user:sato", "deal:1#follower@user:ito", "deal:2#sub_assignee@user:sato", "organization:acme#manager@user:kimura", "deal:2#organization@organization:acme"}
	up, err := client.BulkImportRelationships(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range [][]string{want[:2], want[2:]} {
		var rels []*v1.Relationship
		for _, s := range chunk {
			rels = append(rels, rel(t, s))
		}
		if err := up.Send(&v1.BulkImportRelationshipsRequest{Relationships: rels}); err != nil {
			t.Fatal(err)
		}
	}
	loaded, err := up.CloseAndRecv()
	if err != nil || loaded.GetNumLoaded() != uint64(len(want)) {
		t.Fatalf("BulkImportRelationships: %v, %d loaded, want %d", err, loaded.GetNumLoaded(), len(want))
	}
	// Refused like the stable import: a relation the schema lacks.
	bad, err := client.BulkImportRelationships(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Send(&v1.BulkImportRelationshipsRequest{Relationships: []*v1.Relationship{rel(t, "deal:3#watcher@user:sato")}}); err != nil {
		t.Fatal(err)
	}
	_, err = bad.CloseAndRecv()
	wantCode(t, err, codes.InvalidArgument, "watcher")

	// Export: every relationship, in pages of two, resuming at each page's cursor.
	var got []string
	var cursor *v1.Cursor
	for pages := 0; ; pages++ {
		down, err := client.BulkExportRelationships(ctxT(t), &v1.BulkExportRelationshipsRequest{OptionalLimit: 2, OptionalCursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			resp, err := down.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("BulkExportRelationships: %v", err)
			}
			for _, r := range resp.GetRelationships() {
				got = append(got, relString(r))
				n++
			}
			cursor = resp.GetAfterResultCursor()
		}
		if n == 0 || pages > 10 {
			break
		}
	}
	slices.Sort(got)
	sortedWant := slices.Clone(want)
	slices.Sort(sortedWant)
	if !slices.Equal(got, sortedWant) {
		t.Errorf("BulkExportRelationships: %q, want %q", got, sortedWant)
	}

	// Bulk check: the same answers, in the same order, as CheckBulkPermissions.
	items := []struct{ resource, permission, subject string }{
		{"deal:1", "view", "user:ito"}, {"deal:1", "edit", "user:ito"}, {"deal:2", "edit", "user:kimura"}, {"deal:2", "nosuch", "user:sato"},
	}
	var oldItems []*v1.BulkCheckPermissionRequestItem
	var newItems []*v1.CheckBulkPermissionsRequestItem
	for _, it := range items {
		r := checkReq(t, it.resource, it.permission, it.subject)
		oldItems = append(oldItems, &v1.BulkCheckPermissionRequestItem{Resource: r.Resource, Permission: r.Permission, Subject: r.Subject})
		newItems = append(newItems, &v1.CheckBulkPermissionsRequestItem{Resource: r.Resource, Permission: r.Permission, Subject: r.Subject})
	}
	oldResp, err := client.BulkCheckPermission(ctxT(t), &v1.BulkCheckPermissionRequest{Consistency: full(), Items: oldItems})
	if err != nil {
		t.Fatal(err)
	}
	newResp, err := client.CheckBulkPermissions(ctxT(t), &v1.CheckBulkPermissionsRequest{Consistency: full(), Items: newItems})
	if err != nil {
		t.Fatal(err)
	}
	wantAnswers := []v1.CheckPermissionResponse_Permissionship{
		v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION,
		v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
	}
	if len(oldResp.GetPairs()) != len(items) || len(newResp.GetPairs()) != len(items) {
		t.Fatalf("pairs: %d and %d, want %d", len(oldResp.GetPairs()), len(newResp.GetPairs()), len(items))
	}
	for i, p := range oldResp.GetPairs() {
		np := newResp.GetPairs()[i]
		if i < len(wantAnswers) && p.GetItem().GetPermissionship() != wantAnswers[i] {
			t.Errorf("item %d: %v, want %v", i, p.GetItem().GetPermissionship(), wantAnswers[i])
		}
		if p.GetItem().GetPermissionship() != np.GetItem().GetPermissionship() || p.GetError().GetCode() != np.GetError().GetCode() {
			t.Errorf("item %d: experimental %v/%v, stable %v/%v", i, p.GetItem(), p.GetError(), np.GetItem(), np.GetError())
		}
		if p.GetRequest().GetPermission() != items[i].permission {
			t.Errorf("item %d echoes request %v", i, p.GetRequest())
		}
	}
	if oldResp.GetPairs()[3].GetError() == nil {
		t.Errorf("an unknown permission gave no error: %v", oldResp.GetPairs()[3])
	}
	if oldResp.GetCheckedAt().GetToken() == "" {
		t.Error("no checked_at token")
	}
}
