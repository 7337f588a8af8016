package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/raftnode"
	"github.com/kengen/kengen/store"
)

// Sentinels for the conditions api itself detects. Like every error in kengen they are wrapped
// with the details (which field, which limit) and mapped to a code by statusOf alone.
var (
	errInvalidArgument = errors.New("api: invalid argument")
	errUnauthenticated = errors.New("api: unauthenticated")
	errNotFound        = errors.New("api: not found")
	errUnimplemented   = errors.New("api: not implemented")
	errShuttingDown    = errors.New("api: server is shutting down")
)

// apiKinds are api's own sentinels under their stable names.
func apiKinds() []store.ErrorKind {
	return []store.ErrorKind{
		{Name: "invalid_argument", Err: errInvalidArgument},
		{Name: "unauthenticated", Err: errUnauthenticated},
		{Name: "not_found", Err: errNotFound},
		{Name: "unimplemented", Err: errUnimplemented},
		{Name: "shutting_down", Err: errShuttingDown},
	}
}

// errorKinds is every kind an error reaching a client can have: api's, then the registry
// writes and read barriers use across nodes (raftnode.ErrorKinds: raftnode's and store's),
// then check's. statusOf tries them in this order.
var errorKinds = append(append(apiKinds(), raftnode.ErrorKinds()...), check.ErrorKinds()...)

// kindCodes maps every kind to its gRPC code. Bad input is INVALID_ARGUMENT; a failed
// precondition or limit is FAILED_PRECONDITION; only what a retry can fix is UNAVAILABLE;
// INTERNAL is a broken node or a bug, and its message is not sent (statusOf). Codes follow
// SpiceDB's choices where it has them. TestErrorKindsHaveCodes fails for a kind missing here.
var kindCodes = map[string]codes.Code{
	// api
	"invalid_argument": codes.InvalidArgument,
	"unauthenticated":  codes.Unauthenticated,
	"not_found":        codes.NotFound,
	"unimplemented":    codes.Unimplemented,
	"shutting_down":    codes.Unavailable,
	// raftnode
	"unavailable":     codes.Unavailable, // leader change, unreachable leader: retry
	"no_leader":       codes.Unavailable,
	"unknown_command": codes.Internal,
	"newer_command":   codes.Internal,
	"snapshot":        codes.Internal,
	"membership":      codes.FailedPrecondition,
	"not_ready":       codes.Unavailable,
	"tls":             codes.Internal,
	// A node whose log is damaged stops applying rather than acknowledge what it did not
	// store: another node can serve the request.
	"damaged_log":     codes.Unavailable,
	"not_single_node": codes.FailedPrecondition,
	"only_member":     codes.FailedPrecondition,
	"too_large":       codes.InvalidArgument,
	// store
	"invalid":               codes.InvalidArgument,
	"already_exists":        codes.AlreadyExists,
	"precondition_failed":   codes.FailedPrecondition,
	"relation_limit":        codes.FailedPrecondition,
	"schema_strands":        codes.FailedPrecondition,
	"no_schema":             codes.FailedPrecondition,
	"revision_not_retained": codes.FailedPrecondition,
	"revision_not_applied":  codes.FailedPrecondition,
	"stale_revision":        codes.Internal,
	"corrupt":               codes.Internal,
	"incompatible_format":   codes.Internal,
	"delete_limit":          codes.FailedPrecondition,
	"closed":                codes.Unavailable,
	"restore_busy":          codes.Unavailable,
	"disk_full":             codes.ResourceExhausted, // until space is freed

	// store: relationship counters, as SpiceDB answers
	"counter_already_registered": codes.FailedPrecondition,
	"counter_not_registered":     codes.FailedPrecondition,
	// check
	"max_depth":          codes.FailedPrecondition,
	"unknown_definition": codes.FailedPrecondition,
	"unknown_relation":   codes.FailedPrecondition,
	"invalid_request":    codes.InvalidArgument,
	"check_no_schema":    codes.FailedPrecondition,
	"caveat":             codes.InvalidArgument,
}

// kindOf is the name of err's kind, "" for none: the first of errorKinds it wraps, or "invalid"
// for the schema's typed errors (raftnode.KindOf).
func kindOf(err error) string {
	for _, k := range errorKinds {
		if errors.Is(err, k.Err) {
			return k.Name
		}
	}
	return raftnode.KindOf(err)
}

// validationError is what the generated Validate methods of the Authzed protos return.
type validationError interface {
	error
	Field() string
	Reason() string
}

// internalMessage is all a client learns of an INTERNAL error; the cause goes to the server's
// log under the request id, which the client receives with it (finish, interceptors.go).
const internalMessage = "api: internal error"

// statusOf is the one place an error becomes a gRPC status. The request's own context ending
// comes first (DEADLINE_EXCEEDED, CANCELED); then kengen's kinds (kindCodes), which win over
// a gRPC status they wrap (a leader unreachable over the cluster service is UNAVAILABLE
// whatever the transport said); then the protos' validation errors; then a bare gRPC status;
// anything else is INTERNAL with the fixed internalMessage.
func statusOf(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	msg := err.Error()
	var verr validationError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, msg)
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, msg)
	}
	if kind := kindOf(err); kind != "" {
		code, ok := kindCodes[kind]
		if !ok || code == codes.Internal {
			return status.New(codes.Internal, internalMessage)
		}
		return status.New(code, msg)
	}
	if errors.As(err, &verr) {
		return status.New(codes.InvalidArgument, msg)
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown && s.Code() != codes.Internal {
		return s // a status grpc itself made
	}
	return status.New(codes.Internal, internalMessage)
}

// DescribeClientError splits an error an Authzed client returned into the gRPC code's name
// (`FailedPrecondition`) and the server's message, for programs that print it (the kengen
// CLI), so that they need not import grpc's status package themselves. ok is false for an
// error that carries no gRPC status.
func DescribeClientError(err error) (code, msg string, ok bool) {
	s, ok := status.FromError(err)
	if !ok || err == nil {
		return "", "", false
	}
	return s.Code().String(), s.Message(), true
}
