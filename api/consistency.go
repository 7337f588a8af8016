package api

import (
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/store"
)

// snapshot opens a reader at the revision a request's consistency asks for, and returns that
// revision for the response's ZedToken. On one node every mode but at_exact_snapshot reads
// the latest applied revision; an at_least_as_fresh token from the future is refused, since
// nothing on this node will ever apply it. The caller closes the reader.
func (s *Server) snapshot(c *v1.Consistency) (*store.Reader, store.Revision, error) {
	latest := s.st.Revision()
	rev := latest
	switch r := c.GetRequirement().(type) {
	case nil, *v1.Consistency_MinimizeLatency, *v1.Consistency_FullyConsistent:
	case *v1.Consistency_AtLeastAsFresh:
		want, err := decodeZedToken("consistency.at_least_as_fresh", r.AtLeastAsFresh)
		if err != nil {
			return nil, 0, err
		}
		if want > latest {
			return nil, 0, fmt.Errorf("%w: consistency.at_least_as_fresh names revision %d, this node has applied %d; was the token issued by another kengen?", store.ErrRevisionNotApplied, want, latest)
		}
	case *v1.Consistency_AtExactSnapshot:
		want, err := decodeZedToken("consistency.at_exact_snapshot", r.AtExactSnapshot)
		if err != nil {
			return nil, 0, err
		}
		rev = want
	default:
		return nil, 0, invalidf("consistency: unknown requirement %T", r)
	}
	rd, err := s.st.Reader(rev)
	if err != nil {
		return nil, 0, fmt.Errorf("reading at revision %d: %w", rev, err)
	}
	return rd, rev, nil
}
