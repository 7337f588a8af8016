package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/raftnode"
	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// TestStatusOf pins the code of every sentinel, wrapped as the packages wrap them.
func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{errInvalidArgument, codes.InvalidArgument},
		{errUnauthenticated, codes.Unauthenticated},
		{errNotFound, codes.NotFound},
		{errUnimplemented, codes.Unimplemented},
		{errShuttingDown, codes.Unavailable},
		{store.ErrClosed, codes.Unavailable},
		{store.ErrDiskFull, codes.ResourceExhausted},
		{store.ErrInvalid, codes.InvalidArgument},
		{check.ErrInvalidRequest, codes.InvalidArgument},
		{check.ErrCaveat, codes.InvalidArgument},
		{schema.ErrorList{{Pos: schema.Position{Line: 1, Column: 2}, Msg: "bad"}}, codes.InvalidArgument},
		{store.ErrAlreadyExists, codes.AlreadyExists},
		{store.ErrPreconditionFailed, codes.FailedPrecondition},
		{store.ErrRelationLimit, codes.FailedPrecondition},
		{store.ErrDeleteLimit, codes.FailedPrecondition},
		{store.ErrSchemaStrands, codes.FailedPrecondition},
		{store.ErrNoSchema, codes.FailedPrecondition},
		{store.ErrRevisionNotRetained, codes.FailedPrecondition},
		{store.ErrRevisionNotApplied, codes.FailedPrecondition},
		{check.ErrMaxDepth, codes.FailedPrecondition},
		{check.ErrUnknownDefinition, codes.FailedPrecondition},
		{check.ErrUnknownRelation, codes.FailedPrecondition},
		{check.ErrNoSchema, codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{store.ErrCorrupt, codes.Internal},
		{store.ErrIncompatibleFormat, codes.Internal},
		{store.ErrStaleRevision, codes.Internal},
		{store.ErrRestoreBusy, codes.Unavailable},
		{raftnode.ErrUnavailable, codes.Unavailable},
		{raftnode.ErrNoLeader, codes.Unavailable},
		{fmt.Errorf("%w: no leader took the request before its deadline: %w", raftnode.ErrUnavailable, raftnode.ErrNoLeader), codes.Unavailable},
		{raftnode.ErrMembership, codes.FailedPrecondition},
		{raftnode.ErrNewerCommand, codes.Internal},
		{raftnode.ErrUnknownCommand, codes.Internal},
		{errors.New("something else"), codes.Internal},
	} {
		err := tc.err
		if err != nil {
			err = fmt.Errorf("outer: %w", err)
		}
		if got := statusOf(err).Code(); got != tc.want {
			t.Errorf("statusOf(%v) = %v, want %v", err, got, tc.want)
		}
	}
}
