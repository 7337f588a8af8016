package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func hasRel(t *testing.T, s *Store, r string) bool {
	t.Helper()
	rd, err := s.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	x := rel(t, r)
	_, ok, err := rd.Get(x.ResourceType, x.ResourceID, x.Relation, x.SubjectType, x.SubjectID, x.SubjectRelation)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// A checkpoint holds exactly its revision; restoring it replaces a store in place, and the
// Store value keeps working (reads, writes) afterwards.
func TestCheckpointRestore(t *testing.T) {
	fs := vfs.NewMem()
	src, err := Open("src", Options{FS: fs, NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	mustApply(t, src, 2, t0, creates(t, "deal:1#owner@user:sato"))
	cp, err := src.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, src, 3, t0, creates(t, "deal:2#owner@user:ito")) // after the checkpoint
	var buf bytes.Buffer
	if _, err := cp.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if cp.Revision != 2 {
		t.Fatalf("checkpoint revision %d, want 2", cp.Revision)
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}

	dst, err := Open("dst", Options{FS: fs, NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	mustApply(t, dst, 2, t0, creates(t, "deal:9#owner@user:other"))
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if dst.Revision() != 2 {
		t.Errorf("restored revision %d, want 2", dst.Revision())
	}
	if !hasRel(t, dst, "deal:1#owner@user:sato") || hasRel(t, dst, "deal:2#owner@user:ito") || hasRel(t, dst, "deal:9#owner@user:other") {
		t.Error("the restored store does not hold exactly the checkpoint's relationships")
	}
	if _, _, rev := dst.Schema(); rev != 1 {
		t.Errorf("restored schema revision %d, want 1", rev)
	}
	mustApply(t, dst, 3, t0, creates(t, "deal:3#owner@user:sato"))
	if !hasRel(t, dst, "deal:3#owner@user:sato") {
		t.Error("a write after the restore is not visible")
	}
	if st := dst.Stats(); st.Relationships != 2 {
		t.Errorf("relationships after restore and a write: %d, want 2", st.Relationships)
	}
	// Garbage is refused, and the store is left as it was.
	if err := dst.Restore(bytes.NewReader([]byte("not a tar stream at all, sorry"))); err == nil {
		t.Error("restoring garbage succeeded")
	}
	if !hasRel(t, dst, "deal:3#owner@user:sato") {
		t.Error("a failed restore damaged the store")
	}
}

// A restore a crash interrupted after the snapshot was complete is finished by
// FinishRestore; a half-unpacked one is discarded.
func TestFinishRestore(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.Default
	path := filepath.Join(dir, "store")
	s, err := Open(path+suffixRestored, Options{NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSchema(Entry{Index: 7}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The crash came after the old store was moved aside: only .replaced and .restored exist.
	old, err := Open(path+suffixReplaced, Options{NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	if err := fs.MkdirAll(path+suffixRestoring, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := FinishRestore(path, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{suffixRestored, suffixReplaced, suffixRestoring} {
		if _, err := fs.Stat(path + gone); err == nil {
			t.Errorf("%s left behind", gone)
		}
	}
	s, err = Open(path, Options{NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Revision() != 7 {
		t.Errorf("after FinishRestore the store is at %d, want the restored 7", s.Revision())
	}
	if err := FinishRestore(path, Options{}); err != nil {
		t.Errorf("FinishRestore with nothing to do: %v", err)
	}
	// An empty snapshot is refused and leaves the store alone.
	if err := s.Restore(bytes.NewReader(nil)); err == nil {
		t.Error("restoring an empty snapshot succeeded")
	}
	if s.Revision() != 7 {
		t.Errorf("a refused restore moved the store to %d", s.Revision())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(bytes.NewReader(nil)); !errors.Is(err, ErrClosed) && err == nil {
		t.Error("restoring into a closed store succeeded")
	}
}
