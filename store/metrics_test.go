package store

import (
	"errors"
	"testing"
	"time"
)

func TestMetrics(t *testing.T) {
	s := openMem(t) // schema at revision 1
	mustApply(t, s, 2, t0, creates(t, "deal:1#owner@user:a", "deal:1#viewer@user:b", "deal:2#owner@user:a"))
	mustApply(t, s, 3, t0.Add(time.Second), &Batch{Updates: []Update{{Op: OpDelete, Relationship: rel(t, "deal:1#viewer@user:b")}}})
	before, err := s.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := s.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := s.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.Revision != 3 || m.Relationships != 2 || m.RetainedRevisions != 3 || m.OpenReaders != 1 {
		t.Errorf("revision %d, relationships %d, retained %d, open readers %d; want 3, 2, 3, 1",
			m.Revision, m.Relationships, m.RetainedRevisions, m.OpenReaders)
	}
	if m.Flushes != before.Flushes+1 {
		t.Errorf("flushes %d after one Flush, before %d", m.Flushes, before.Flushes)
	}
	if m.L0Files < 1 || m.Levels[0].Files != m.L0Files || m.Levels[0].Bytes <= 0 || m.ReadAmplification < 1 || m.L0Sublevels < 1 {
		t.Errorf("after a flush: L0 files %d, level 0 %+v, sublevels %d, read amp %d; want an sstable in L0",
			m.L0Files, m.Levels[0], m.L0Sublevels, m.ReadAmplification)
	}
	if m.DiskUsageBytes == 0 || m.LiveTableBytes == 0 {
		t.Errorf("disk usage %d, live tables %d bytes; want both above 0", m.DiskUsageBytes, m.LiveTableBytes)
	}
	if m.WriteStalls != 0 || m.WriteStallTime != 0 {
		t.Errorf("write stalls %d (%s) on an idle store", m.WriteStalls, m.WriteStallTime)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Metrics(); !errors.Is(err, ErrClosed) {
		t.Errorf("Metrics after Close: %v, want ErrClosed", err)
	}
}

func TestWriteStallsCounted(t *testing.T) {
	var w writeStalls
	w.begin()
	time.Sleep(time.Millisecond)
	if n, d := w.read(); n != 1 || d <= 0 {
		t.Errorf("during a stall: %d stalls, %s; want 1 and the time so far", n, d)
	}
	w.end()
	w.end() // an unmatched end changes nothing
	n, d := w.read()
	w.begin()
	w.end()
	if n2, d2 := w.read(); n != 1 || n2 != 2 || d2 < d {
		t.Errorf("stalls %d then %d, time %s then %s; want 1 then 2, growing", n, n2, d, d2)
	}
}
