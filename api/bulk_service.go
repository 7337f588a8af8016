package api

import (
	"errors"
	"fmt"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/store"
)

// ImportBatchSize is how many relationships one write of ImportBulkRelationships carries: one
// Writer.Apply (one Raft entry) per batch, not one per relationship.
const ImportBatchSize = 5_000

// DefaultExportPage is the number of relationships per ExportBulkRelationships response when
// the request sets no optional_limit.
const DefaultExportPage = 1_000

// ImportBulkRelationships creates the relationships the client streams, ImportBatchSize per
// write, each batch all or nothing. A relationship that already exists fails the call
// (ALREADY_EXISTS), as in SpiceDB; the batches written before the failing one stay written, and
// the error says how many relationships were loaded.
func (s permissionsService) ImportBulkRelationships(stream v1.PermissionsService_ImportBulkRelationshipsServer) error {
	ctx := stream.Context()
	var loaded uint64
	batch := make([]store.Update, 0, ImportBatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := s.writer.Apply(ctx, &store.Batch{Updates: batch}); err != nil {
			return fmt.Errorf("importing relationships %d to %d (the %d before them are written): %w", loaded+1, loaded+uint64(len(batch)), loaded, err)
		}
		loaded += uint64(len(batch))
		batch = batch[:0]
		return nil
	}
	for msg := 0; ; msg++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := validate(req); err != nil {
			return err
		}
		for i, r := range req.GetRelationships() {
			rel, err := relationshipFromProto(fmt.Sprintf("relationships[%d] of message %d", i, msg), r)
			if err != nil {
				return err
			}
			batch = append(batch, store.Update{Op: store.OpCreate, Relationship: rel})
			if len(batch) == ImportBatchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return stream.SendAndClose(&v1.ImportBulkRelationshipsResponse{NumLoaded: loaded})
}

// ExportBulkRelationships streams every relationship (or those optional_relationship_filter
// matches) at one revision, optional_limit per response, in the store's order. Each response's
// cursor resumes after it at the same revision.
func (s permissionsService) ExportBulkRelationships(req *v1.ExportBulkRelationshipsRequest, stream v1.PermissionsService_ExportBulkRelationshipsServer) error {
	if err := validate(req); err != nil {
		return err
	}
	var f store.Filter
	if pf := req.GetOptionalRelationshipFilter(); pf != nil {
		var err error
		if f, err = filterFromProto("optional_relationship_filter", pf, false); err != nil {
			return err
		}
	}
	page := int(req.GetOptionalLimit())
	if page == 0 {
		page = DefaultExportPage
	}
	fh := hashFilter(f)

	rd, rev, after, err := s.resume(stream.Context(), req.GetOptionalCursor(), fh, req.GetConsistency(),
		"optional_relationship_filter; send the filter of the first call")
	if err != nil {
		return err
	}
	defer rd.Close()

	var (
		rels    []*v1.Relationship
		last    store.Relationship
		sendErr error
	)
	send := func() error {
		if len(rels) == 0 {
			return nil
		}
		err := stream.Send(&v1.ExportBulkRelationshipsResponse{
			Relationships:     rels,
			AfterResultCursor: pageCursor{rev: rev, filterHash: fh, after: last}.encode(),
		})
		rels = make([]*v1.Relationship, 0, page)
		return err
	}
	err = rd.Query(f, after, 0, func(r *store.Relationship) bool {
		p, err := relationshipToProto(r)
		if err != nil {
			sendErr = err
			return false
		}
		rels, last = append(rels, p), *r
		if len(rels) == page {
			sendErr = send()
		}
		return sendErr == nil
	})
	if sendErr != nil {
		return sendErr
	}
	if err != nil {
		return err
	}
	return send()
}
