package api

import (
	"errors"
	"fmt"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/store"
)

// DefaultExportPage is the number of relationships per ExportBulkRelationships response when
// the request sets no optional_limit.
const DefaultExportPage = 1_000

// ImportBulkRelationships creates the relationships the client streams as one write: every
// one of them or none, as SpiceDB commits a stream in one transaction. A relationship that
// already exists, or one the stream carries twice, fails the call with ALREADY_EXISTS (as in
// SpiceDB) and nothing is written. A stream of more than Options.MaxImportRelationships
// relationships is refused as soon as it passes the bound, with nothing written: split the
// import into several streams (zed's restore sends 10,000 relationships per stream by
// default). The one write is one Raft entry, so a write that encodes larger than a node can
// forward (raftnode.MaxCommandBytes) is refused too.
func (s permissionsService) ImportBulkRelationships(stream v1.PermissionsService_ImportBulkRelationshipsServer) error {
	ctx := stream.Context()
	limit := s.opts.MaxImportRelationships
	var updates []store.Update
	// first maps each relationship's identity (without caveat and expiration) to where the
	// stream first carried it, to name both places of a duplicate.
	first := map[string]string{}
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
			at := fmt.Sprintf("relationships[%d] of message %d", i, msg)
			rel, err := relationshipFromProto(at, r)
			if err != nil {
				return err
			}
			if len(updates) == limit {
				return invalidf("import: the stream carries more than %d relationships (%s is number %d); one stream is one atomic write of at most %d, nothing was written: split the import into several streams", limit, at, limit+1, limit)
			}
			id := identity(rel).String()
			if prev, dup := first[id]; dup {
				return status.Errorf(codes.AlreadyExists, "import: %s carries %s again (first at %s); nothing was written", at, id, prev)
			}
			first[id] = at
			updates = append(updates, store.Update{Op: store.OpCreate, Relationship: rel})
		}
	}
	if len(updates) > 0 {
		if _, err := s.writer.Apply(ctx, &store.Batch{Updates: updates}); err != nil {
			return fmt.Errorf("importing %d relationships (none was written): %w", len(updates), err)
		}
	}
	return stream.SendAndClose(&v1.ImportBulkRelationshipsResponse{NumLoaded: uint64(len(updates))})
}

// identity is rel without its caveat and expiration: what makes two relationships the same.
func identity(rel store.Relationship) store.Relationship {
	return store.Relationship{
		ResourceType: rel.ResourceType, ResourceID: rel.ResourceID, Relation: rel.Relation,
		SubjectType: rel.SubjectType, SubjectID: rel.SubjectID, SubjectRelation: rel.SubjectRelation,
	}
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
