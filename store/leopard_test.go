package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const roleSchema = `
definition user {}
definition role {
	relation member: user
	relation parent: role
	permission see = member + parent->see
}
definition group {
	relation member: user | group#member
}
`

// closureOf lists the objects the index says `from` reaches at the Reader's revision.
func closureOf(t *testing.T, r *Reader, e Edge, from string) []string {
	t.Helper()
	var ids []string
	ok, err := r.Closure(e, from, func(id string) bool { ids = append(ids, id); return true })
	if err != nil || !ok {
		t.Fatalf("closure of %s: ok %v, %v", from, ok, err)
	}
	return ids
}

func TestClosureVersionsAndGC(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true, GCInterval: -1, Retention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteSchema(Entry{Index: 1}, t0, roleSchema); err != nil {
		t.Fatal(err)
	}
	parent := Edge{Type: "role", Relation: "parent"}
	// c → b → a, then c re-parented to x.
	if _, err := s.Apply(Entry{Index: 2}, t0, creates(t, "role:b#parent@role:a", "role:c#parent@role:b")); err != nil {
		t.Fatal(err)
	}
	b := &Batch{Updates: []Update{
		{Op: OpDelete, Relationship: rel(t, "role:c#parent@role:b")},
		{Op: OpCreate, Relationship: rel(t, "role:c#parent@role:x")},
	}}
	if _, err := s.Apply(Entry{Index: 3}, t0.Add(time.Hour), b); err != nil {
		t.Fatal(err)
	}
	r2, _ := s.Reader(2)
	if got := closureOf(t, r2, parent, "c"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("closure of c at revision 2: %v, want [a b]", got)
	}
	r2.Close()
	r3, _ := s.Reader(3)
	if got := closureOf(t, r3, parent, "c"); len(got) != 1 || got[0] != "x" {
		t.Errorf("closure of c at revision 3: %v, want [x]", got)
	}
	if reaches, ok, _ := r3.Reaches(parent, "c", "a"); !ok || reaches {
		t.Errorf("c reaches a at revision 3: %v (ok %v), want false", reaches, ok)
	}
	r3.Close()

	// Revision 2's versions ended at 3; once the horizon passes 3 they are deleted.
	ended := func() int {
		n := 0
		_ = scanPrefix(s.db, []byte{prefixClosure}, func(_, v []byte) (bool, error) {
			if valueDeleted(v) != live {
				n++
			}
			return true, nil
		})
		return n
	}
	if n := ended(); n != 2 {
		t.Fatalf("%d ended closure versions before GC, want 2 (c→a, c→b)", n)
	}
	if _, err := s.CollectGarbage(t0.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := ended(); n != 0 {
		t.Errorf("%d ended closure versions after GC, want 0", n)
	}
	r, _ := s.Reader(0)
	defer r.Close()
	if got := closureOf(t, r, parent, "c"); len(got) != 1 || got[0] != "x" {
		t.Errorf("closure of c after GC: %v, want [x]", got)
	}
}

// A closure larger than the limit is not stored: the object is marked and callers walk.
func TestClosureOverflow(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true, GCInterval: -1, ClosureLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteSchema(Entry{Index: 1}, t0, roleSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(Entry{Index: 2}, t0, creates(t, "role:r1#parent@role:r0", "role:r2#parent@role:r1", "role:r3#parent@role:r2", "role:r4#parent@role:r3")); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Reader(0)
	defer r.Close()
	parent := Edge{Type: "role", Relation: "parent"}
	if got := closureOf(t, r, parent, "r3"); len(got) != 3 {
		t.Errorf("closure of r3: %v, want 3 roles", got)
	}
	for _, from := range []string{"r4"} {
		if _, ok, err := r.Reaches(parent, from, "r0"); ok || err != nil {
			t.Errorf("%s: ok %v, %v; want an overflow (4 ancestors, limit 3)", from, ok, err)
		}
	}
}

// Cycles: every member of a cycle reaches every other and itself.
func TestClosureCycle(t *testing.T) {
	s := openMemSchema(t, roleSchema)
	if _, err := s.Apply(Entry{Index: 2}, t0, creates(t, "group:a#member@group:b#member", "group:b#member@group:c#member", "group:c#member@group:a#member", "group:d#member@group:a#member")); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Reader(0)
	defer r.Close()
	member := Edge{Type: "group", Relation: "member", SubjectRelation: "member"}
	for from, want := range map[string]string{"a": "[a b c]", "b": "[a b c]", "d": "[a b c]"} {
		if got := closureOf(t, r, member, from); fmtList(got) != want {
			t.Errorf("closure of %s: %v, want %s", from, got, want)
		}
	}
}

func openMemSchema(t *testing.T, text string) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WriteSchema(Entry{Index: 1}, t0, text); err != nil {
		t.Fatal(err)
	}
	return s
}

func fmtList(ids []string) string {
	out := "["
	for i, id := range ids {
		if i > 0 {
			out += " "
		}
		out += id
	}
	return out + "]"
}
