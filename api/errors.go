package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/raftnode"
	"github.com/kengen/kengen/schema"
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

// validationError is what the generated Validate methods of the Authzed protos return.
type validationError interface {
	error
	Field() string
	Reason() string
}

// statusOf is the one place an error becomes a gRPC status. Bad input is INVALID_ARGUMENT; a
// failed precondition or limit is FAILED_PRECONDITION; only what a retry can fix is
// UNAVAILABLE. Codes follow SpiceDB's choices where it has them. An error nobody classified is
// INTERNAL.
func statusOf(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if s, ok := status.FromError(err); ok {
		return s // already a status (from grpc itself)
	}
	msg := err.Error()
	var (
		verr  validationError
		slist schema.ErrorList
		serr  *schema.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, msg)
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, msg)
	case errors.Is(err, errUnauthenticated):
		return status.New(codes.Unauthenticated, msg)
	case errors.Is(err, errNotFound):
		return status.New(codes.NotFound, msg)
	case errors.Is(err, errUnimplemented):
		return status.New(codes.Unimplemented, msg)
	case errors.Is(err, errShuttingDown), errors.Is(err, store.ErrClosed),
		errors.Is(err, raftnode.ErrUnavailable): // leader change or unreachable leader: retry
		return status.New(codes.Unavailable, msg)
	case errors.Is(err, store.ErrDiskFull): // a full disk: not retryable until space is freed
		return status.New(codes.ResourceExhausted, msg)

	case errors.Is(err, errInvalidArgument),
		errors.Is(err, store.ErrInvalid),
		errors.Is(err, check.ErrInvalidRequest),
		errors.Is(err, check.ErrCaveat),
		errors.As(err, &verr),
		errors.As(err, &slist),
		errors.As(err, &serr):
		return status.New(codes.InvalidArgument, msg)

	case errors.Is(err, store.ErrAlreadyExists):
		return status.New(codes.AlreadyExists, msg)

	case errors.Is(err, store.ErrPreconditionFailed),
		errors.Is(err, store.ErrRelationLimit),
		errors.Is(err, store.ErrDeleteLimit),
		errors.Is(err, store.ErrSchemaStrands),
		errors.Is(err, store.ErrNoSchema),
		errors.Is(err, store.ErrRevisionNotRetained),
		errors.Is(err, store.ErrRevisionNotApplied),
		errors.Is(err, check.ErrMaxDepth),
		errors.Is(err, check.ErrUnknownDefinition),
		errors.Is(err, check.ErrUnknownRelation),
		errors.Is(err, check.ErrNoSchema):
		return status.New(codes.FailedPrecondition, msg)
	}
	return status.New(codes.Internal, fmt.Sprintf("api: internal error: %s", msg))
}

// toStatusError is statusOf as an error value, for returning from a handler.
func toStatusError(err error) error {
	if err == nil {
		return nil
	}
	return statusOf(err).Err()
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
