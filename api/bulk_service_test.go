package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	if writes := env.st.Revision() - before; writes != 1 {
		t.Errorf("import took %d writes, want the stream as one", writes)
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

// TestImportIsAllOrNothing sends streams that fail at their end in each way a stream can fail
// (a relationship that exists, one carried twice, one the schema refuses, one past the size
// bound, a client that gives up) and asserts that none of them wrote anything.
func TestImportIsAllOrNothing(t *testing.T) {
	env := startServer(t, Options{MaxImportRelationships: 7_000})
	env.writeSchema(lookupTestSchema)
	env.touch("deal:old#viewer@user:u1")
	stream := func(n int, last string) []string {
		var rels []string
		for i := range n {
			rels = append(rels, fmt.Sprintf("deal:i%05d#viewer@user:u%d", i, i%7))
		}
		if last != "" {
			rels = append(rels, last)
		}
		return rels
	}
	for _, tc := range []struct {
		name string
		rels []string
		code codes.Code
		msg  string
	}{
		{"exists", stream(6_000, "deal:old#viewer@user:u1"), codes.AlreadyExists, "deal:old#viewer@user:u1"},
		{"twice", stream(6_000, "deal:i00005#viewer@user:u5"), codes.AlreadyExists, "first at relationships[5] of message 0"},
		{"refused by the schema", stream(6_000, "deal:x#no_such_relation@user:u1"), codes.InvalidArgument, "no_such_relation"},
		{"too long", stream(7_001, ""), codes.InvalidArgument, "more than 7000 relationships"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := env.export(1000, nil)
			n, err := env.importRels(tc.rels, 300)
			wantCode(t, err, tc.code)
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name %q", err, tc.msg)
			}
			// A refused write may still take a revision (its raft entry is applied as a
			// refusal); what matters is that no relationship of it is stored.
			if after, _ := env.export(1000, nil); n != 0 || len(after) != len(before) {
				t.Errorf("failed import loaded %d; %d relationships stored before, %d after: want nothing written", n, len(before), len(after))
			}
			if p, err := env.check(full(), "deal:i00000", "view", "user:u0"); err != nil || p != v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION {
				t.Errorf("a relationship of the failed stream is visible: %v %v", p, err)
			}
		})
	}

	t.Run("client gives up", func(t *testing.T) {
		before := env.st.Revision()
		stored, _ := env.export(1000, nil)
		ctx, cancel := context.WithCancel(ctxT(t))
		s, err := env.client.ImportBulkRelationships(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req := &v1.ImportBulkRelationshipsRequest{}
		for i, r := range stream(6_000, "") {
			req.Relationships = append(req.Relationships, rel(t, r))
			if len(req.Relationships) == 1_000 || i == 5_999 {
				if err := s.Send(req); err != nil {
					t.Fatal(err)
				}
				req = &v1.ImportBulkRelationshipsRequest{}
			}
		}
		cancel()
		if _, err := s.CloseAndRecv(); status.Code(err) != codes.Canceled {
			t.Errorf("cancelled import: %v, want CANCELED", err)
		}
		// The server has seen the cancellation once a later request is answered after it;
		// the stream was never applied, so the revision must not move.
		env.touch("deal:after#viewer@user:u1")
		if got := env.st.Revision(); got != before+1 {
			t.Errorf("revision %d -> %d after a cancelled import and one write: want one write", before, got)
		}
		if after, _ := env.export(1000, nil); len(after) != len(stored)+1 {
			t.Errorf("%d relationships stored before, %d after a cancelled import and one write", len(stored), len(after))
		}
	})

	// The bound is inclusive: a stream of exactly MaxImportRelationships loads.
	if n, err := env.importRels(stream(7_000, ""), 1_000); err != nil || n != 7_000 {
		t.Fatalf("import of exactly the bound: %d, %v", n, err)
	}
}

// BenchmarkImportStream imports one stream of the default bound (30,000 relationships with
// UUID ids) into an empty single-node store per iteration: the time one atomic import holds
// the writer.
func BenchmarkImportStream(b *testing.B) {
	var rels []string
	for i := range DefaultMaxImportRelationships {
		rels = append(rels, fmt.Sprintf("deal:3f2b9c4e-1a2b-4c3d-9e8f-%012d#viewer@user:7a6b5c4d-1a2b-4c3d-9e8f-%012d", i, i%97))
	}
	for b.Loop() {
		b.StopTimer()
		env := startServer(b, Options{})
		env.writeSchema(lookupTestSchema)
		b.StartTimer()
		if n, err := env.importRels(rels, 1_000); err != nil || n != uint64(len(rels)) {
			b.Fatalf("import: %d, %v", n, err)
		}
	}
}
