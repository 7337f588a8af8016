package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const expirySchema = `use expiration
definition user {}
definition folder {}
definition document {
  relation parent: folder with expiration
  relation helper: user with expiration limit 2
  relation viewer: user | user with expiration
}`

// The same schema without folder and the relation that used it.
const expirySchemaNoFolder = `use expiration
definition user {}
definition document {
  relation helper: user with expiration limit 2
  relation viewer: user | user with expiration
}`

func openExpiry(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: fs, NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.Revision() == 0 {
		if err := s.WriteSchema(Entry{Index: 1}, t0, expirySchema); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func exp(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }

// queryAll lists the relationships visible at rev (0: latest), as an export would.
func queryAll(t *testing.T, s *Store, rev Revision) string {
	t.Helper()
	r, err := s.Reader(rev)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	if err := r.Query(Filter{}, nil, 0, func(rel *Relationship) bool { out = append(out, rel.String()); return true }); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

// forwardVersions counts the stored versions (visible or not) under the forward index.
func forwardVersions(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := scanPrefix(s.db, []byte{prefixForward}, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func nextExpiration(t *testing.T, s *Store) string {
	t.Helper()
	next, ok, err := s.NextExpiration()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return "none"
	}
	return next.Format(time.RFC3339)
}

func TestExpiredRelationshipsAreCollected(t *testing.T) {
	s := openExpiry(t, vfs.NewMem())
	mustApply(t, s, 2, t0, creates(t,
		"document:1#parent@folder:a[expiration:"+exp(10*time.Minute)+"]",
		"document:1#helper@user:h[expiration:"+exp(20*time.Minute)+"]",
		"document:1#viewer@user:v"))
	if got := s.Stats().Relationships; got != 3 {
		t.Fatalf("%d relationships counted, want 3", got)
	}
	if got := nextExpiration(t, s); got != exp(10*time.Minute) {
		t.Fatalf("next expiration %s, want %s", got, exp(10*time.Minute))
	}
	// Before the expiration: nothing collected.
	mustApply(t, s, 3, t0.Add(9*time.Minute), &Batch{})
	if got := s.Stats().Relationships; got != 3 {
		t.Fatalf("%d relationships counted before any expiration, want 3", got)
	}
	// An empty batch at the expiration (a clock entry) collects the parent only.
	mustApply(t, s, 4, t0.Add(10*time.Minute), &Batch{})
	if got := s.Stats().Relationships; got != 2 {
		t.Fatalf("%d relationships counted after the first expiration, want 2", got)
	}
	if got := nextExpiration(t, s); got != exp(20*time.Minute) {
		t.Fatalf("next expiration %s, want %s", got, exp(20*time.Minute))
	}
	mustApply(t, s, 5, t0.Add(time.Hour), &Batch{})
	if got, want := queryAll(t, s, 0), "document:1#viewer@user:v"; got != want {
		t.Fatalf("export at the latest revision: %s, want %s", got, want)
	}
	if got := s.Stats().Relationships; got != 1 {
		t.Fatalf("%d relationships counted after both expirations, want 1", got)
	}
	if got := nextExpiration(t, s); got != "none" {
		t.Fatalf("next expiration %s after every expiration, want none", got)
	}
	// Older revisions read as before: each judges expiration at its own time.
	want3 := "document:1#helper@user:h[expiration:" + exp(20*time.Minute) + "] document:1#parent@folder:a[expiration:" + exp(10*time.Minute) + "] document:1#viewer@user:v"
	if got := queryAll(t, s, 3); got != want3 {
		t.Fatalf("at revision 3: %s\nwant %s", got, want3)
	}
	if got, want := queryAll(t, s, 4), "document:1#helper@user:h[expiration:"+exp(20*time.Minute)+"] document:1#viewer@user:v"; got != want {
		t.Fatalf("at revision 4: %s\nwant %s", got, want)
	}
	// Watch does not report collections: the clock revisions carry no updates.
	if err := s.Changes(2, func(c *Change) bool {
		if len(c.Updates) != 0 {
			t.Errorf("revision %d reports %d updates: %+v", c.Revision, len(c.Updates), c.Updates)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	// Garbage collection removes the collected versions for good once no revision sees them.
	if n := forwardVersions(t, s); n != 3 {
		t.Fatalf("%d forward versions before GC, want 3", n)
	}
	if _, err := s.CollectGarbage(t0.Add(time.Hour + DefaultRetention)); err != nil {
		t.Fatal(err)
	}
	if n := forwardVersions(t, s); n != 1 {
		t.Fatalf("%d forward versions after GC, want 1 (the viewer)", n)
	}
}

// The failure found running SpiceDB's test files in a row: a schema that drops a definition
// was refused for relationships that had expired.
func TestExpiredRelationshipsDoNotStrandASchema(t *testing.T) {
	s := openExpiry(t, vfs.NewMem())
	mustApply(t, s, 2, t0, creates(t, "document:1#parent@folder:a[expiration:"+exp(time.Minute)+"]", "document:1#viewer@user:v"))
	err := s.WriteSchema(Entry{Index: 3}, t0.Add(30*time.Second), expirySchemaNoFolder)
	if !errors.Is(err, ErrSchemaStrands) || !strings.Contains(err.Error(), "relation document#parent: 1 relationships with subject folder with expiration") {
		t.Fatalf("schema dropping a live relationship's definition: %v, want ErrSchemaStrands naming document#parent", err)
	}
	// No write in between: the schema write's own time collects the expired relationship.
	if err := s.WriteSchema(Entry{Index: 4}, t0.Add(2*time.Minute), expirySchemaNoFolder); err != nil {
		t.Fatalf("schema change once the relationship expired: %v", err)
	}
	if got := s.Stats().Relationships; got != 1 {
		t.Fatalf("%d relationships counted after the schema change, want 1", got)
	}
	if got := nextExpiration(t, s); got != "none" {
		t.Fatalf("next expiration %s, want none", got)
	}
	// The revision before the schema change still reads the relationship it could see.
	if got, want := queryAll(t, s, 2), "document:1#parent@folder:a[expiration:"+exp(time.Minute)+"] document:1#viewer@user:v"; got != want {
		t.Fatalf("at revision 2: %s, want %s", got, want)
	}
}

func TestExpiredRelationshipsDoNotCountForLimits(t *testing.T) {
	s := openExpiry(t, vfs.NewMem())
	mustApply(t, s, 2, t0, creates(t,
		"document:1#helper@user:a[expiration:"+exp(time.Minute)+"]",
		"document:1#helper@user:b[expiration:"+exp(time.Minute)+"]"))
	if _, err := s.Apply(Entry{Index: 3}, t0.Add(30*time.Second), creates(t, "document:1#helper@user:c")); !errors.Is(err, ErrRelationLimit) {
		t.Fatalf("third helper before the expiration: %v, want ErrRelationLimit", err)
	}
	mustApply(t, s, 4, t0.Add(time.Minute), creates(t, "document:1#helper@user:c", "document:1#helper@user:d"))
	if got := s.Stats().Relationships; got != 2 {
		t.Fatalf("%d relationships counted, want 2", got)
	}
	// A lower limit is checked against what has not expired.
	lowered := strings.Replace(expirySchema, "limit 2", "limit 1", 1)
	mustApply(t, s, 5, t0.Add(2*time.Minute), &Batch{Updates: []Update{
		{Op: OpDelete, Relationship: rel(t, "document:1#helper@user:c")},
		{Op: OpTouch, Relationship: rel(t, "document:1#helper@user:d[expiration:"+exp(3*time.Minute)+"]")},
		{Op: OpCreate, Relationship: rel(t, "document:1#helper@user:e[expiration:"+exp(3*time.Minute)+"]")},
	}})
	if err := s.WriteSchema(Entry{Index: 6}, t0.Add(150*time.Second), lowered); !errors.Is(err, ErrSchemaStrands) {
		t.Fatalf("limit 1 while two helpers are live: %v, want ErrSchemaStrands", err)
	}
	if err := s.WriteSchema(Entry{Index: 7}, t0.Add(3*time.Minute), lowered); err != nil {
		t.Fatalf("limit 1 once both helpers expired: %v", err)
	}
}

// A touch or delete that ends a version with an expiration takes it out of the index.
func TestExpirationIndexFollowsTouchAndDelete(t *testing.T) {
	s := openExpiry(t, vfs.NewMem())
	mustApply(t, s, 2, t0, creates(t,
		"document:1#viewer@user:a[expiration:"+exp(time.Minute)+"]",
		"document:1#viewer@user:b[expiration:"+exp(2*time.Minute)+"]"))
	mustApply(t, s, 3, t0.Add(time.Second), &Batch{Updates: []Update{
		{Op: OpTouch, Relationship: rel(t, "document:1#viewer@user:a[expiration:"+exp(time.Hour)+"]")},
		{Op: OpDelete, Relationship: rel(t, "document:1#viewer@user:b")},
	}})
	if got := nextExpiration(t, s); got != exp(time.Hour) {
		t.Fatalf("next expiration %s, want %s", got, exp(time.Hour))
	}
	mustApply(t, s, 4, t0.Add(2*time.Second), &Batch{Updates: []Update{{Op: OpTouch, Relationship: rel(t, "document:1#viewer@user:a")}}})
	if got := nextExpiration(t, s); got != "none" {
		t.Fatalf("next expiration %s after the touch removed it, want none", got)
	}
	mustApply(t, s, 5, t0.Add(2*time.Hour), &Batch{})
	if got := s.Stats().Relationships; got != 1 {
		t.Fatalf("%d relationships counted, want 1", got)
	}
	// A relationship written already expired is collected by its own batch.
	mustApply(t, s, 6, t0.Add(3*time.Hour), creates(t, "document:2#viewer@user:z[expiration:"+exp(time.Hour)+"]"))
	if got := s.Stats().Relationships; got != 1 {
		t.Fatalf("%d relationships counted after writing an expired one, want 1", got)
	}
	if got := nextExpiration(t, s); got != "none" {
		t.Fatalf("next expiration %s, want none", got)
	}
}

// One Apply collects at most expireLimit versions; the next collects the rest.
func TestExpireIsBoundedPerApply(t *testing.T) {
	s := openExpiry(t, vfs.NewMem())
	const n = expireLimit + 7
	b := &Batch{}
	for i := range n {
		b.Updates = append(b.Updates, Update{Op: OpCreate, Relationship: rel(t, fmt.Sprintf("document:%d#viewer@user:u[expiration:%s]", i, exp(time.Minute)))})
	}
	mustApply(t, s, 2, t0, b)
	mustApply(t, s, 3, t0.Add(time.Minute), &Batch{})
	if got := s.Stats().Relationships; got != n-expireLimit {
		t.Fatalf("%d relationships counted after one Apply, want %d", got, n-expireLimit)
	}
	if got := queryAll(t, s, 0); got != "" {
		t.Fatalf("expired relationships visible: %.100s", got)
	}
	mustApply(t, s, 4, t0.Add(time.Minute), &Batch{})
	if got := s.Stats().Relationships; got != 0 {
		t.Fatalf("%d relationships counted after two Applies, want 0", got)
	}
}

// A store written before the expiration index: Open builds it, and collection works.
func TestExpirationIndexBuiltForOldStore(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs, NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSchema(Entry{Index: 1}, t0, expirySchema); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 2, t0, creates(t,
		"document:1#viewer@user:a[expiration:"+exp(time.Minute)+"]",
		"document:1#viewer@user:b[expiration:"+exp(2*time.Minute)+"]",
		"document:1#viewer@user:c"))
	mustApply(t, s, 3, t0.Add(time.Second), &Batch{Updates: []Update{{Op: OpDelete, Relationship: rel(t, "document:1#viewer@user:a")}}})
	// Make it what an older build wrote: no index, no marker.
	if err := s.db.DeleteRange([]byte{prefixExpiry}, []byte{prefixExpiry + 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Delete(keyExpiryIndexed, nil); err != nil {
		t.Fatal(err)
	}
	if got := nextExpiration(t, s); got != "none" {
		t.Fatalf("next expiration %s with the index removed, want none", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openExpiry(t, fs)
	if _, ok, err := s.get(keyExpiryIndexed); err != nil || !ok {
		t.Fatalf("marker after Open: %v, %v", ok, err)
	}
	// Only the live version of b: a's version ended before the index was built.
	if got := nextExpiration(t, s); got != exp(2*time.Minute) {
		t.Fatalf("next expiration %s after Open, want %s", got, exp(2*time.Minute))
	}
	mustApply(t, s, 4, t0.Add(2*time.Minute), &Batch{})
	if got := s.Stats().Relationships; got != 1 {
		t.Fatalf("%d relationships counted, want 1", got)
	}
	if err := s.WriteSchema(Entry{Index: 5}, t0.Add(3*time.Minute), expirySchemaNoFolder); err != nil {
		t.Fatal(err)
	}
}

func TestExpiryTimeOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999999999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		t0,
		time.Date(2323, 12, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := range times {
		k := appendExpiryTime(nil, times[i])
		if got := decodeExpiryTime(k); !got.Equal(times[i]) {
			t.Fatalf("%v round trips as %v", times[i], got)
		}
		if i > 0 && string(appendExpiryTime(nil, times[i-1])) >= string(k) {
			t.Fatalf("%v does not sort before %v", times[i-1], times[i])
		}
	}
}

// Revision times never go back: a batch dated before the latest revision (a leader whose
// clock stepped back) gets the latest revision's time, so a relationship hidden by that time
// does not show again.
func TestRevisionTimeNeverGoesBack(t *testing.T) {
	s := openExpiry(t, vfs.NewMem())
	mustApply(t, s, 2, t0, creates(t, "document:1#viewer@user:a[expiration:"+exp(8*time.Minute)+"]", "document:1#viewer@user:b"))
	// A refused batch at 00:10 collects nothing, but its revision's time hides user:a.
	if _, err := s.Apply(Entry{Index: 3}, t0.Add(10*time.Minute), creates(t, "document:1#viewer@user:b")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate create: %v, want ErrAlreadyExists", err)
	}
	if got, want := queryAll(t, s, 0), "document:1#viewer@user:b"; got != want {
		t.Fatalf("after the refused batch: %s, want %s", got, want)
	}
	mustApply(t, s, 4, t0.Add(5*time.Minute), &Batch{})
	r, err := s.Reader(4)
	if err != nil {
		t.Fatal(err)
	}
	at := r.Time()
	r.Close()
	if !at.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("revision 4 has time %v, want the latest revision's %v", at, t0.Add(10*time.Minute))
	}
	if got, want := queryAll(t, s, 0), "document:1#viewer@user:b"; got != want {
		t.Fatalf("after a batch dated earlier: %s, want %s", got, want)
	}
	if got := s.Stats().Relationships; got != 1 {
		t.Fatalf("%d relationships counted, want 1", got)
	}
}
