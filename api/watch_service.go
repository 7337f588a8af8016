package api

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/store"
)

// watchService serves the Watch service. It embeds only its own Unimplemented server.
type watchService struct {
	v1.UnimplementedWatchServiceServer
	*Server
}

// watchPoll bounds how long an idle Watch waits before looking for new revisions again; it
// normally wakes at once through the store's Applied channel, and the poll is only a backstop.
const watchPoll = time.Second

// Watch streams the relationship changes of every revision after optional_start_cursor (or
// after the revision applied when the call arrives), one response per revision, filtered by
// optional_object_types and optional_relationship_filters. changes_through is the ZedToken to
// resume from. A start below the retention window fails with FAILED_PRECONDITION. The stream
// ends when the client cancels it or the server stops.
func (s watchService) Watch(req *v1.WatchRequest, stream v1.WatchService_WatchServer) error {
	if err := validate(req); err != nil {
		return err
	}
	var filters []store.Filter
	for i, f := range req.GetOptionalRelationshipFilters() {
		sf, err := filterFromProto(fmt.Sprintf("optional_relationship_filters[%d]", i), f, false)
		if err != nil {
			return err
		}
		filters = append(filters, sf)
	}
	types := make(map[string]bool)
	for _, t := range req.GetOptionalObjectTypes() {
		types[t] = true
	}
	after := s.st.Revision()
	if tok := req.GetOptionalStartCursor(); tok != nil {
		rev, err := decodeZedToken("optional_start_cursor", tok)
		if err != nil {
			return err
		}
		if rev > after {
			return fmt.Errorf("%w: optional_start_cursor names revision %d, this node has applied %d; was the token issued by another kengen?", store.ErrRevisionNotApplied, rev, after)
		}
		after = rev
	}

	ctx := stream.Context()
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	for {
		applied := s.st.Applied() // taken before the check, so no advance is missed
		if s.st.Revision() > after {
			var sendErr error
			err := s.st.Changes(after, func(c *store.Change) bool {
				after = c.Revision
				resp, err := watchResponse(c, types, filters)
				if err != nil {
					sendErr = err
					return false
				}
				if resp != nil {
					sendErr = stream.Send(resp)
				}
				return sendErr == nil
			})
			if sendErr != nil {
				return sendErr
			}
			if err != nil {
				return fmt.Errorf("watching changes after revision %d: %w", after, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return fmt.Errorf("%w: reconnect with the last changes_through token", errShuttingDown)
		case <-applied:
		case <-tick.C:
		}
	}
}

// watchResponse is the response for one change, or nil when the filters leave nothing of it.
func watchResponse(c *store.Change, types map[string]bool, filters []store.Filter) (*v1.WatchResponse, error) {
	resp := &v1.WatchResponse{ChangesThrough: encodeZedToken(c.Revision), SchemaUpdated: c.SchemaChanged}
	for i := range c.Updates {
		u := &c.Updates[i]
		if !watched(&u.Relationship, types, filters) {
			continue
		}
		rel, err := relationshipToProto(&u.Relationship)
		if err != nil {
			return nil, err
		}
		op := v1.RelationshipUpdate_OPERATION_TOUCH
		switch u.Op {
		case store.OpCreate:
			op = v1.RelationshipUpdate_OPERATION_CREATE
		case store.OpDelete:
			op = v1.RelationshipUpdate_OPERATION_DELETE
		}
		resp.Updates = append(resp.Updates, &v1.RelationshipUpdate{Operation: op, Relationship: rel})
	}
	if len(resp.Updates) == 0 && !(c.SchemaChanged && len(types) == 0 && len(filters) == 0) {
		return nil, nil
	}
	return resp, nil
}

// watched reports whether a relationship passes the object types and the filters (either
// list empty passes everything; otherwise any entry of each must match).
func watched(r *store.Relationship, types map[string]bool, filters []store.Filter) bool {
	if len(types) > 0 && !types[r.ResourceType] {
		return false
	}
	if len(filters) == 0 {
		return true
	}
	for i := range filters {
		if filterMatches(&filters[i], r) {
			return true
		}
	}
	return false
}

func filterMatches(f *store.Filter, r *store.Relationship) bool {
	switch {
	case f.ResourceType != "" && f.ResourceType != r.ResourceType,
		f.ResourceID != "" && f.ResourceID != r.ResourceID,
		f.ResourceIDPrefix != "" && !strings.HasPrefix(r.ResourceID, f.ResourceIDPrefix),
		f.Relation != "" && f.Relation != r.Relation:
		return false
	}
	if sf := f.Subject; sf != nil {
		subjRel := r.SubjectRelation
		if subjRel == "..." {
			subjRel = ""
		}
		switch {
		case sf.Type != r.SubjectType,
			sf.ID != "" && sf.ID != r.SubjectID,
			sf.RelationSet && sf.Relation != subjRel:
			return false
		}
	}
	return true
}
