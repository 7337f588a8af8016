package store

import (
	"fmt"
	"strconv"
	"testing"
)

// Write cost of the Leopard index (figures in docs/benchmarks.md, "Leopard index: writes").
//
// BenchmarkReparent moves one role, with a subtree beneath it, between two parents that sit
// three levels under the root, one commit per move (delete the old parent edge, create the
// new one): every role in the subtree has its closure change by the ancestors it loses and
// gains. "tree" is a CRM-shaped subtree (branching 4, depth 6: 1,365 roles), "chain" a
// 1,000-level chain below the moved role, the worst case for the closures' sizes.
//
// BenchmarkFollowers commits batches of 1,000 account followers (a relation the index does
// not cover) over a store that also holds the role tree, with the index on and off.

const reparentSchema = `
definition user {}
definition role {
	relation member: user
	relation parent: role
	permission see = member + parent->see
}
definition account {
	relation owner_role: role
	relation follower: user
	permission view = follower + owner_role->see
}
`

func openLeopardBench(b *testing.B, noIndex bool) (*Store, func(*Batch)) {
	b.Helper()
	s, err := Open(b.TempDir(), Options{NoSync: true, GCInterval: -1, SkipVerify: true, NoClosureIndex: noIndex})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.WriteSchema(Entry{Index: 1}, t0, reparentSchema); err != nil {
		b.Fatal(err)
	}
	apply := func(batch *Batch) {
		if _, err := s.Apply(Entry{Index: s.Revision() + 1}, t0, batch); err != nil {
			b.Fatal(err)
		}
	}
	return s, apply
}

func parentOf(child, parent string) Update {
	return Update{Op: OpCreate, Relationship: Relationship{ResourceType: "role", ResourceID: child, Relation: "parent", SubjectType: "role", SubjectID: parent}}
}

// loadReparent writes top-0 → top-1 → top-2 with two children p0 and p1 under top-2, the
// moved role m under p0, and beneath m either a tree (branching 4, depth 6 including m) or a
// chain of the given length. It returns how many roles sit beneath m.
func loadReparent(b *testing.B, apply func(*Batch), shape string, size int) int {
	batch := &Batch{}
	add := func(u Update) {
		batch.Updates = append(batch.Updates, u)
		if len(batch.Updates) == 1000 {
			apply(batch)
			batch = &Batch{}
		}
	}
	add(parentOf("top-1", "top-0"))
	add(parentOf("top-2", "top-1"))
	add(parentOf("p0", "top-2"))
	add(parentOf("p1", "top-2"))
	add(parentOf("m", "p0"))
	below := 0
	switch shape {
	case "tree":
		// m is node 0 of the subtree; node i's children are i*4+1 .. i*4+4.
		name := func(i int) string {
			if i == 0 {
				return "m"
			}
			return "t" + strconv.Itoa(i)
		}
		for i := 1; i < size; i++ {
			add(parentOf(name(i), name((i-1)/4)))
			below++
		}
	case "chain":
		prev := "m"
		for i := range size {
			id := "c" + strconv.Itoa(i)
			add(parentOf(id, prev))
			prev = id
			below++
		}
	}
	if len(batch.Updates) > 0 {
		apply(batch)
	}
	return below
}

func BenchmarkReparent(b *testing.B) {
	for _, c := range []struct {
		shape string
		size  int
	}{{"tree", 1365}, {"chain", 1000}} {
		for _, noIndex := range []bool{false, true} {
			name := c.shape
			if noIndex {
				name += "/index-off"
			}
			b.Run(name, func(b *testing.B) {
				s, apply := openLeopardBench(b, noIndex)
				below := loadReparent(b, apply, c.shape, c.size)
				from, to := "p0", "p1"
				for b.Loop() {
					apply(&Batch{Updates: []Update{
						{Op: OpDelete, Relationship: parentOf("m", from).Relationship},
						parentOf("m", to),
					}})
					from, to = to, from
				}
				b.ReportMetric(float64(below), "roles-beneath")
				if !noIndex {
					r, err := s.Reader(0)
					if err != nil {
						b.Fatal(err)
					}
					defer r.Close()
					leaf := "c" + strconv.Itoa(c.size-1)
					if c.shape == "tree" {
						leaf = "t" + strconv.Itoa(c.size-1)
					}
					// Under the closure budget the leaf may be marked (ok false): then it is walked.
					reaches, ok, err := r.Reaches(Edge{Type: "role", Relation: "parent"}, leaf, from)
					if err != nil || (ok && !reaches) {
						b.Fatalf("%s reaches %s: %v (ok %v, %v), want true", leaf, from, reaches, ok, err)
					}
				}
			})
		}
	}
}

func BenchmarkFollowers(b *testing.B) {
	for _, noIndex := range []bool{false, true} {
		name := "index-on"
		if noIndex {
			name = "index-off"
		}
		b.Run(name, func(b *testing.B) {
			s, apply := openLeopardBench(b, noIndex)
			loadReparent(b, apply, "tree", 1365)
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				batch := &Batch{Updates: make([]Update, 0, 1000)}
				for range 1000 {
					batch.Updates = append(batch.Updates, Update{Op: OpCreate, Relationship: Relationship{
						ResourceType: "account", ResourceID: fmt.Sprint("a", n/3), Relation: "follower", SubjectType: "user", SubjectID: fmt.Sprint("u", n%3000)}})
					n++
				}
				apply(batch)
			}
		})
	}
}
