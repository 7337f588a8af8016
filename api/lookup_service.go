package api

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"sort"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// Lookups compute their whole answer at one revision, sorted by id, and stream the part after
// the cursor. A cursor (the ReadRelationships encoding, see cursor.go) carries the revision,
// a hash of the request it was issued for and the last id sent, so pages fetched one after
// another concatenate to the unpaged answer: no duplicate, no gap.

// LookupResources streams every resource of resource_object_type on which the subject has
// the permission.
func (s permissionsService) LookupResources(req *v1.LookupResourcesRequest, stream v1.PermissionsService_LookupResourcesServer) error {
	if err := validate(req); err != nil {
		return err
	}
	sub := req.GetSubject()
	if sub.GetObject() == nil {
		return invalidf("subject: is required")
	}
	creq := check.ResourcesRequest{
		ResourceType:    req.GetResourceObjectType(),
		Permission:      req.GetPermission(),
		SubjectType:     sub.GetObject().GetObjectType(),
		SubjectID:       sub.GetObject().GetObjectId(),
		SubjectRelation: sub.GetOptionalRelation(),
		Context:         contextMap(req.GetContext()),
	}
	// The hash leaves out the limit: a client may change its page size between pages.
	hash, err := hashLookup("lookup-resources", creq.ResourceType, creq.Permission, creq.SubjectType, creq.SubjectID, creq.SubjectRelation, creq.Context)
	if err != nil {
		return err
	}
	rd, rev, after, err := s.resume(stream.Context(), req.GetOptionalCursor(), hash, req.GetConsistency(), lookupCursorFor)
	if err != nil {
		return err
	}
	defer rd.Close()
	if after != nil {
		creq.After = after.ResourceID
	}
	creq.Limit = int(req.GetOptionalLimit())
	found, err := s.checker.LookupResources(stream.Context(), rd, creq)
	if err != nil {
		return err
	}
	token := encodeZedToken(rev)
	for _, f := range found {
		resp := &v1.LookupResourcesResponse{
			LookedUpAt:        token,
			ResourceObjectId:  f.ID,
			Permissionship:    lookupPermissionship(f.Membership),
			AfterResultCursor: pageCursor{rev: rev, filterHash: hash, after: store.Relationship{ResourceID: f.ID}}.encode(),
		}
		if f.Membership == check.ConditionalPermission {
			resp.PartialCaveatInfo = &v1.PartialCaveatInfo{MissingRequiredContext: f.MissingParams}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// LookupSubjects streams every subject of subject_object_type (with
// optional_subject_relation) that has the permission on the resource: a wildcard result
// carries the subjects it excludes. optional_concrete_limit counts the concrete subjects of a
// page; a wildcard result comes in addition.
func (s permissionsService) LookupSubjects(req *v1.LookupSubjectsRequest, stream v1.PermissionsService_LookupSubjectsServer) error {
	if err := validate(req); err != nil {
		return err
	}
	res := req.GetResource()
	if res == nil {
		return invalidf("resource: is required")
	}
	if req.GetSubjectObjectType() == "" {
		return invalidf("subject_object_type: is required")
	}
	creq := check.SubjectsRequest{
		ResourceType:    res.GetObjectType(),
		ResourceID:      res.GetObjectId(),
		Permission:      req.GetPermission(),
		SubjectType:     req.GetSubjectObjectType(),
		SubjectRelation: req.GetOptionalSubjectRelation(),
		Context:         contextMap(req.GetContext()),
	}
	hash, err := hashLookup("lookup-subjects", creq.ResourceType, creq.ResourceID, creq.Permission, creq.SubjectType, creq.SubjectRelation, creq.Context)
	if err != nil {
		return err
	}
	rd, rev, after, err := s.resume(stream.Context(), req.GetOptionalCursor(), hash, req.GetConsistency(), lookupCursorFor)
	if err != nil {
		return err
	}
	defer rd.Close()
	found, err := s.checker.LookupSubjects(stream.Context(), rd, creq)
	if err != nil {
		return err
	}
	start := 0
	if after != nil {
		start = sort.Search(len(found), func(i int) bool { return found[i].ID > after.SubjectID })
	}
	token := encodeZedToken(rev)
	limit := int(req.GetOptionalConcreteLimit())
	concrete := 0
	for i := start; i < len(found); i++ {
		f := found[i]
		if f.ID != store.Wildcard {
			if limit > 0 && concrete == limit {
				break
			}
			concrete++
		}
		resp := &v1.LookupSubjectsResponse{
			LookedUpAt:         token,
			SubjectObjectId:    f.ID,
			ExcludedSubjectIds: f.Excluded,
			Permissionship:     lookupPermissionship(f.Membership),
			Subject:            resolvedSubject(f.ID, f.Membership, f.MissingParams),
			AfterResultCursor:  pageCursor{rev: rev, filterHash: hash, after: store.Relationship{SubjectID: f.ID}}.encode(),
		}
		if f.Membership == check.ConditionalPermission {
			resp.PartialCaveatInfo = &v1.PartialCaveatInfo{MissingRequiredContext: f.MissingParams}
		}
		for _, id := range f.Excluded {
			resp.ExcludedSubjects = append(resp.ExcludedSubjects, resolvedSubject(id, check.HasPermission, nil))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// ExpandPermissionTree returns the userset tree of the permission on the resource.
func (s permissionsService) ExpandPermissionTree(ctx context.Context, req *v1.ExpandPermissionTreeRequest) (*v1.ExpandPermissionTreeResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	res := req.GetResource()
	if res == nil {
		return nil, invalidf("resource: is required")
	}
	rd, rev, err := s.snapshotCtx(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	tree, err := s.checker.Expand(ctx, rd, res.GetObjectType(), res.GetObjectId(), req.GetPermission())
	if err != nil {
		return nil, err
	}
	return &v1.ExpandPermissionTreeResponse{ExpandedAt: encodeZedToken(rev), TreeRoot: treeToProto(tree)}, nil
}

func treeToProto(n *check.ExpandNode) *v1.PermissionRelationshipTree {
	t := &v1.PermissionRelationshipTree{
		ExpandedObject:   &v1.ObjectReference{ObjectType: n.ResourceType, ObjectId: n.ResourceID},
		ExpandedRelation: n.Relation,
	}
	if n.Operation == check.ExpandLeaf {
		leaf := &v1.DirectSubjectSet{}
		for _, s := range n.Subjects {
			leaf.Subjects = append(leaf.Subjects, &v1.SubjectReference{
				Object: &v1.ObjectReference{ObjectType: s.Type, ObjectId: s.ID}, OptionalRelation: s.Relation})
		}
		t.TreeType = &v1.PermissionRelationshipTree_Leaf{Leaf: leaf}
		return t
	}
	op := map[check.ExpandOperation]v1.AlgebraicSubjectSet_Operation{
		check.ExpandUnion:        v1.AlgebraicSubjectSet_OPERATION_UNION,
		check.ExpandIntersection: v1.AlgebraicSubjectSet_OPERATION_INTERSECTION,
		check.ExpandExclusion:    v1.AlgebraicSubjectSet_OPERATION_EXCLUSION,
	}[n.Operation]
	set := &v1.AlgebraicSubjectSet{Operation: op}
	for _, ch := range n.Children {
		set.Children = append(set.Children, treeToProto(ch))
	}
	t.TreeType = &v1.PermissionRelationshipTree_Intermediate{Intermediate: set}
	return t
}

// lookupCursorFor is what resume names when a lookup's cursor was issued for another request.
const lookupCursorFor = "request; send the resource, permission, subject and context of the first page"

// hashLookup identifies a lookup request for the cursor check.
func hashLookup(kind string, fields ...any) (uint64, error) {
	b, err := json.Marshal(append([]any{kind}, fields...))
	if err != nil {
		return 0, invalidf("context: %v", err)
	}
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64(), nil
}

func contextMap(ctx *structpb.Struct) map[string]any {
	if ctx == nil || len(ctx.GetFields()) == 0 {
		return nil
	}
	return ctx.AsMap()
}

func lookupPermissionship(m check.Membership) v1.LookupPermissionship {
	if m == check.ConditionalPermission {
		return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION
}

func resolvedSubject(id string, m check.Membership, missing []string) *v1.ResolvedSubject {
	rs := &v1.ResolvedSubject{SubjectObjectId: id, Permissionship: lookupPermissionship(m)}
	if m == check.ConditionalPermission {
		rs.PartialCaveatInfo = &v1.PartialCaveatInfo{MissingRequiredContext: missing}
	}
	return rs
}
