package store

import (
	"strconv"
	"strings"
	"testing"
)

// An iterator lent to a Reader must have been created after the Reader's revision was
// applied: one kept from before a write would not see it.
func TestPooledIteratorsSeeEveryWrite(t *testing.T) {
	s := openMem(t)
	old, err := s.Reader(0) // stays open across the writes, at revision 1
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	for i := range 20 {
		owner := "u" + strconv.Itoa(i)
		mustApply(t, s, s.Revision()+1, t0, creates(t, "deal:1#viewer@user:"+owner))
		r, err := s.Reader(0)
		if err != nil {
			t.Fatal(err)
		}
		// Several reads per Reader, so that iterators go back to the pool in between.
		for j := 0; j <= i; j++ {
			if _, ok, err := r.Get("deal", "1", "viewer", "user", "u"+strconv.Itoa(j), ""); err != nil || !ok {
				t.Fatalf("after write %d: deal:1#viewer@user:u%d not visible (%v)", i, j, err)
			}
		}
		r.Close()
		if _, ok, _ := old.Get("deal", "1", "viewer", "user", owner, ""); ok {
			t.Fatalf("the Reader at revision %d sees deal:1#viewer@user:%s, written later", old.Revision(), owner)
		}
	}
	if n := len(s.iters.mu.free); n == 0 {
		t.Error("no iterator went back to the pool")
	}
	for _, it := range s.iters.mu.free {
		if it.born != s.Revision() {
			t.Errorf("the pool keeps an iterator born at %d, the latest revision is %d", it.born, s.Revision())
		}
	}
}

func TestObjectReadsWholeOrNothing(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 2, t0, creates(t, "deal:1#owner@user:a", "deal:1#viewer@user:b", "deal:1#viewer@group:eng#member",
		"deal:1#sub_assignee@user:gone", "deal:10#owner@user:z"))
	mustApply(t, s, 3, t0, &Batch{Updates: []Update{{Op: OpDelete, Relationship: rel(t, "deal:1#sub_assignee@user:gone")}}})
	r, err := s.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rels, complete, err := r.Object("deal", "1", 3)
	if err != nil || !complete {
		t.Fatalf("limit 3: complete %v, %v", complete, err)
	}
	var got []string
	for _, x := range rels {
		got = append(got, x.String())
	}
	// Forward index order; not the deleted one, not deal:10's.
	want := []string{"deal:1#owner@user:a", "deal:1#viewer@user:b", "deal:1#viewer@group:eng#member"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("deal:1 read whole: %v, want %v", got, want)
	}
	if rels, complete, err := r.Object("deal", "1", 2); err != nil || complete || rels != nil {
		t.Errorf("limit 2: %v, complete %v, %v; want nothing and incomplete", rels, complete, err)
	}
}
