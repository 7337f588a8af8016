package api

import (
	"fmt"
	"strings"
	"unicode"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// This file turns validated Authzed messages into store and check values and back. Field
// names in errors are the proto's own (snake_case paths), so a client can find them.

// validate runs the rules the Authzed protos carry: the generated protoc-gen-validate
// Validate method, then the hand-written rules authzed-go adds (HandwrittenValidate). The
// nested error the generated code returns is flattened to one field path in the proto's own
// spelling, `updates[0].relationship.subject.object.object_id: ...`.
func validate(m any) error {
	if v, ok := m.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%w: %w", errInvalidArgument, flatValidationError{err})
		}
	}
	if v, ok := m.(interface{ HandwrittenValidate() error }); ok {
		if err := v.HandwrittenValidate(); err != nil {
			return fmt.Errorf("%w: %w", errInvalidArgument, flatValidationError{err})
		}
	}
	return nil
}

// flatValidationError prints a generated validation error as one path and its reason.
type flatValidationError struct{ err error }

func (f flatValidationError) Unwrap() error { return f.err }

func (f flatValidationError) Error() string {
	var (
		path   []string
		reason string
		err    = f.err
	)
	for err != nil {
		v, ok := err.(interface {
			Field() string
			Reason() string
			Cause() error
		})
		if !ok {
			reason = err.Error()
			break
		}
		path = append(path, snakeCase(v.Field()))
		reason = v.Reason()
		err = v.Cause()
	}
	if len(path) == 0 {
		return reason
	}
	if hint := fieldHints[path[len(path)-1]]; hint != "" && strings.Contains(reason, "regex") {
		reason = hint
	}
	return strings.Join(path, ".") + ": " + reason
}

// fieldHints replace the regular expressions of the protos' rules with what they mean.
var fieldHints = map[string]string{
	"object_id":            "must be 1 to 1024 of the characters a-z A-Z 0-9 / _ | - = + (or * for a wildcard subject)",
	"optional_resource_id": "must be 1 to 1024 of the characters a-z A-Z 0-9 / _ | - = +",
	"object_type":          "must be 3 to 64 characters a-z 0-9 _, starting with a letter, not ending with _ (optionally prefixed by prefix/)",
	"resource_type":        "must be 3 to 64 characters a-z 0-9 _, starting with a letter, not ending with _ (optionally prefixed by prefix/)",
	"subject_type":         "must be 3 to 64 characters a-z 0-9 _, starting with a letter, not ending with _ (optionally prefixed by prefix/)",
	"relation":             "must be 3 to 64 characters a-z 0-9 _, starting with a letter, not ending with _",
	"optional_relation":    "must be empty or 3 to 64 characters a-z 0-9 _, starting with a letter, not ending with _",
	"permission":           "must be 3 to 64 characters a-z 0-9 _, starting with a letter, not ending with _",
}

// snakeCase turns the generated Go field name (`OptionalResourceId`, `Updates[3]`) into the
// proto's (`optional_resource_id`, `updates[3]`).
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 && s[i-1] != '[' {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidArgument, fmt.Sprintf(format, args...))
}

// relationshipFromProto converts a validated relationship.
func relationshipFromProto(field string, r *v1.Relationship) (store.Relationship, error) {
	if r == nil || r.GetResource() == nil || r.GetSubject().GetObject() == nil {
		return store.Relationship{}, invalidf("%s: resource, relation and subject are required", field)
	}
	rel := store.Relationship{
		ResourceType:    r.GetResource().GetObjectType(),
		ResourceID:      r.GetResource().GetObjectId(),
		Relation:        r.GetRelation(),
		SubjectType:     r.GetSubject().GetObject().GetObjectType(),
		SubjectID:       r.GetSubject().GetObject().GetObjectId(),
		SubjectRelation: r.GetSubject().GetOptionalRelation(),
	}
	if rel.ResourceID == store.Wildcard {
		return store.Relationship{}, invalidf("%s.resource.object_id: a resource cannot be the wildcard %q", field, store.Wildcard)
	}
	if c := r.GetOptionalCaveat(); c != nil {
		if c.GetCaveatName() == "" {
			return store.Relationship{}, invalidf("%s.optional_caveat.caveat_name: is empty; name the caveat or leave optional_caveat unset", field)
		}
		rel.Caveat = c.GetCaveatName()
		if ctx := c.GetContext(); ctx != nil && len(ctx.GetFields()) > 0 {
			rel.CaveatContext = ctx.AsMap()
		}
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		if err := e.CheckValid(); err != nil {
			return store.Relationship{}, invalidf("%s.optional_expires_at: %v", field, err)
		}
		rel.Expiration = e.AsTime()
	}
	return rel, nil
}

// relationshipToProto is the inverse of relationshipFromProto.
func relationshipToProto(r *store.Relationship) (*v1.Relationship, error) {
	out := &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.ResourceType, ObjectId: r.ResourceID},
		Relation: r.Relation,
		Subject: &v1.SubjectReference{
			Object:           &v1.ObjectReference{ObjectType: r.SubjectType, ObjectId: r.SubjectID},
			OptionalRelation: r.SubjectRelation,
		},
	}
	if r.Caveat != "" {
		c := &v1.ContextualizedCaveat{CaveatName: r.Caveat}
		if len(r.CaveatContext) > 0 {
			ctx, err := structpb.NewStruct(r.CaveatContext)
			if err != nil {
				return nil, fmt.Errorf("api: caveat context of %s#%s: %w", r.ResourceType, r.ResourceID, err)
			}
			c.Context = ctx
		}
		out.OptionalCaveat = c
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return out, nil
}

// filterFromProto converts a validated filter. needType says whether resource_type is
// required (deletes and preconditions, where an empty filter would match the whole store).
func filterFromProto(field string, f *v1.RelationshipFilter, needType bool) (store.Filter, error) {
	if f == nil {
		return store.Filter{}, invalidf("%s: is required", field)
	}
	out := store.Filter{
		ResourceType:     f.GetResourceType(),
		ResourceID:       f.GetOptionalResourceId(),
		ResourceIDPrefix: f.GetOptionalResourceIdPrefix(),
		Relation:         f.GetOptionalRelation(),
	}
	if out.ResourceID != "" && out.ResourceIDPrefix != "" {
		return store.Filter{}, invalidf("%s: set optional_resource_id or optional_resource_id_prefix, not both", field)
	}
	if out.ResourceType == "" && (needType || out.ResourceID != "" || out.ResourceIDPrefix != "") {
		return store.Filter{}, invalidf("%s.resource_type: is required here; name the resource type the filter applies to", field)
	}
	if sf := f.GetOptionalSubjectFilter(); sf != nil {
		out.Subject = &store.SubjectFilter{Type: sf.GetSubjectType(), ID: sf.GetOptionalSubjectId()}
		if rf := sf.GetOptionalRelation(); rf != nil {
			out.Subject.Relation, out.Subject.RelationSet = rf.GetRelation(), true
		}
	}
	if out.ResourceType == "" && out.Relation == "" && out.Subject == nil {
		return store.Filter{}, invalidf("%s: is empty; set at least resource_type", field)
	}
	return out, nil
}

// preconditionsFromProto converts the optional preconditions of a write or delete.
func (s *Server) preconditionsFromProto(ps []*v1.Precondition) ([]store.Precondition, error) {
	if len(ps) > s.opts.MaxPreconditions {
		return nil, invalidf("optional_preconditions: %d preconditions in one request; at most %d are allowed", len(ps), s.opts.MaxPreconditions)
	}
	out := make([]store.Precondition, 0, len(ps))
	for i, p := range ps {
		field := fmt.Sprintf("optional_preconditions[%d]", i)
		var op store.PreconditionOp
		switch p.GetOperation() {
		case v1.Precondition_OPERATION_MUST_MATCH:
			op = store.MustMatch
		case v1.Precondition_OPERATION_MUST_NOT_MATCH:
			op = store.MustNotMatch
		default:
			return nil, invalidf("%s.operation: must be OPERATION_MUST_MATCH or OPERATION_MUST_NOT_MATCH", field)
		}
		f, err := filterFromProto(field+".filter", p.GetFilter(), true)
		if err != nil {
			return nil, err
		}
		out = append(out, store.Precondition{Op: op, Filter: f})
	}
	return out, nil
}

// updatesFromProto converts the updates of a WriteRelationships request.
func (s *Server) updatesFromProto(us []*v1.RelationshipUpdate) ([]store.Update, error) {
	if len(us) == 0 {
		return nil, invalidf("updates: is empty; send at least one update")
	}
	if len(us) > s.opts.MaxUpdatesPerWrite {
		return nil, invalidf("updates: %d updates in one request; at most %d are allowed, split the write", len(us), s.opts.MaxUpdatesPerWrite)
	}
	out := make([]store.Update, 0, len(us))
	for i, u := range us {
		field := fmt.Sprintf("updates[%d]", i)
		var op store.Op
		switch u.GetOperation() {
		case v1.RelationshipUpdate_OPERATION_CREATE:
			op = store.OpCreate
		case v1.RelationshipUpdate_OPERATION_TOUCH:
			op = store.OpTouch
		case v1.RelationshipUpdate_OPERATION_DELETE:
			op = store.OpDelete
		default:
			return nil, invalidf("%s.operation: must be OPERATION_CREATE, OPERATION_TOUCH or OPERATION_DELETE", field)
		}
		rel, err := relationshipFromProto(field+".relationship", u.GetRelationship())
		if err != nil {
			return nil, err
		}
		out = append(out, store.Update{Op: op, Relationship: rel})
	}
	return out, nil
}

// checkRequestFromProto converts one check (CheckPermission or an item of a bulk check).
func checkRequestFromProto(field string, res *v1.ObjectReference, perm string, sub *v1.SubjectReference, ctx *structpb.Struct) (check.Request, error) {
	if res == nil {
		return check.Request{}, invalidf("%sresource: is required", field)
	}
	if sub.GetObject() == nil {
		return check.Request{}, invalidf("%ssubject: is required", field)
	}
	if perm == "" {
		return check.Request{}, invalidf("%spermission: is required; name the permission or relation to check", field)
	}
	if res.GetObjectId() == store.Wildcard {
		return check.Request{}, invalidf("%sresource.object_id: cannot be the wildcard %q", field, store.Wildcard)
	}
	req := check.Request{
		ResourceType:    res.GetObjectType(),
		ResourceID:      res.GetObjectId(),
		Permission:      perm,
		SubjectType:     sub.GetObject().GetObjectType(),
		SubjectID:       sub.GetObject().GetObjectId(),
		SubjectRelation: sub.GetOptionalRelation(),
	}
	if ctx != nil && len(ctx.GetFields()) > 0 {
		req.Context = ctx.AsMap()
	}
	return req, nil
}

// permissionship converts a check answer.
func permissionship(r check.Result) (v1.CheckPermissionResponse_Permissionship, *v1.PartialCaveatInfo) {
	switch r.Membership {
	case check.HasPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, nil
	case check.ConditionalPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION,
			&v1.PartialCaveatInfo{MissingRequiredContext: r.MissingParams}
	default:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION, nil
	}
}
