package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// WriteRelationships applies the updates if every precondition holds: all or nothing.
func (s permissionsService) WriteRelationships(ctx context.Context, req *v1.WriteRelationshipsRequest) (*v1.WriteRelationshipsResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	updates, err := s.updatesFromProto(req.GetUpdates())
	if err != nil {
		return nil, err
	}
	pre, err := s.preconditionsFromProto(req.GetOptionalPreconditions())
	if err != nil {
		return nil, err
	}
	res, err := s.writer.Apply(ctx, &store.Batch{Preconditions: pre, Updates: updates})
	if err != nil {
		return nil, err
	}
	return &v1.WriteRelationshipsResponse{WrittenAt: encodeZedToken(res.Revision)}, nil
}

// DeleteRelationships deletes what the filter matches if every precondition holds. With
// optional_limit, more matches than the limit fail the call unless partial deletions are
// allowed, in which case the first optional_limit are deleted and the progress says PARTIAL.
func (s permissionsService) DeleteRelationships(ctx context.Context, req *v1.DeleteRelationshipsRequest) (*v1.DeleteRelationshipsResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	if req.GetOptionalCursor() != nil {
		return nil, fmt.Errorf("%w: optional_cursor of DeleteRelationships; use optional_limit with optional_allow_partial_deletions and repeat the call", errUnimplemented)
	}
	f, err := filterFromProto("relationship_filter", req.GetRelationshipFilter(), true)
	if err != nil {
		return nil, err
	}
	limit := int(req.GetOptionalLimit())
	if limit > s.opts.MaxDeleteLimit {
		return nil, invalidf("optional_limit: %d is above this server's maximum of %d", limit, s.opts.MaxDeleteLimit)
	}
	if req.GetOptionalAllowPartialDeletions() && limit == 0 {
		return nil, invalidf("optional_allow_partial_deletions: needs optional_limit, the size of one partial deletion")
	}
	pre, err := s.preconditionsFromProto(req.GetOptionalPreconditions())
	if err != nil {
		return nil, err
	}
	res, err := s.writer.Apply(ctx, &store.Batch{
		Preconditions:         pre,
		DeleteFilter:          &f,
		DeleteLimit:           limit,
		AllowPartialDeletions: req.GetOptionalAllowPartialDeletions(),
	})
	if errors.Is(err, store.ErrDeleteLimit) {
		return nil, fmt.Errorf("%w (optional_limit %d); raise optional_limit or set optional_allow_partial_deletions and repeat the call", err, limit)
	}
	if err != nil {
		return nil, err
	}
	progress := v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE
	if res.Partial {
		progress = v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL
	}
	return &v1.DeleteRelationshipsResponse{
		DeletedAt:                 encodeZedToken(res.Revision),
		DeletionProgress:          progress,
		RelationshipsDeletedCount: uint64(res.Deleted),
	}, nil
}

// ReadRelationships streams the relationships the filter matches, in the store's order. Each
// response carries a cursor that resumes after it, at the same revision.
func (s permissionsService) ReadRelationships(req *v1.ReadRelationshipsRequest, stream v1.PermissionsService_ReadRelationshipsServer) error {
	if err := validate(req); err != nil {
		return err
	}
	f, err := filterFromProto("relationship_filter", req.GetRelationshipFilter(), false)
	if err != nil {
		return err
	}
	limit := int(req.GetOptionalLimit())
	if limit > s.opts.MaxReadLimit {
		return invalidf("optional_limit: %d is above this server's maximum of %d; page with optional_cursor", limit, s.opts.MaxReadLimit)
	}
	fh := hashFilter(f)

	rd, rev, after, err := s.resume(stream.Context(), req.GetOptionalCursor(), fh, req.GetConsistency(),
		"relationship_filter; send the filter of the first page")
	if err != nil {
		return err
	}
	defer rd.Close()

	token := encodeZedToken(rev)
	var sendErr error
	err = rd.Query(f, after, limit, func(r *store.Relationship) bool {
		rel, err := relationshipToProto(r)
		if err != nil {
			sendErr = err
			return false
		}
		sendErr = stream.Send(&v1.ReadRelationshipsResponse{
			ReadAt:            token,
			Relationship:      rel,
			AfterResultCursor: pageCursor{rev: rev, filterHash: fh, after: *r}.encode(),
		})
		return sendErr == nil
	})
	if sendErr != nil {
		return sendErr
	}
	return err
}

// CheckPermission answers whether the subject has the permission (or relation) on the
// resource.
func (s permissionsService) CheckPermission(ctx context.Context, req *v1.CheckPermissionRequest) (*v1.CheckPermissionResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	creq, err := checkRequestFromProto("", req.GetResource(), req.GetPermission(), req.GetSubject(), req.GetContext())
	if err != nil {
		return nil, err
	}
	creq.Explain = wantsTrace(ctx, req.GetWithTracing())
	rd, rev, err := s.snapshotCtx(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	start := time.Now()
	res, err := s.checker.Check(ctx, rd, creq)
	if err != nil {
		return nil, err
	}
	p, partial := permissionship(res)
	resp := &v1.CheckPermissionResponse{CheckedAt: encodeZedToken(rev), Permissionship: p, PartialCaveatInfo: partial}
	if creq.Explain {
		resp.DebugTrace = debugInformation(rd.Schema(), creq, res, time.Since(start))
	}
	return resp, nil
}

// CheckBulkPermissions answers many checks at one revision. A malformed item fails the call;
// an item that fails to evaluate (an unknown permission, say) carries its own error and the
// others are answered.
func (s permissionsService) CheckBulkPermissions(ctx context.Context, req *v1.CheckBulkPermissionsRequest) (*v1.CheckBulkPermissionsResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	items := req.GetItems()
	if len(items) > s.opts.MaxCheckBulkItems {
		return nil, invalidf("items: %d items in one request; at most %d are allowed, split the check", len(items), s.opts.MaxCheckBulkItems)
	}
	reqs := make([]check.Request, len(items))
	for i, it := range items {
		creq, err := checkRequestFromProto(fmt.Sprintf("items[%d].", i), it.GetResource(), it.GetPermission(), it.GetSubject(), it.GetContext())
		if err != nil {
			return nil, err
		}
		creq.Explain = wantsTrace(ctx, req.GetWithTracing())
		reqs[i] = creq
	}
	rd, rev, err := s.snapshotCtx(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	start := time.Now()
	results := s.checker.CheckBulk(ctx, rd, reqs)
	took := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pairs := make([]*v1.CheckBulkPermissionsPair, len(items))
	for i, r := range results {
		pair := &v1.CheckBulkPermissionsPair{Request: items[i]}
		if r.Err != nil {
			st := s.statusFor("/authzed.api.v1.PermissionsService/CheckBulkPermissions", requestIDOf(ctx), r.Err)
			pair.Response = &v1.CheckBulkPermissionsPair_Error{Error: st.Proto()}
		} else {
			p, partial := permissionship(r.Result)
			item := &v1.CheckBulkPermissionsResponseItem{Permissionship: p, PartialCaveatInfo: partial}
			if reqs[i].Explain {
				item.DebugTrace = debugInformation(rd.Schema(), reqs[i], r.Result, took)
			}
			pair.Response = &v1.CheckBulkPermissionsPair_Item{Item: item}
		}
		pairs[i] = pair
	}
	return &v1.CheckBulkPermissionsResponse{CheckedAt: encodeZedToken(rev), Pairs: pairs}, nil
}
