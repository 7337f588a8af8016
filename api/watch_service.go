package api

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/metadata"

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

// watchKinds is what optional_update_kinds asks a Watch to send.
type watchKinds struct {
	relationships, schema, checkpoints bool
}

// watchKindsOf reads optional_update_kinds as SpiceDB does: none (or only UNSPECIFIED) is
// relationship updates alone; otherwise each kind listed is sent, and relationship updates
// only when INCLUDE_RELATIONSHIP_UPDATES is among them.
func watchKindsOf(kinds []v1.WatchKind) watchKinds {
	var k watchKinds
	for _, kind := range kinds {
		switch kind {
		case v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES:
			k.relationships = true
		case v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES:
			k.schema = true
		case v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS:
			k.checkpoints = true
		}
	}
	if k == (watchKinds{}) {
		k.relationships = true
	}
	return k
}

// Watch streams the relationship changes of every revision after optional_start_cursor (or
// after the revision applied when the call arrives), one response per revision, filtered by
// optional_object_types and optional_relationship_filters. changes_through is the ZedToken to
// resume from. optional_update_kinds adds schema changes (a response with schema_updated) and
// checkpoints (is_checkpoint, no updates: every revision up to changes_through has been seen,
// sent whenever the revisions the stream passed over produced nothing to send). A start below
// the retention window fails with FAILED_PRECONDITION. The stream ends when the client
// cancels it or the server stops.
// watchOpenHeader marks the response headers of a watch the server accepted.
const watchOpenHeader = "kengen-watch-open"

func (s watchService) Watch(req *v1.WatchRequest, stream v1.WatchService_WatchServer) error {
	if err := validate(req); err != nil {
		return err
	}
	kinds := watchKindsOf(req.GetOptionalUpdateKinds())
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

	// Keep the changes still to send from garbage collection while the stream lags (bounded:
	// store.Options.HoldLimit past the retention window).
	hold := s.st.Hold(after)
	defer hold.Release()
	ctx := stream.Context()
	// Send the response headers now, not with the first change, marked as an accepted watch:
	// a client that waits for them (the HTTP gateway, and curl through it, http.go's
	// openWatchEarly) would otherwise see nothing until something is written.
	if err := stream.SendHeader(metadata.Pairs(watchOpenHeader, "1")); err != nil {
		return err
	}
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	for {
		applied := s.st.Applied() // taken before the check, so no advance is missed
		if s.st.Revision() > after {
			var sendErr error
			sent := after
			err := s.st.Changes(after, func(c *store.Change) bool {
				after = c.Revision
				resp, err := watchResponse(c, kinds, types, filters)
				if err != nil {
					sendErr = err
					return false
				}
				if resp != nil {
					sendErr = stream.Send(resp)
					sent = after
				}
				hold.Move(after)
				return sendErr == nil
			})
			if sendErr != nil {
				return sendErr
			}
			if err != nil {
				return fmt.Errorf("watching changes after revision %d: %w", after, err)
			}
			if kinds.checkpoints && sent < after {
				if err := stream.Send(&v1.WatchResponse{ChangesThrough: encodeZedToken(after), IsCheckpoint: true}); err != nil {
					return err
				}
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

// watchResponse is the response for one change, or nil when the kinds asked for and the
// filters leave nothing of it.
func watchResponse(c *store.Change, kinds watchKinds, types map[string]bool, filters []store.Filter) (*v1.WatchResponse, error) {
	schema := kinds.schema && c.SchemaChanged
	resp := &v1.WatchResponse{ChangesThrough: encodeZedToken(c.Revision), SchemaUpdated: schema}
	for i := range c.Updates {
		if !kinds.relationships {
			break
		}
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
	if len(resp.Updates) == 0 && !schema {
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
