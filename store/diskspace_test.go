package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A store whose filesystem reports less free space than the minimum refuses writes with
// ErrDiskFull before writing anything (the revision stays, the same revision can be applied
// once space returns), keeps answering reads, and accepts writes again when space is freed.
// The real full filesystem is exercised by raftnode's and cmd/kengen's tests on tmpfs.
func TestDiskFullRefusesWritesKeepsReads(t *testing.T) {
	fs := vfs.NewMem()
	const total = 100 << 20 // 5% of it is below the floor: the minimum is 16 MiB
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 80 << 20, TotalBytes: total, UsedBytes: 20 << 20})
	s, err := Open("db", Options{FS: fs, NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 2, t0, creates(t, "deal:1#owner@user:a"))
	if got := s.MinFreeBytes(); got != minFreeFloor {
		t.Fatalf("MinFreeBytes = %d, want the 16 MiB floor", got)
	}

	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 15 << 20, TotalBytes: total, UsedBytes: 85 << 20})
	_, err = s.Apply(Entry{Index: 3}, t0, creates(t, "deal:2#owner@user:a"))
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "db has 15.0 MiB free") || !strings.Contains(err.Error(), "16.0 MiB kept free") {
		t.Fatalf("apply on a full disk: %v, want ErrDiskFull naming the directory and the figures", err)
	}
	if err := s.WriteSchema(Entry{Index: 3}, t0, dealSchema); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("schema write on a full disk: %v", err)
	}
	if _, err := s.CollectGarbage(t0.Add(time.Hour)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("garbage collection on a full disk: %v", err)
	}
	if s.Revision() != 2 {
		t.Fatalf("revision %d after refused writes, want 2: a refusal for space must write nothing", s.Revision())
	}
	r, err := s.Reader(s.Revision())
	if err != nil {
		t.Fatalf("reader on a full disk: %v", err)
	}
	if _, ok, err := r.Get("deal", "1", "owner", "user", "a", ""); !ok || err != nil {
		t.Fatalf("read on a full disk: %v, %v", ok, err)
	}
	r.Close()

	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 40 << 20, TotalBytes: total, UsedBytes: 60 << 20})
	mustApply(t, s, 3, t0, creates(t, "deal:2#owner@user:a")) // the same revision, now applied

	// An explicit minimum, and the guard turned off.
	s2, err := Open("db2", Options{FS: fs, NoSync: true, GCInterval: -1, MinFreeBytes: 50 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.WriteSchema(Entry{Index: 1}, t0, dealSchema); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("40 MiB free with 50 MiB kept free: %v", err)
	}
	s3, err := Open("db3", Options{FS: fs, NoSync: true, GCInterval: -1, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1, TotalBytes: total, UsedBytes: total - 1})
	if err := s3.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatalf("guard off: %v", err)
	}
}

// The default minimum: 5% of the filesystem between 16 MiB and 1 GiB.
func TestMinFreeDefault(t *testing.T) {
	s := &Store{}
	for _, c := range []struct{ total, want uint64 }{
		{64 << 20, 16 << 20},
		{320 << 20, 16 << 20},
		{1 << 30, (1 << 30) / 20},
		{10 << 30, 512 << 20},
		{1 << 40, 1 << 30},
	} {
		if got := s.minFree(c.total); got != c.want {
			t.Errorf("minFree(%d MiB) = %d MiB, want %d MiB", c.total>>20, got>>20, c.want>>20)
		}
	}
}

// BenchmarkCheckFreeSpace is the guard's cost on the real disk: one statfs for the store's
// filesystem and one for another directory, as raftnode checks before proposing a write
// (docs/raft.md, "Segment size").
//
//	go test ./store -run '^$' -bench CheckFreeSpace -count 5
func BenchmarkCheckFreeSpace(b *testing.B) {
	s, err := Open(b.TempDir(), Options{NoSync: true, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	other := b.TempDir()
	b.ResetTimer()
	for range b.N {
		if err := s.CheckFreeSpace(other); err != nil {
			b.Fatal(err)
		}
	}
}
