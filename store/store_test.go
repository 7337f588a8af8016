package store

import (
	"errors"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const dealSchema = `
definition user {}
definition group { relation member: user | group#member }
definition deal {
  relation owner: user
  relation sub_assignee: user limit 5
  relation viewer: user | user:* | group#member
  permission view = owner + sub_assignee + viewer
}
`

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func openMem(t testing.TB) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	return s
}

func rel(t testing.TB, s string) Relationship {
	t.Helper()
	r, err := ParseRelationship(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func creates(t testing.TB, rels ...string) *Batch {
	b := &Batch{}
	for _, s := range rels {
		b.Updates = append(b.Updates, Update{Op: OpCreate, Relationship: rel(t, s)})
	}
	return b
}

func TestValidationMessages(t *testing.T) {
	s := openMem(t)
	r := func(resType, resID, relation, subjType, subjID, subjRel string) Relationship {
		return Relationship{ResourceType: resType, ResourceID: resID, Relation: relation, SubjectType: subjType, SubjectID: subjID, SubjectRelation: subjRel}
	}
	for _, tc := range []struct {
		rel  Relationship
		want string
	}{
		{r("Deal", "1", "owner", "user", "a", ""), `update 0: resource type of Deal:1#owner@user:a: object type "Deal" must match`},
		{r("deal", "1 2", "owner", "user", "a", ""), `update 0: resource id of deal:1 2#owner@user:a: object id "1 2" must match`},
		{r("deal", strings.Repeat("x", 1025), "owner", "user", "a", ""), `object id of 1025 bytes is longer than 1024`},
		{r("deal", "*", "owner", "user", "a", ""), "resource id of deal:*#owner@user:a: `*` is allowed only as a subject id"},
		{r("deal", "1", "Owner", "user", "a", ""), `relation of deal:1#Owner@user:a: relation "Owner" must match`},
		{r("deal", "1", "owner", "user", "a\x00b", ""), `subject id of`},
		{r("deal", "1", "viewer", "group", "eng", "Member"), `subject relation of deal:1#viewer@group:eng#Member`},
		{r("deal", "1", "viewer", "group", "*", "member"), `a wildcard subject cannot have a subject relation`},
		{r("invoice", "1", "owner", "user", "a", ""), `resource type "invoice" is not defined in the schema`},
		{r("deal", "1", "editor", "user", "a", ""), `definition deal has no relation "editor"`},
		{r("deal", "1", "view", "user", "a", ""), `deal#view is a permission; relationships can be written only to relations`},
		{r("deal", "1", "owner", "user", "*", ""), `relation deal#owner does not allow subject user:*`},
		{r("deal", "1", "owner", "group", "eng", "member"), `relation deal#owner does not allow subject group#member`},
		{Relationship{ResourceType: "deal", ResourceID: "1", Relation: "owner", SubjectType: "user", SubjectID: "a", Caveat: "ip"}, `does not allow subject user with ip`},
		{Relationship{ResourceType: "deal", ResourceID: "1", Relation: "owner", SubjectType: "user", SubjectID: "a", Expiration: t0.Add(time.Hour)}, `does not allow subject user with expiration`},
		{Relationship{ResourceType: "deal", ResourceID: "1", Relation: "owner", SubjectType: "user", SubjectID: "a", CaveatContext: map[string]any{"x": 1.0}}, `has a caveat context but no caveat`},
	} {
		rev := s.Revision() + 1
		_, err := s.Apply(Entry{Index: rev}, t0, &Batch{Updates: []Update{{Op: OpTouch, Relationship: tc.rel}}})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "store: invalid relationship: ") {
			t.Errorf("%q: got %v, want ErrInvalid containing %q", tc.rel.String(), err, tc.want)
		}
		if s.Revision() != rev {
			t.Errorf("a refused batch did not advance the revision to %d", rev)
		}
	}
	for _, bad := range []string{"", "A", "a", "a-b", "_ab", "ab_"} {
		if ValidateObjectType(bad) == nil || ValidateRelation(bad) == nil {
			t.Errorf("%q accepted as a type or relation", bad)
		}
	}
	for _, good := range []string{"abc", "user", "tenant/document", "a1_b"} {
		if ValidateObjectType(good) != nil {
			t.Errorf("type %q refused", good)
		}
	}
	for _, good := range []string{"1", "*", "a/b_c|d-e=f+g", strings.Repeat("x", 1024)} {
		if err := ValidateObjectID(good); err != nil {
			t.Errorf("id %q refused: %v", good, err)
		}
	}
}

func TestStaleAndRefusedRevisions(t *testing.T) {
	s := openMem(t)
	if _, err := s.Apply(Entry{Index: 1}, t0, creates(t, "deal:1#owner@user:a")); !errors.Is(err, ErrStaleRevision) {
		t.Fatalf("apply at the applied revision: %v", err)
	}
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); !errors.Is(err, ErrStaleRevision) {
		t.Fatalf("schema at the applied revision: %v", err)
	}
	// A refused schema advances the revision and leaves the schema alone.
	err := s.WriteSchema(Entry{Index: 5}, t0, "definition {")
	if err == nil || errors.Is(err, ErrSchemaStrands) {
		t.Fatalf("bad schema: %v", err)
	}
	if _, _, rev := s.Schema(); rev != 1 || s.Revision() != 5 {
		t.Fatalf("after a refused schema: schema revision %d, revision %d", rev, s.Revision())
	}
	// Gaps between revisions read as the revision before.
	if _, err := s.Apply(Entry{Index: 9}, t0.Add(time.Minute), creates(t, "deal:1#owner@user:a")); err != nil {
		t.Fatal(err)
	}
	r, err := s.Reader(7)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, ok, _ := r.Get("deal", "1", "owner", "user", "a", ""); ok || r.Schema() == nil {
		t.Fatalf("revision 7 sees the write of revision 9 (%v) or no schema", ok)
	}
}

func TestSchemaHistory(t *testing.T) {
	s := openMem(t)
	if err := s.WriteSchema(Entry{Index: 2}, t0, dealSchema+"definition invoice { relation owner: user }"); err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[Revision]bool{1: false, 2: true} {
		r, err := s.Reader(rev)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Schema().Namespace("invoice") != nil; got != want {
			t.Errorf("revision %d: invoice defined %v, want %v", rev, got, want)
		}
		r.Close()
	}
	if _, text, rev := s.Schema(); rev != 2 || !strings.Contains(text, "invoice") {
		t.Errorf("current schema at %d: %q", rev, text)
	}
}

func TestOpenReaderHoldsGarbageCollection(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 2, t0, creates(t, "deal:1#owner@user:a"))
	held, err := s.Reader(2)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 3, t0.Add(time.Minute), &Batch{Updates: []Update{{Op: OpDelete, Relationship: rel(t, "deal:1#owner@user:a")}}})
	mustApply(t, s, 4, t0.Add(2*time.Minute), creates(t, "deal:2#owner@user:a"))

	// Every revision is far older than the window, but the open reader at 2 holds the horizon.
	if _, err := s.CollectGarbage(t0.Add(48 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if h := s.Stats().OldestRetained; h != 2 {
		t.Fatalf("horizon %d with a reader open at 2", h)
	}
	if _, ok, err := held.Get("deal", "1", "owner", "user", "a", ""); !ok || err != nil {
		t.Fatalf("the open reader lost deal:1#owner@user:a: %v %v", ok, err)
	}
	held.Close()
	removed, err := s.CollectGarbage(t0.Add(48 * time.Hour))
	if err != nil || removed != 1 {
		t.Fatalf("gc after the reader closed removed %d: %v", removed, err)
	}
	if _, err := s.Reader(2); !errors.Is(err, ErrRevisionNotRetained) || !strings.Contains(err.Error(), "revision 2, the oldest retained is 4") {
		t.Fatalf("reader at 2 after gc: %v", err)
	}
	if err := s.Changes(1, func(*Change) bool { return true }); !errors.Is(err, ErrRevisionNotRetained) {
		t.Fatalf("changes below the horizon: %v", err)
	}
}

func mustApply(t testing.TB, s *Store, rev Revision, at time.Time, b *Batch) Result {
	t.Helper()
	res, err := s.Apply(Entry{Index: rev}, at, b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestChanges(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 2, t0, creates(t, "deal:1#owner@user:a", "deal:1#viewer@user:*"))
	s.Apply(Entry{Index: 3}, t0, creates(t, "deal:1#owner@user:a")) // refused: skipped by Changes
	mustApply(t, s, 4, t0, &Batch{DeleteFilter: &Filter{ResourceType: "deal", Relation: "viewer"}})
	var got []string
	if err := s.Changes(0, func(c *Change) bool {
		line := c.Time.Format("15:04") + " " + string(rune('0'+c.Revision))
		if c.SchemaChanged {
			line += " schema"
		}
		for _, u := range c.Updates {
			line += " " + []string{"", "touch", "create", "delete"}[u.Op] + " " + u.Relationship.String()
		}
		got = append(got, line)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"12:00 1 schema", "12:00 2 create deal:1#owner@user:a create deal:1#viewer@user:*", "12:00 4 delete deal:1#viewer@user:*"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestReopenOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "kengen") // created by Open
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 2, t0, creates(t, "deal:1#owner@user:a", "deal:1#viewer@group:eng#member"))
	mustApply(t, s, 3, t0.Add(time.Minute), &Batch{Updates: []Update{{Op: OpDelete, Relationship: rel(t, "deal:1#owner@user:a")}}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Revision() != 3 {
		t.Fatalf("revision after reopen: %d", s.Revision())
	}
	if sch, _, rev := s.Schema(); sch == nil || rev != 1 || sch.Namespace("deal").Relation("sub_assignee").Limit != 5 {
		t.Fatalf("schema after reopen: %v at %d", sch, rev)
	}
	if s.Stats().Relationships != 1 {
		t.Fatalf("live relationships after reopen: %d", s.Stats().Relationships)
	}
	r2, err := s.Reader(2)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, ok, _ := r2.Get("deal", "1", "owner", "user", "a", ""); !ok {
		t.Fatal("revision 2 lost deal:1#owner@user:a after reopen")
	}
	r3, err := s.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if _, ok, _ := r3.Get("deal", "1", "owner", "user", "a", ""); ok || !r3.Time().Equal(t0.Add(time.Minute)) {
		t.Fatalf("latest revision sees the deleted relationship (%v) or has time %v", ok, r3.Time())
	}
	if _, ok, _ := r3.Get("deal", "1", "viewer", "group", "eng", "member"); !ok {
		t.Fatal("latest revision lost deal:1#viewer@group:eng#member")
	}
	// The first Reader at the latest revision after reopening remembers its time, so the
	// next ones need no read of the change log.
	if l := s.latest.Load(); l == nil || l.rev != 3 || !l.at.Equal(t0.Add(time.Minute)) {
		t.Errorf("latest revision's time not cached after reopen: %+v", l)
	}
}

func TestCorruptSSTableRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	b := &Batch{}
	for i := range 200 {
		b.Updates = append(b.Updates, Update{Op: OpCreate, Relationship: Relationship{ResourceType: "deal", ResourceID: "d" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Relation: "owner", SubjectType: "user", SubjectID: "u"}})
	}
	mustApply(t, s, 2, t0, b)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable after flush")
	}
	for _, f := range ssts {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < len(data)/2; i += 50 {
			data[i] ^= 0xff
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(dir, Options{Logger: log.New(io.Discard, "", 0)})
	if err == nil {
		s.Close()
		t.Fatal("opened a store with a corrupted sstable")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "store: data directory is corrupt") {
		t.Fatalf("open of a corrupted store: %v, want ErrCorrupt", err)
	}
}

func TestIncompatibleFormatRefused(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := pebble.Open("db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(keyFormat, []byte("kengen-store-99"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open("db", Options{FS: fs})
	if !errors.Is(err, ErrIncompatibleFormat) || !strings.Contains(err.Error(), `has format "kengen-store-99", this build reads "kengen-store-1"`) {
		t.Fatalf("open of another format: %v", err)
	}

	// A Pebble database that is not a kengen store.
	db, err = pebble.Open("other", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	db.Set([]byte("hello"), []byte("world"), pebble.Sync)
	db.Close()
	if _, err := Open("other", Options{FS: fs}); !errors.Is(err, ErrIncompatibleFormat) || !strings.Contains(err.Error(), "without a kengen format marker") {
		t.Fatalf("open of a foreign pebble database: %v", err)
	}

	// A directory of something else entirely is left untouched.
	if err := fs.MkdirAll("photos", 0o755); err != nil {
		t.Fatal(err)
	}
	f, _ := fs.Create("photos/cat.jpg", vfs.WriteCategoryUnspecified)
	f.Close()
	if _, err := Open("photos", Options{FS: fs}); !errors.Is(err, ErrIncompatibleFormat) || !strings.Contains(err.Error(), "not a kengen data directory") {
		t.Fatalf("open of a foreign directory: %v", err)
	}
	if ls, _ := fs.List("photos"); len(ls) != 1 {
		t.Fatalf("open wrote into a foreign directory: %v", ls)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.WriteSchema(Entry{Index: 1}, t0, dealSchema)
	r, err := s.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Subjects("deal", "1", "owner", func(*Relationship) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := s.Apply(Entry{Index: 2}, t0, &Batch{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
	if _, err := s.Reader(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("reader after close: %v", err)
	}
}

// TestConcurrentReadersAndWrites runs readers at fixed revisions while batches are applied and
// garbage is collected; each reader keeps seeing its revision's state.
func TestConcurrentReadersAndWrites(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 2, t0, creates(t, "deal:1#viewer@user:a", "deal:1#viewer@user:b"))
	r, err := s.Reader(2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				n := 0
				if err := r.Subjects("deal", "1", "viewer", func(*Relationship) bool { n++; return true }); err != nil {
					errs <- err
					return
				}
				if n != 2 {
					errs <- errors.New("reader at 2 saw a different state")
					return
				}
			}
		}()
	}
	for rev := Revision(3); rev < 60; rev++ {
		op := OpTouch
		if rev%2 == 1 {
			op = OpDelete
		}
		b := &Batch{Updates: []Update{{Op: op, Relationship: rel(t, "deal:1#viewer@user:a")}, {Op: OpTouch, Relationship: rel(t, "deal:1#viewer@user:c")}}}
		if rev%3 == 0 {
			b.Updates[1].Op = OpDelete
		}
		mustApply(t, s, rev, t0.Add(time.Duration(rev)*time.Hour), b)
		if _, err := s.CollectGarbage(t0.Add(time.Duration(rev) * time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if h := s.Stats().OldestRetained; h != 2 {
		t.Fatalf("horizon %d passed the open reader at 2", h)
	}
}

func TestWriteSchemaRefusesLimitBelowHeld(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 2, t0, creates(t,
		"deal:1#sub_assignee@user:a", "deal:1#sub_assignee@user:b", "deal:1#sub_assignee@user:c",
		"deal:2#sub_assignee@user:a",
		"deal:3#sub_assignee@user:a", "deal:3#sub_assignee@user:b", "deal:3#sub_assignee@user:c",
		"deal:1#viewer@user:a", "deal:1#viewer@user:b"))
	lowered := strings.Replace(dealSchema, "sub_assignee: user limit 5", "sub_assignee: user limit 2", 1)
	err := s.WriteSchema(Entry{Index: 3}, t0, lowered)
	if !errors.Is(err, ErrSchemaStrands) || !strings.Contains(err.Error(), "relation deal#sub_assignee: limit 2, but 2 objects hold more: deal:1 holds 3, deal:3 holds 3") {
		t.Fatalf("lowering the limit below what deal:1 and deal:3 hold: %v", err)
	}
	if s.Revision() != 3 {
		t.Errorf("a refused schema leaves the revision at %d, want 3", s.Revision())
	}
	if _, _, rev := s.Schema(); rev != 1 {
		t.Errorf("the schema in force is from revision %d, want 1", rev)
	}
	// A limit on a relation that had none is checked the same way.
	limitedViewer := strings.Replace(dealSchema, "relation viewer: user | user:* | group#member", "relation viewer: user | user:* | group#member limit 1", 1)
	if err := s.WriteSchema(Entry{Index: 4}, t0, limitedViewer); !errors.Is(err, ErrSchemaStrands) || !strings.Contains(err.Error(), "relation deal#viewer: limit 1, but deal:1 holds 2") {
		t.Fatalf("a new limit below what deal:1 holds: %v", err)
	}
	// At or above what every object holds, the schema is taken; raising it needs no scan.
	if err := s.WriteSchema(Entry{Index: 5}, t0, strings.Replace(dealSchema, "limit 5", "limit 3", 1)); err != nil {
		t.Fatalf("limit 3, deal:1 holds 3: %v", err)
	}
	if err := s.WriteSchema(Entry{Index: 6}, t0, dealSchema); err != nil {
		t.Fatalf("raising the limit again: %v", err)
	}
	// Deleted relationships do not count.
	mustApply(t, s, 7, t0, &Batch{Updates: []Update{
		{Op: OpDelete, Relationship: rel(t, "deal:1#sub_assignee@user:c")},
		{Op: OpDelete, Relationship: rel(t, "deal:3#sub_assignee@user:c")},
	}})
	if err := s.WriteSchema(Entry{Index: 8}, t0, lowered); err != nil {
		t.Fatalf("limit 2 once deal:1 and deal:3 hold 2: %v", err)
	}
}
