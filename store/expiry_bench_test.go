package store

import (
	"strconv"
	"testing"
	"time"
)

const benchExpirySchema = `use expiration
definition user {}
definition deal {
  relation viewer: user | user with expiration
}`

// BenchmarkApplyExpiring measures the write cost of the expiration index (expiry.go): batches
// of TOUCHes of new relationships, without an expiration (plain: only the per-Apply look for
// expired versions) and with one an hour ahead (expiring: one more key per version).
// docs/store-mvcc.md records it.
func BenchmarkApplyExpiring(b *testing.B) {
	for _, kind := range []string{"plain", "expiring"} {
		for _, size := range []int{1, 100, 1000} {
			b.Run(kind+"/"+strconv.Itoa(size), func(b *testing.B) { benchmarkApplyExpiring(b, size, kind == "expiring") })
		}
	}
}

func benchmarkApplyExpiring(b *testing.B, size int, expiring bool) {
	s, err := Open(b.TempDir(), Options{GCInterval: -1, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteSchema(Entry{Index: 1}, t0, benchExpirySchema); err != nil {
		b.Fatal(err)
	}
	var exp time.Time
	if expiring {
		exp = t0.Add(time.Hour)
	}
	rev, next := Revision(2), 0
	for b.Loop() {
		batch := &Batch{Updates: make([]Update, size)}
		for i := range batch.Updates {
			batch.Updates[i] = Update{Op: OpTouch, Relationship: Relationship{ResourceType: "deal", ResourceID: "d" + strconv.Itoa(next), Relation: "viewer",
				SubjectType: "user", SubjectID: benchUser(next), Expiration: exp}}
			next++
		}
		if _, err := s.Apply(Entry{Index: rev}, t0, batch); err != nil {
			b.Fatal(err)
		}
		rev++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/update")
}
