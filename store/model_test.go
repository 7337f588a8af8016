package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const modelSchema = `
use expiration
definition user {}
definition group { relation member: user | group#member }
definition doc {
  relation viewer: user | user:* | group#member | user with expiration
  relation editor: user limit 3
}
`

// model is the expected state: live relationships by identity, expired ones included.
type model map[string]Relationship

func (m model) clone() model {
	c := make(model, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func identity(rel *Relationship) string { return string(forwardPrefix(nil, rel)) }

func visibleAt(rel *Relationship, at time.Time) bool {
	return rel.Expiration.IsZero() || rel.Expiration.After(at)
}

// visible lists the relationships visible at `at`, in forward index order.
func (m model) visible(at time.Time) []Relationship {
	keys := make([]string, 0, len(m))
	for k, rel := range m {
		if visibleAt(&rel, at) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]Relationship, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// apply applies b to a copy of m; ok is false if the store must refuse it.
func (m model) apply(at time.Time, b *Batch) (model, bool) {
	for _, p := range b.Preconditions {
		found := false
		for _, rel := range m {
			if visibleAt(&rel, at) && p.Filter.matches(&rel) {
				found = true
			}
		}
		if found != (p.Op == MustMatch) {
			return m, false
		}
	}
	next := m.clone()
	seen := map[string]bool{}
	for _, u := range b.Updates {
		k := identity(&u.Relationship)
		if seen[k] {
			return m, false
		}
		seen[k] = true
		old, exists := next[k]
		switch u.Op {
		case OpCreate:
			if exists && visibleAt(&old, at) {
				return m, false
			}
			next[k] = u.Relationship
		case OpTouch:
			next[k] = u.Relationship
		case OpDelete:
			delete(next, k)
		}
	}
	for _, u := range b.Updates {
		if u.Op == OpDelete || u.Relationship.Relation != "editor" {
			continue
		}
		n := 0
		for _, rel := range next {
			if rel.ResourceID == u.Relationship.ResourceID && rel.Relation == "editor" && visibleAt(&rel, at) {
				n++
			}
		}
		if n > 3 {
			return m, false
		}
	}
	// An accepted batch collects what has expired at its time (expiry.go).
	for k, rel := range next {
		if !visibleAt(&rel, at) {
			delete(next, k)
		}
	}
	return next, true
}

// randomRelationship draws from a small universe so that batches collide often.
func randomRelationship(rng *rand.Rand, at time.Time) Relationship {
	rel := Relationship{ResourceType: "doc", ResourceID: fmt.Sprint("d", rng.IntN(4))}
	if rng.IntN(3) == 0 {
		rel.Relation, rel.SubjectType, rel.SubjectID = "editor", "user", fmt.Sprint("u", rng.IntN(6))
		return rel
	}
	rel.Relation = "viewer"
	switch rng.IntN(6) {
	case 0:
		rel.SubjectType, rel.SubjectID = "user", Wildcard
	case 1:
		rel.SubjectType, rel.SubjectID, rel.SubjectRelation = "group", fmt.Sprint("g", rng.IntN(2)), "member"
	case 2:
		rel.SubjectType, rel.SubjectID = "user", fmt.Sprint("u", rng.IntN(6))
		rel.Expiration = at.Add(time.Duration(rng.IntN(8)-2) * time.Minute).UTC()
	default:
		rel.SubjectType, rel.SubjectID = "user", fmt.Sprint("u", rng.IntN(6))
	}
	return rel
}

func randomBatch(rng *rand.Rand, at time.Time) *Batch {
	b := &Batch{}
	if rng.IntN(4) == 0 {
		op := MustMatch
		if rng.IntN(2) == 0 {
			op = MustNotMatch
		}
		b.Preconditions = append(b.Preconditions, Precondition{Op: op, Filter: Filter{
			ResourceType: "doc", ResourceID: fmt.Sprint("d", rng.IntN(4)), Relation: "viewer"}})
	}
	for range 1 + rng.IntN(5) {
		op := []Op{OpCreate, OpTouch, OpTouch, OpDelete}[rng.IntN(4)]
		b.Updates = append(b.Updates, Update{Op: op, Relationship: randomRelationship(rng, at)})
	}
	return b
}

// TestModel applies random batches to the store and to an in-memory model and checks that a
// Reader at every revision sees exactly the model's state through every read path, before and
// after garbage collection and a reopen.
func TestModel(t *testing.T) {
	fs := vfs.NewMem()
	opts := Options{FS: fs, NoSync: true, GCInterval: -1, Retention: time.Hour}
	s, err := Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := s.WriteSchema(Entry{Index: 1}, base, modelSchema); err != nil {
		t.Fatal(err)
	}
	states := map[Revision]model{1: {}}
	times := map[Revision]time.Time{1: base}
	rng := rand.New(rand.NewPCG(1, 2))
	cur := model{}
	refused := 0
	const batches = 300
	for rev := Revision(2); rev < 2+batches; rev++ {
		at := base.Add(time.Duration(rev) * time.Minute)
		b := randomBatch(rng, at)
		next, ok := cur.apply(at, b)
		_, err := s.Apply(Entry{Index: rev}, at, b)
		if ok != (err == nil) {
			t.Fatalf("revision %d: store error %v, model accepts: %v\nbatch %+v", rev, err, ok, b)
		}
		if !ok {
			refused++
		}
		cur = next
		states[rev], times[rev] = cur, at
	}
	if refused == 0 || refused == batches {
		t.Fatalf("%d of %d batches refused: the model test exercises too little", refused, batches)
	}
	checkRevisions(t, s, states, times, 1)

	// Retain the last half hour: revisions below the horizon are refused, the rest unchanged.
	now := times[Revision(batches+1)].Add(30 * time.Minute)
	removed, err := s.CollectGarbage(now)
	if err != nil {
		t.Fatal(err)
	}
	horizon := s.Stats().OldestRetained
	if removed == 0 || horizon != Revision(batches+1)-30 {
		t.Fatalf("gc removed %d versions, horizon %d; want some removed and horizon %d", removed, horizon, batches+1-30)
	}
	if _, err := s.Reader(horizon - 1); !errors.Is(err, ErrRevisionNotRetained) {
		t.Fatalf("reader below the horizon: %v, want ErrRevisionNotRetained", err)
	}
	checkRevisions(t, s, states, times, horizon)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open("db", opts); err != nil {
		t.Fatal(err)
	}
	if s.Revision() != Revision(batches+1) || s.Stats().OldestRetained != horizon {
		t.Fatalf("after reopen: revision %d horizon %d", s.Revision(), s.Stats().OldestRetained)
	}
	if got, want := s.Stats().Relationships, int64(len(cur)); got != want {
		t.Fatalf("after reopen: %d live relationships counted, model has %d", got, want)
	}
	checkRevisions(t, s, states, times, horizon)
}

func checkRevisions(t *testing.T, s *Store, states map[Revision]model, times map[Revision]time.Time, from Revision) {
	t.Helper()
	for rev := from; rev <= s.Revision(); rev++ {
		r, err := s.Reader(rev)
		if err != nil {
			t.Fatalf("reader at %d: %v", rev, err)
		}
		if !r.Time().Equal(times[rev]) {
			t.Fatalf("revision %d: time %v, want %v", rev, r.Time(), times[rev])
		}
		checkReader(t, r, states[rev].visible(times[rev]))
		r.Close()
	}
}

func texts(rels []Relationship) string {
	var b strings.Builder
	for i := range rels {
		b.WriteString(rels[i].String())
		b.WriteByte('\n')
	}
	return b.String()
}

// checkReader compares every read path of r with want (in forward index order).
func checkReader(t *testing.T, r *Reader, want []Relationship) {
	t.Helper()
	rev := r.Revision()
	var all []Relationship
	if err := r.Query(Filter{}, nil, 0, func(rel *Relationship) bool { all = append(all, *rel); return true }); err != nil {
		t.Fatal(err)
	}
	if texts(all) != texts(want) {
		t.Fatalf("revision %d: Query returned\n%swant\n%s", rev, texts(all), texts(want))
	}
	// Paginate two at a time: every relationship once, in order.
	var paged []Relationship
	var after *Relationship
	for {
		var page []Relationship
		if err := r.Query(Filter{ResourceType: "doc"}, after, 2, func(rel *Relationship) bool { page = append(page, *rel); return true }); err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("revision %d: a page of limit 2 returned %d", rev, len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = &page[len(page)-1]
	}
	if texts(paged) != texts(want) {
		t.Fatalf("revision %d: pages returned\n%swant\n%s", rev, texts(paged), texts(want))
	}
	byObject := map[string][]Relationship{}
	bySubject := map[string][]Relationship{}
	for _, rel := range want {
		got, ok, err := r.Get(rel.ResourceType, rel.ResourceID, rel.Relation, rel.SubjectType, rel.SubjectID, rel.SubjectRelation)
		if err != nil || !ok || got.String() != rel.String() {
			t.Fatalf("revision %d: Get(%s) = %v, %v, %v", rev, rel.String(), got.String(), ok, err)
		}
		k := rel.ResourceType + ":" + rel.ResourceID + "#" + rel.Relation
		byObject[k] = append(byObject[k], rel)
		sk := rel.SubjectType + ":" + rel.SubjectID + "#" + rel.SubjectRelation
		bySubject[sk] = append(bySubject[sk], rel)
	}
	for d := range 4 {
		for _, relation := range []string{"viewer", "editor"} {
			id := fmt.Sprint("d", d)
			var got []Relationship
			if err := r.Subjects("doc", id, relation, func(rel *Relationship) bool { got = append(got, *rel); return true }); err != nil {
				t.Fatal(err)
			}
			if w := byObject["doc:"+id+"#"+relation]; texts(got) != texts(w) {
				t.Fatalf("revision %d: Subjects(doc:%s#%s)\n%swant\n%s", rev, id, relation, texts(got), texts(w))
			}
			// SubjectsOfType partitions Subjects.
			var typed []Relationship
			for _, st := range [][2]string{{"user", ""}, {"group", "member"}} {
				if err := r.SubjectsOfType("doc", id, relation, st[0], st[1], func(rel *Relationship) bool {
					if rel.SubjectType != st[0] || rel.SubjectRelation != st[1] {
						t.Fatalf("SubjectsOfType(%s#%s) returned %s", st[0], st[1], rel.String())
					}
					typed = append(typed, *rel)
					return true
				}); err != nil {
					t.Fatal(err)
				}
			}
			if len(typed) != len(got) {
				t.Fatalf("revision %d: SubjectsOfType found %d of doc:%s#%s's %d subjects", rev, len(typed), id, relation, len(got))
			}
		}
	}
	// The reverse index agrees with the forward index.
	subjects := []string{"user:*#", "group:g0#member", "group:g1#member"}
	for u := range 6 {
		subjects = append(subjects, fmt.Sprintf("user:u%d#", u))
	}
	for _, sk := range subjects {
		st, rest, _ := strings.Cut(sk, ":")
		sid, srel, _ := strings.Cut(rest, "#")
		var got []Relationship
		if err := r.Resources(st, sid, srel, "doc", "", func(rel *Relationship) bool { got = append(got, *rel); return true }); err != nil {
			t.Fatal(err)
		}
		w := bySubject[sk]
		sortRels(got)
		sortRels(w)
		if texts(got) != texts(w) {
			t.Fatalf("revision %d: Resources(%s)\n%swant\n%s", rev, sk, texts(got), texts(w))
		}
	}
}

func sortRels(rels []Relationship) {
	sort.Slice(rels, func(i, j int) bool { return identity(&rels[i]) < identity(&rels[j]) })
}
