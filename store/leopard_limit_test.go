package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Maintenance computes the closures before a batch instead of reading them back, and reads a
// stored closure only where the computed one overflows. A store reopened with a different
// ClosureLimit holds closures stored under the old limit: every closure the index then
// serves must still be exact. A chain r9 → … → r0 hangs under a or b and is moved between
// them, under limits 12, 3 and 50 in turn.
func TestClosureLimitChangedOnReopen(t *testing.T) {
	fs := vfs.NewMem()
	parent := Edge{Type: "role", Relation: "parent"}
	under := "a"
	for round, limit := range []int{12, 3, 50, 3, 12} {
		s, err := Open("db", Options{FS: fs, NoSync: true, GCInterval: -1, ClosureLimit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if err := s.WriteSchema(Entry{Index: 1}, t0, roleSchema); err != nil {
				t.Fatal(err)
			}
			b := creates(t, "role:a#parent@role:top", "role:b#parent@role:top", "role:top#parent@role:root", "role:r0#parent@role:a")
			for i := 1; i < 10; i++ {
				b.Updates = append(b.Updates, Update{Op: OpCreate, Relationship: rel(t, fmt.Sprintf("role:r%d#parent@role:r%d", i, i-1))})
			}
			if _, err := s.Apply(Entry{Index: 2}, t0, b); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			next := map[string]string{"a": "b", "b": "a"}[under]
			b := &Batch{Updates: []Update{
				{Op: OpDelete, Relationship: rel(t, "role:r0#parent@role:"+under)},
				{Op: OpCreate, Relationship: rel(t, "role:r0#parent@role:"+next)},
			}}
			if _, err := s.Apply(Entry{Index: s.Revision() + 1}, t0, b); err != nil {
				t.Fatalf("round %d (limit %d): %v", round, limit, err)
			}
			under = next
		}
		// The true closures: r_i reaches r_0 … r_(i-1), under, top and root.
		r, err := s.Reader(0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			want := []string{under, "root", "top"}
			for j := range i {
				want = append(want, fmt.Sprint("r", j))
			}
			slices.Sort(want)
			var got []string
			ok, err := r.Closure(parent, fmt.Sprint("r", i), func(id string) bool { got = append(got, id); return true })
			if err != nil {
				t.Fatal(err)
			}
			if ok && !slices.Equal(got, want) {
				t.Errorf("round %d (limit %d): closure of r%d is %v, want %v", round, limit, i, got, want)
			}
			if !ok && len(want) <= limit {
				t.Errorf("round %d (limit %d): closure of r%d (%d objects) overflowed", round, limit, i, len(want))
			}
		}
		r.Close()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
