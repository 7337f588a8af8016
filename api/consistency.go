package api

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/store"
)

// maxFreshnessWait bounds how long a read waits for this node to catch up when the request
// carries no deadline of its own.
const maxFreshnessWait = 10 * time.Second

// replica is what a replicated Writer (raftnode's) offers reads: the read barrier of fully
// consistent reads, a revision at least as new as every write acknowledged before it, which
// concurrent readers share (docs/raft.md, "Reads").
type replica interface {
	ReadIndex(ctx context.Context) (store.Revision, error)
}

// snapshotCtx opens a reader at the revision a request's consistency asks for, and returns
// that revision for the response's ZedToken:
//   - minimize_latency (and none): the local applied revision;
//   - at_least_as_fresh: waits, within the request's deadline, until this node has applied
//     the token's revision, then reads the latest local revision;
//   - fully_consistent: asks the leader for its read index (a leadership-confirming barrier)
//     and waits until this node has applied it;
//   - at_exact_snapshot: that revision, if it is applied and still retained.
//
// The caller closes the reader.
func (s *Server) snapshotCtx(ctx context.Context, c *v1.Consistency) (*store.Reader, store.Revision, error) {
	waits := c.GetFullyConsistent() || c.GetAtLeastAsFresh() != nil
	if _, ok := ctx.Deadline(); !ok && waits {
		// Bound the wait when the request has no deadline of its own; the other requirements
		// do not wait, and need no timer.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxFreshnessWait)
		defer cancel()
	}
	var rev store.Revision // 0: the latest applied revision
	switch r := c.GetRequirement().(type) {
	case nil, *v1.Consistency_MinimizeLatency:
		if rd := s.quantizedReader(); rd != nil {
			return rd, rd.Revision(), nil
		}
	case *v1.Consistency_FullyConsistent:
		if rep, ok := s.writer.(replica); ok {
			want, err := rep.ReadIndex(ctx)
			if err != nil {
				return nil, 0, fmt.Errorf("consistency.fully_consistent: %w", err)
			}
			if err := s.waitApplied(ctx, want); err != nil {
				return nil, 0, fmt.Errorf("consistency.fully_consistent: %w", err)
			}
		}
	case *v1.Consistency_AtLeastAsFresh:
		want, err := decodeZedToken("consistency.at_least_as_fresh", r.AtLeastAsFresh)
		if err != nil {
			return nil, 0, err
		}
		if err := s.waitApplied(ctx, want); err != nil {
			return nil, 0, fmt.Errorf("consistency.at_least_as_fresh: %w", err)
		}
	case *v1.Consistency_AtExactSnapshot:
		want, err := decodeZedToken("consistency.at_exact_snapshot", r.AtExactSnapshot)
		if err != nil {
			return nil, 0, err
		}
		if want == 0 {
			// Revision 0 is the empty store before any write: no state is kept there, and a zero
			// here must not fall through to "the latest revision".
			return nil, 0, fmt.Errorf("%w: consistency.at_exact_snapshot: revision 0 precedes every write; pass a token an earlier response returned", store.ErrRevisionNotRetained)
		}
		rev = want
	default:
		return nil, 0, invalidf("consistency: unknown requirement %T", r)
	}
	rd, err := s.st.Reader(rev)
	if err != nil {
		return nil, 0, fmt.Errorf("reading at revision %d: %w", rev, err)
	}
	return rd, rd.Revision(), nil
}

// waitApplied waits until this node has applied rev, within ctx: the store's one wait
// (store.WaitApplied), which wakes at the advance and ends when the client cancels or its
// deadline passes.
func (s *Server) waitApplied(ctx context.Context, rev store.Revision) error {
	return s.st.WaitApplied(ctx, rev)
}
