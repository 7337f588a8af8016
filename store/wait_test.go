package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// WaitApplied returns once the revision is applied, woken by the apply itself, and ends with
// the context: ErrRevisionNotApplied wrapping context.Canceled for a client that went away,
// context.DeadlineExceeded for one whose deadline passed.
func TestWaitAppliedEndsWithTheContext(t *testing.T) {
	s := openMem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitApplied(ctx, s.Revision()); err != nil {
		t.Fatalf("waiting for the applied revision: %v", err)
	}

	want := s.Revision() + 1
	done := make(chan error, 1)
	go func() { done <- s.WaitApplied(ctx, want) }()
	select {
	case err := <-done:
		t.Fatalf("returned %v before revision %d was applied", err, want)
	case <-time.After(20 * time.Millisecond):
	}
	if _, err := s.Apply(Entry{Index: want}, t0, &Batch{Updates: []Update{{Op: OpTouch, Relationship: rel(t, "deal:1#owner@user:sato")}}}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("after the apply: %v", err)
	}

	gone, stop := context.WithCancel(context.Background())
	go func() { done <- s.WaitApplied(gone, want+100) }()
	stop()
	if err := <-done; !errors.Is(err, ErrRevisionNotApplied) || !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled waiter: %v, want ErrRevisionNotApplied wrapping context.Canceled", err)
	}
	short, stop2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer stop2()
	if err := s.WaitApplied(short, want+100); !errors.Is(err, ErrRevisionNotApplied) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a waiter past its deadline: %v, want ErrRevisionNotApplied wrapping context.DeadlineExceeded", err)
	}
}
