package pgsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/jackc/pgx/v5"
)

// Difference is one relationship on which kengen and the database's rows disagree.
type Difference struct {
	// Op is what makes kengen agree: TOUCH a relationship the rows make (missing, or with
	// another caveat or expiration), DELETE one no row makes.
	Op           string
	Relationship string
	// Row names the row that makes the relationship (empty for a DELETE), Rule the rule.
	Row, Rule string
}

func (d Difference) String() string {
	if d.Op == "DELETE" {
		return fmt.Sprintf("extra in kengen: %s (no row makes it; rule %s)", d.Relationship, d.Rule)
	}
	return fmt.Sprintf("missing in kengen: %s (row %s, rule %s)", d.Relationship, d.Row, d.Rule)
}

// desired reads every mapped row in tx and gives the relationships they make, by key.
func (m *Mapping) desired(ctx context.Context, tx pgx.Tx) (map[string]change, error) {
	want := map[string]change{}
	for _, t := range m.Tables {
		cols := make([]string, len(t.columns))
		for i, c := range t.columns {
			cols[i] = pgx.Identifier{c}.Sanitize() + "::text"
		}
		rows, err := tx.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+pgx.Identifier{t.Schema, t.Name}.Sanitize())
		if err != nil {
			return nil, fmt.Errorf("pgsync: reading %s: %w", t.qualified(), err)
		}
		vals := make([]*string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("pgsync: reading %s: %w", t.qualified(), err)
			}
			r := make(row, len(cols))
			for i, c := range t.columns {
				r[c] = vals[i]
			}
			cs, err := t.relationships(r)
			if err != nil {
				rows.Close()
				return nil, err
			}
			for _, c := range cs {
				want[c.key] = c
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("pgsync: reading %s: %w", t.qualified(), err)
		}
	}
	return want, nil
}

// owned is the part of kengen the mapping owns: every relationship of a (resource type,
// relation, subject type, subject relation) some rule makes. The copy and --check compare it
// whole with the rows.
func (m *Mapping) owned() []*Rule {
	seen := map[string]bool{}
	var out []*Rule
	for _, t := range m.Tables {
		for _, r := range t.Rules {
			k := r.ResourceType + "#" + r.Relation + "@" + r.SubjectType + "#" + r.SubjectRel
			if !seen[k] {
				seen[k] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// diff compares the rows' relationships with what kengen holds in the owned relations, read
// fully consistent, and gives the changes that make kengen agree: DELETEs first (so that a
// moved owner frees its limit before the new one arrives), then TOUCHes, each in key order.
func (s *Syncer) diff(ctx context.Context, want map[string]change) ([]change, error) {
	have := map[string]string{}
	var dels []change
	for _, r := range s.mapping.owned() {
		stream, err := s.client.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
			Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: r.ResourceType, OptionalRelation: r.Relation,
				OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: r.SubjectType, OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: r.SubjectRel}}},
		})
		if err != nil {
			return nil, fmt.Errorf("pgsync: reading %s#%s from the endpoint: %w", r.ResourceType, r.Relation, err)
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("pgsync: reading %s#%s from the endpoint: %w", r.ResourceType, r.Relation, err)
			}
			rel := resp.GetRelationship()
			k := relKey(rel)
			have[k] = relText(rel)
			if _, ok := want[k]; !ok {
				dels = append(dels, change{op: v1.RelationshipUpdate_OPERATION_DELETE, rel: rel, key: k, rule: r})
			}
		}
	}
	var touches []change
	for k, c := range want {
		if text, ok := have[k]; !ok || text != relText(c.rel) {
			touches = append(touches, c)
		}
	}
	sort.Slice(dels, func(i, j int) bool { return dels[i].key < dels[j].key })
	sort.Slice(touches, func(i, j int) bool { return touches[i].key < touches[j].key })
	return append(dels, touches...), nil
}

// reconcile makes kengen's owned relations equal the rows, writing in parts of at most
// maxUpdates. It is the initial copy; being a comparison, it is also safe to redo.
func (s *Syncer) reconcile(ctx context.Context, tx pgx.Tx) (*v1.ZedToken, error) {
	want, err := s.mapping.desired(ctx, tx)
	if err != nil {
		return nil, err
	}
	changes, err := s.diff(ctx, want)
	if err != nil {
		return nil, err
	}
	s.log.Info("sync: initial copy", "relationships", len(want), "changes", len(changes))
	var token *v1.ZedToken
	for start := 0; start < len(changes); start += s.sink.maxUpdates {
		part := changes[start:min(start+s.sink.maxUpdates, len(changes))]
		t, err := s.sink.write(ctx, part)
		if err != nil {
			return nil, fmt.Errorf("initial copy: %w", err)
		}
		if t != nil {
			token = t
		}
		s.metrics.changes.Add(float64(len(part)))
		if s.afterCopyPart != nil {
			if err := s.afterCopyPart(); err != nil {
				return nil, err
			}
		}
	}
	return token, nil
}
