package pgsync

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// row is one table row in PostgreSQL's text form: column → value, nil for NULL.
type row map[string]*string

// key names the row in messages: `deals id=42`.
func (t *Table) rowKey(r row) string {
	var b strings.Builder
	b.WriteString(t.qualified())
	for _, k := range t.key {
		v := "NULL"
		if p := r[k]; p != nil {
			v = *p
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}

func (t *Table) qualified() string {
	if t.Schema == "public" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// change is one relationship update with where it came from, so that a refusal can name the
// row and the rule.
type change struct {
	op   v1.RelationshipUpdate_Operation
	rel  *v1.Relationship
	key  string // relKey(rel)
	row  string // the row's key
	rule *Rule
}

func (c *change) update() *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: c.op, Relationship: c.rel}
}

// relationships gives the relationships a row makes under the table's rules; a rule whose
// columns hold NULL makes none.
func (t *Table) relationships(r row) ([]change, error) {
	var out []change
	for _, rule := range t.Rules {
		rel, ok, err := rule.apply(r)
		if err != nil {
			return nil, fmt.Errorf("%s, rule %s: %w", t.rowKey(r), rule, err)
		}
		if ok {
			out = append(out, change{op: v1.RelationshipUpdate_OPERATION_TOUCH, rel: rel, key: relKey(rel), row: t.rowKey(r), rule: rule})
		}
	}
	return out, nil
}

func (r *Rule) apply(rw row) (*v1.Relationship, bool, error) {
	resID, ok := r.ResourceID.fill(rw)
	if !ok {
		return nil, false, nil
	}
	subID, ok := r.SubjectID.fill(rw)
	if !ok {
		return nil, false, nil
	}
	rel := &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.ResourceType, ObjectId: resID},
		Relation: r.Relation,
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.SubjectType, ObjectId: subID}, OptionalRelation: r.SubjectRel},
	}
	if r.Caveat != "" {
		c := &v1.ContextualizedCaveat{CaveatName: r.Caveat}
		if r.CaveatContext != "" {
			if v := rw[r.CaveatContext]; v != nil {
				ctx := &structpb.Struct{}
				if err := ctx.UnmarshalJSON([]byte(*v)); err != nil {
					return nil, false, fmt.Errorf("caveat_context column %s is not a JSON object: %w", r.CaveatContext, err)
				}
				c.Context = ctx
			}
		}
		rel.OptionalCaveat = c
	}
	if r.Expiration != "" {
		if v := rw[r.Expiration]; v != nil {
			at, err := parseTimestamp(*v)
			if err != nil {
				return nil, false, fmt.Errorf("expiration column %s: %w", r.Expiration, err)
			}
			rel.OptionalExpiresAt = timestamppb.New(at)
		}
	}
	return rel, true, nil
}

// fill builds an id from the row; false when a column it reads is NULL.
func (t template) fill(r row) (string, bool) {
	var b strings.Builder
	for _, p := range t {
		if p.column == "" {
			b.WriteString(p.lit)
			continue
		}
		v := r[p.column]
		if v == nil {
			return "", false
		}
		b.WriteString(*v)
	}
	return b.String(), true
}

// parseTimestamp reads PostgreSQL's text form of timestamp and timestamptz (DateStyle ISO);
// a timestamp without a zone is UTC.
func parseTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", "2006-01-02 15:04:05.999999-07:00:00", "2006-01-02 15:04:05.999999", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp", s)
}

// relKey is a relationship's identity: resource, relation and subject, without caveat or
// expiration.
func relKey(r *v1.Relationship) string {
	s := r.GetSubject()
	k := r.GetResource().GetObjectType() + ":" + r.GetResource().GetObjectId() + "#" + r.GetRelation() + "@" +
		s.GetObject().GetObjectType() + ":" + s.GetObject().GetObjectId()
	if s.GetOptionalRelation() != "" {
		k += "#" + s.GetOptionalRelation()
	}
	return k
}

// relText is relKey with the caveat and expiration, for reports.
func relText(r *v1.Relationship) string {
	k := relKey(r)
	if c := r.GetOptionalCaveat(); c != nil {
		k += "[" + c.GetCaveatName()
		if ctx := c.GetContext(); ctx != nil && len(ctx.GetFields()) > 0 {
			j, _ := ctx.MarshalJSON()
			k += ":" + string(j)
		}
		k += "]"
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		k += "[expiration:" + e.AsTime().UTC().Format(time.RFC3339Nano) + "]"
	}
	return k
}

// txn folds the changes of one database transaction: the last change to a relationship wins
// (TOUCH and DELETE are idempotent, so the net effect of a sequence is its last step), and a
// WriteRelationships call may name each relationship once.
type txn struct {
	order []string
	last  map[string]change
}

func newTxn() *txn { return &txn{last: map[string]change{}} }

func (x *txn) add(c change) {
	if _, ok := x.last[c.key]; !ok {
		x.order = append(x.order, c.key)
	}
	x.last[c.key] = c
}

func (x *txn) changes() []change {
	out := make([]change, 0, len(x.order))
	for _, k := range x.order {
		out = append(out, x.last[k])
	}
	return out
}

// insert, remove and update turn a row change into relationship changes.
func (x *txn) insert(t *Table, r row) error {
	cs, err := t.relationships(r)
	for _, c := range cs {
		x.add(c)
	}
	return err
}

func (x *txn) remove(t *Table, r row) error {
	cs, err := t.relationships(r)
	for _, c := range cs {
		c.op = v1.RelationshipUpdate_OPERATION_DELETE
		x.add(c)
	}
	return err
}

// update deletes what the old row made and the new one does not, and touches what the new
// row makes unless the old one made exactly that; an update of unmapped columns changes
// nothing.
func (x *txn) update(t *Table, old, cur row) error {
	was, err := t.relationships(old)
	if err != nil {
		return err
	}
	now, err := t.relationships(cur)
	if err != nil {
		return err
	}
	same := map[string]string{}
	for _, c := range was {
		same[c.key] = relText(c.rel)
	}
	keep := map[string]bool{}
	for _, c := range now {
		keep[c.key] = true
	}
	for _, c := range was {
		if !keep[c.key] {
			c.op = v1.RelationshipUpdate_OPERATION_DELETE
			x.add(c)
		}
	}
	for _, c := range now {
		if text, ok := same[c.key]; !ok || text != relText(c.rel) {
			x.add(c)
		}
	}
	return nil
}
