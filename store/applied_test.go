package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// The applied entry's identity (index and term) is committed with the write, survives a
// reopen and a refused batch, and a store written before terms were recorded (an 8-byte
// record) opens with term 0.
func TestAppliedEntryIsRecorded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSchema(Entry{Index: 3, Term: 2}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	if got := s.AppliedEntry(); got != (Entry{Index: 3, Term: 2}) {
		t.Fatalf("after the schema: %+v", got)
	}
	if _, err := s.Apply(Entry{Index: 4, Term: 5}, t0, creates(t, "deal:1#owner@user:a")); err != nil {
		t.Fatal(err)
	}
	// A refused batch advances the applied entry too.
	if _, err := s.Apply(Entry{Index: 6, Term: 7}, t0, creates(t, "deal:1#owner@user:a")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{GCInterval: -1}); err != nil {
		t.Fatal(err)
	}
	if got := s.AppliedEntry(); got != (Entry{Index: 6, Term: 7}) {
		t.Fatalf("after reopen: %+v, want index 6 term 7", got)
	}
	// The record of an older build: the revision alone.
	if err := s.db.Set(keyApplied, appendRev(nil, 6), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{GCInterval: -1}); err != nil {
		t.Fatal(err)
	}
	if got := s.AppliedEntry(); got != (Entry{Index: 6}) {
		t.Fatalf("an 8-byte record: %+v, want index 6 term 0", got)
	}
	// A record of another length (checksums hold, the value is wrong) is refused: read as
	// revision 0 it would have raft apply every entry again over the data.
	if err := s.db.Set(keyApplied, []byte{0, 0, 6}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, Options{GCInterval: -1})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "applied-revision record is 3 bytes") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open with a 3-byte applied record: %v, want ErrCorrupt naming it and the directory", err)
	}
}
