package store

import (
	"errors"
	"testing"
	"time"
)

// TestHoldKeepsChanges: garbage collection does not move the horizon past an open Hold, so
// the changes it still has to read stay readable; past Retention + HoldLimit it no longer
// keeps them and reading fails clearly; released, it keeps nothing.
func TestHoldKeepsChanges(t *testing.T) {
	s := openMem(t) // revision 1 at t0; Retention and HoldLimit 1 h
	mustApply(t, s, 2, t0.Add(time.Minute), creates(t, "deal:1#owner@user:a"))
	mustApply(t, s, 3, t0.Add(2*time.Minute), creates(t, "deal:2#owner@user:a"))
	h := s.Hold(1)
	if st := s.Stats(); st.Holds != 1 || st.HeldRevision != 1 {
		t.Fatalf("stats with a hold: %+v", st)
	}
	changes := func() (int, error) {
		n := 0
		err := s.Changes(1, func(*Change) bool { n++; return true })
		return n, err
	}

	// 90 minutes on: past the retention window, within the hold's.
	if _, err := s.CollectGarbage(t0.Add(90 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, err := changes(); err != nil || n != 2 {
		t.Fatalf("changes after 1 with the hold open, 90 minutes on: %d, %v; want both", n, err)
	}
	// The holder moves on: the horizon may follow it, no further.
	h.Move(2)
	if _, err := s.CollectGarbage(t0.Add(90 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.OldestRetained != 2 {
		t.Errorf("horizon %d with the hold at 2, want 2", st.OldestRetained)
	}
	if _, err := changes(); !errors.Is(err, ErrRevisionNotRetained) {
		t.Errorf("changes after 1 once the hold moved past it: %v, want ErrRevisionNotRetained", err)
	}

	// Three hours on: the hold is older than Retention + HoldLimit and keeps nothing.
	if _, err := s.CollectGarbage(t0.Add(3 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.OldestRetained != 3 {
		t.Errorf("horizon %d past the hold's bound, want the latest revision 3", st.OldestRetained)
	}
	h.Release()
	if st := s.Stats(); st.Holds != 0 || st.HeldRevision != 0 {
		t.Errorf("stats after release: %+v", st)
	}
}

// TestWithoutHoldGCPassesTheStart: the same collection without a hold moves past revision 1,
// which is what a lagging Watch stream met before it held its place.
func TestWithoutHoldGCPassesTheStart(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, 2, t0.Add(time.Minute), creates(t, "deal:1#owner@user:a"))
	mustApply(t, s, 3, t0.Add(2*time.Minute), creates(t, "deal:2#owner@user:a"))
	if _, err := s.CollectGarbage(t0.Add(90 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Changes(1, func(*Change) bool { return true }); !errors.Is(err, ErrRevisionNotRetained) {
		t.Errorf("changes after 1 with no hold: %v, want ErrRevisionNotRetained", err)
	}
}
