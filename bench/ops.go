package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// do makes one call of op and records it. Calls failing because ctx ended are not counted.
func (w *worker) do(ctx context.Context, op string) {
	s := w.stats[op]
	start := time.Now()
	var err error
	switch op {
	case OpCheck:
		err = w.check(ctx, s)
	case OpBulkCheck:
		err = w.bulkCheck(ctx, s)
	case OpLookupResources:
		err = w.lookupResources(ctx, s)
	case OpLookupSubjects:
		err = w.lookupSubjects(ctx, s)
	case OpWrite:
		w.write(ctx, s, start) // records itself: its latency excludes the verifying check
		return
	}
	w.record(ctx, s, op, start, err)
}

func (w *worker) record(ctx context.Context, s *opStats, op string, start time.Time, err error) {
	d := time.Since(start)
	if ctx.Err() != nil {
		return
	}
	s.calls++
	if err != nil {
		s.errors++
		s.errs.add("%s: %v", op, err)
		return
	}
	s.lat = append(s.lat, d)
}

// readConsistency is the consistency of the run's reads.
func (w *worker) readConsistency() *v1.Consistency {
	if w.opts.Consistency == "at_least_as_fresh" {
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: w.latest.Load()}}
	}
	return w.consistency
}

// question is one check: its pair and whether the answer is known to be true.
type question struct {
	pair
	known bool
}

func (w *worker) nextKnown() pair {
	i := w.cursor.Add(1) - 1
	return w.ds.known[i%int64(len(w.ds.known))]
}

func (w *worker) question() question {
	if w.opts.KnownFraction > 0 && w.rng.Float64() < w.opts.KnownFraction {
		return question{pair: w.nextKnown(), known: true}
	}
	return question{pair: pair{w.ds.randResource(w.rng), w.ds.randSubject(w.rng)}}
}

func (w *worker) object(typ, id string) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: typ, ObjectId: id}
}

func (w *worker) subject(id string) *v1.SubjectReference {
	return &v1.SubjectReference{Object: w.object(w.ds.SubjectType, id)}
}

// verify counts a check answer against what the driver knows.
func (w *worker) verify(s *opStats, q question, got v1.CheckPermissionResponse_Permissionship) {
	if !q.known {
		return
	}
	s.checked++
	if got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		s.disagreed++
		s.ex.add("%s:%s %s %s:%s: got %s, want PERMISSIONSHIP_HAS_PERMISSION", w.ds.ResourceType, q.resource, w.ds.Permission, w.ds.SubjectType, q.subject, got)
	}
}

func (w *worker) check(ctx context.Context, s *opStats) error {
	q := w.question()
	resp, err := w.client.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: w.readConsistency(),
		Resource:    w.object(w.ds.ResourceType, q.resource),
		Permission:  w.ds.Permission,
		Subject:     w.subject(q.subject),
	})
	if err != nil {
		return err
	}
	s.items++
	w.verify(s, q, resp.GetPermissionship())
	return nil
}

func (w *worker) bulkCheck(ctx context.Context, s *opStats) error {
	qs := make([]question, w.opts.BulkSize)
	req := &v1.CheckBulkPermissionsRequest{Consistency: w.readConsistency(), Items: make([]*v1.CheckBulkPermissionsRequestItem, len(qs))}
	for i := range qs {
		qs[i] = w.question()
		req.Items[i] = &v1.CheckBulkPermissionsRequestItem{
			Resource:   w.object(w.ds.ResourceType, qs[i].resource),
			Permission: w.ds.Permission,
			Subject:    w.subject(qs[i].subject),
		}
	}
	resp, err := w.client.CheckBulkPermissions(ctx, req)
	if err != nil {
		return err
	}
	if len(resp.GetPairs()) != len(qs) {
		return fmt.Errorf("%d pairs answered for %d asked", len(resp.GetPairs()), len(qs))
	}
	for i, p := range resp.GetPairs() {
		if e := p.GetError(); e != nil {
			s.errors++
			s.errs.add("item %d: %s", i, e.GetMessage())
			continue
		}
		s.items++
		w.verify(s, qs[i], p.GetItem().GetPermissionship())
	}
	return nil
}

func (w *worker) lookupResources(ctx context.Context, s *opStats) error {
	subject := w.nextKnown().subject
	stream, err := w.client.LookupResources(ctx, &v1.LookupResourcesRequest{
		Consistency:        w.readConsistency(),
		ResourceObjectType: w.ds.ResourceType,
		Permission:         w.ds.Permission,
		Subject:            w.subject(subject),
	})
	if err != nil {
		return err
	}
	got := make(map[string]bool)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		got[resp.GetResourceObjectId()] = true
	}
	s.items += len(got)
	w.expectAll(s, got, w.ds.bySubject[subject], func(missing string) string {
		return fmt.Sprintf("lookup resources %s %s %s:%s: %s:%s missing", w.ds.ResourceType, w.ds.Permission, w.ds.SubjectType, subject, w.ds.ResourceType, missing)
	})
	return nil
}

func (w *worker) lookupSubjects(ctx context.Context, s *opStats) error {
	resource := w.nextKnown().resource
	stream, err := w.client.LookupSubjects(ctx, &v1.LookupSubjectsRequest{
		Consistency:       w.readConsistency(),
		Resource:          w.object(w.ds.ResourceType, resource),
		Permission:        w.ds.Permission,
		SubjectObjectType: w.ds.SubjectType,
	})
	if err != nil {
		return err
	}
	got := make(map[string]bool)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		got[resp.GetSubject().GetSubjectObjectId()] = true
	}
	s.items += len(got)
	w.expectAll(s, got, w.ds.byResource[resource], func(missing string) string {
		return fmt.Sprintf("lookup subjects %s:%s %s %s: %s:%s missing", w.ds.ResourceType, resource, w.ds.Permission, w.ds.SubjectType, w.ds.SubjectType, missing)
	})
	return nil
}

// expectAll counts each expected id as one known answer, a disagreement when it is missing.
func (w *worker) expectAll(s *opStats, got map[string]bool, want []string, describe func(string) string) {
	for _, id := range want {
		s.checked++
		if !got[id] && !got["*"] {
			s.disagreed++
			s.ex.add("%s", describe(id))
		}
	}
}

// write touches RunOptions.WriteBatch relationships in one request and then checks, at the
// revision it was written at, that the first grants the permission; only the write is timed.
func (w *worker) write(ctx context.Context, s *opStats, start time.Time) {
	resource, subject := w.ds.randWriteResource(w.rng), w.ds.randSubject(w.rng)
	updates := make([]*v1.RelationshipUpdate, 0, w.opts.WriteBatch)
	seen := make(map[[2]string]bool, w.opts.WriteBatch)
	for r, sub := resource, subject; len(updates) < w.opts.WriteBatch; r, sub = w.ds.randWriteResource(w.rng), w.ds.randSubject(w.rng) {
		if seen[[2]string{r, sub}] { // one request may not touch a relationship twice
			continue
		}
		seen[[2]string{r, sub}] = true
		updates = append(updates, &v1.RelationshipUpdate{
			Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
			Relationship: &v1.Relationship{
				Resource: w.object(w.ds.writeType, r),
				Relation: w.ds.writeRelation,
				Subject:  w.subject(sub),
			},
		})
	}
	resp, err := w.client.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: updates})
	w.record(ctx, s, OpWrite, start, err)
	if err != nil || ctx.Err() != nil {
		return
	}
	s.items += len(updates)
	w.advance(resp.GetWrittenAt())
	if w.opts.SkipWriteCheck {
		return
	}
	chk, err := w.client.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: resp.GetWrittenAt()}},
		Resource:    w.object(w.ds.writeType, resource),
		Permission:  w.ds.writePermission,
		Subject:     w.subject(subject),
	})
	if err != nil {
		if ctx.Err() == nil {
			s.errors++
			s.errs.add("check after write: %v", err)
		}
		return
	}
	s.checked++
	if got := chk.GetPermissionship(); got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		s.disagreed++
		s.ex.add("%s:%s %s %s:%s after writing %s: got %s, want PERMISSIONSHIP_HAS_PERMISSION", w.ds.writeType, resource, w.ds.writePermission,
			w.ds.SubjectType, subject, w.ds.writeRelation, got)
	}
}

// advance makes tok the run's latest token. ZedTokens are opaque to the driver, so the
// latest is the last write to come back, which concurrent writers may reorder a little.
func (w *worker) advance(tok *v1.ZedToken) {
	if tok != nil {
		w.latest.Store(tok)
	}
}
