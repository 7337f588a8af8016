package api

import (
	"errors"
	"fmt"
	"io"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
)

func (e *testEnv) importRels(rels []string, perMessage int) (uint64, error) {
	e.t.Helper()
	stream, err := e.client.ImportBulkRelationships(ctxT(e.t))
	if err != nil {
		return 0, err
	}
	for len(rels) > 0 {
		n := min(perMessage, len(rels))
		req := &v1.ImportBulkRelationshipsRequest{}
		for _, s := range rels[:n] {
			req.Relationships = append(req.Relationships, rel(e.t, s))
		}
		if err := stream.Send(req); err != nil {
			break // the server ended the stream; CloseAndRecv says why
		}
		rels = rels[n:]
	}
	resp, err := stream.CloseAndRecv()
	return resp.GetNumLoaded(), err
}

// export reads a whole export from cursor (nil for the start) and returns the relationships
// and the cursor of each response.
func (e *testEnv) export(limit uint32, cursor *v1.Cursor) ([]string, []*v1.Cursor) {
	e.t.Helper()
	stream, err := e.client.ExportBulkRelationships(ctxT(e.t), &v1.ExportBulkRelationshipsRequest{
		Consistency: full(), OptionalLimit: limit, OptionalCursor: cursor})
	if err != nil {
		e.t.Fatal(err)
	}
	var rels []string
	var cursors []*v1.Cursor
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rels, cursors
		}
		if err != nil {
			e.t.Fatalf("ExportBulkRelationships: %v", err)
		}
		for _, r := range resp.GetRelationships() {
			rels = append(rels, relString(r))
		}
		cursors = append(cursors, resp.GetAfterResultCursor())
	}
}

// TestImportExport imports in large batches (few revisions for many relationships), refuses a
// duplicate, and exports in pages that resume at one revision.
func TestImportExport(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(lookupTestSchema)
	var rels []string
	for i := range 12_345 {
		rels = append(rels, fmt.Sprintf("deal:d%05d#viewer@user:u%d", i, i%97))
	}
	before := env.st.Revision()
	n, err := env.importRels(rels, 1000)
	if err != nil || n != 12_345 {
		t.Fatalf("import: %d loaded, %v", n, err)
	}
	if writes := env.st.Revision() - before; writes != 3 {
		t.Errorf("import took %d writes, want 3 batches of at most %d", writes, ImportBatchSize)
	}
	if p, err := env.check(full(), "deal:d12000", "view", "user:u"+fmt.Sprint(12000%97)); err != nil || p != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Errorf("check after import: %v %v", p, err)
	}

	_, err = env.importRels([]string{"deal:new#viewer@user:x", "deal:d00001#viewer@user:u1"}, 10)
	wantCode(t, err, codes.AlreadyExists)

	all, cursors := env.export(1000, nil)
	if len(all) != 12_345 || len(cursors) != 13 || all[0] != rels[0] || all[len(all)-1] != rels[len(rels)-1] {
		t.Fatalf("export: %d relationships in %d responses", len(all), len(cursors))
	}
	// Writes after the first page do not show when resuming from its cursor.
	env.touch("deal:a#viewer@user:late", "deal:zzzzz#viewer@user:late")
	rest, _ := env.export(5000, cursors[0])
	if len(rest) != 12_345-1000 || rest[0] != all[1000] || rest[len(rest)-1] != all[len(all)-1] {
		t.Errorf("resumed export: %d relationships from %q", len(rest), rest[0])
	}
}
