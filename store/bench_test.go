package store

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The read benchmarks run over benchDeals deals, each with an owner, three user viewers and a
// group viewer, written in batches of 1000; then one viewer of every other deal is deleted and
// created again so that the indexes hold history, on disk without fsync. Results: docs/store-mvcc.md.
const benchDeals = 20000

func benchUser(i int) string { return "u" + strconv.Itoa(i%5000) }

func loadBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{NoSync: true, GCInterval: -1, SkipVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		b.Fatal(err)
	}
	rev := Revision(2)
	batch := &Batch{}
	flush := func() {
		if _, err := s.Apply(Entry{Index: rev}, t0, batch); err != nil {
			b.Fatal(err)
		}
		rev++
		batch = &Batch{}
	}
	add := func(op Op, r Relationship) {
		batch.Updates = append(batch.Updates, Update{Op: op, Relationship: r})
		if len(batch.Updates) == 1000 {
			flush()
		}
	}
	for d := range benchDeals {
		id := "d" + strconv.Itoa(d)
		add(OpCreate, Relationship{ResourceType: "deal", ResourceID: id, Relation: "owner", SubjectType: "user", SubjectID: benchUser(d)})
		for v := range 3 {
			add(OpCreate, Relationship{ResourceType: "deal", ResourceID: id, Relation: "viewer", SubjectType: "user", SubjectID: benchUser(d*7 + v)})
		}
		add(OpCreate, Relationship{ResourceType: "deal", ResourceID: id, Relation: "viewer", SubjectType: "group", SubjectID: "g" + strconv.Itoa(d%100), SubjectRelation: "member"})
	}
	flush()
	for d := 0; d < benchDeals; d += 2 {
		add(OpDelete, Relationship{ResourceType: "deal", ResourceID: "d" + strconv.Itoa(d), Relation: "viewer", SubjectType: "user", SubjectID: benchUser(d*7 + 1)})
	}
	flush()
	for d := 0; d < benchDeals; d += 2 {
		add(OpCreate, Relationship{ResourceType: "deal", ResourceID: "d" + strconv.Itoa(d), Relation: "viewer", SubjectType: "user", SubjectID: benchUser(d*7 + 1)})
	}
	flush()
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkRead(b *testing.B) {
	s := loadBench(b)
	r, err := s.Reader(0)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	b.Run("Get", func(b *testing.B) {
		for b.Loop() {
			d := rng.IntN(benchDeals)
			if _, ok, err := r.Get("deal", "d"+strconv.Itoa(d), "owner", "user", benchUser(d), ""); !ok || err != nil {
				b.Fatal("missing owner", err)
			}
		}
	})
	b.Run("SubjectsOfType", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := r.SubjectsOfType("deal", "d"+strconv.Itoa(rng.IntN(benchDeals)), "viewer", "group", "member", func(*Relationship) bool { n++; return true }); err != nil || n != 1 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("Resources", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := r.Resources("user", benchUser(rng.IntN(5000)), "", "deal", "viewer", func(*Relationship) bool { n++; return true }); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkApply(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, size := range []int{1, 100, 1000} {
			name := fmt.Sprint(size)
			if !sync {
				name += "/nosync"
			}
			b.Run(name, func(b *testing.B) { benchmarkApply(b, size, sync) })
		}
	}
}

func benchmarkApply(b *testing.B, size int, sync bool) {
	s, err := Open(b.TempDir(), Options{GCInterval: -1, NoSync: !sync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		b.Fatal(err)
	}
	rev, next := Revision(2), 0
	for b.Loop() {
		batch := &Batch{Updates: make([]Update, size)}
		for i := range batch.Updates {
			batch.Updates[i] = Update{Op: OpTouch, Relationship: Relationship{ResourceType: "deal", ResourceID: "d" + strconv.Itoa(next), Relation: "viewer", SubjectType: "user", SubjectID: benchUser(next)}}
			next++
		}
		if _, err := s.Apply(Entry{Index: rev}, t0, batch); err != nil {
			b.Fatal(err)
		}
		rev++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/update")
}

// BenchmarkSnapshotAlternative reads the same data laid out without versions through a pinned
// pebble.Snapshot, the alternative MVCC mechanism docs/store-mvcc.md compares.
func BenchmarkSnapshotAlternative(b *testing.B) {
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Cache: cache, FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{log.New(io.Discard, "", 0)}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	wb := db.NewBatch()
	put := func(r Relationship) {
		v, _ := appendPayload(nil, &r)
		wb.Set(forwardPrefix(nil, &r), v, nil)
		wb.Set(reversePrefix(nil, &r), v, nil)
		if wb.Count() >= 2000 {
			wb.Commit(pebble.NoSync)
			wb = db.NewBatch()
		}
	}
	for d := range benchDeals {
		id := "d" + strconv.Itoa(d)
		put(Relationship{ResourceType: "deal", ResourceID: id, Relation: "owner", SubjectType: "user", SubjectID: benchUser(d)})
		for v := range 3 {
			put(Relationship{ResourceType: "deal", ResourceID: id, Relation: "viewer", SubjectType: "user", SubjectID: benchUser(d*7 + v)})
		}
		put(Relationship{ResourceType: "deal", ResourceID: id, Relation: "viewer", SubjectType: "group", SubjectID: "g" + strconv.Itoa(d%100), SubjectRelation: "member"})
	}
	wb.Commit(pebble.NoSync)
	db.Flush()
	snap := db.NewSnapshot()
	defer snap.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	b.Run("Get", func(b *testing.B) {
		for b.Loop() {
			d := rng.IntN(benchDeals)
			k := forwardPrefix(nil, &Relationship{ResourceType: "deal", ResourceID: "d" + strconv.Itoa(d), Relation: "owner", SubjectType: "user", SubjectID: benchUser(d)})
			v, closer, err := snap.Get(k)
			if err != nil {
				b.Fatal(err)
			}
			var out Relationship
			decodeForwardKey(append(k, make([]byte, 8)...), &out)
			decodePayload(v, &out)
			closer.Close()
		}
	})
	b.Run("SubjectsOfType", func(b *testing.B) {
		for b.Loop() {
			p := []byte{prefixForward}
			p = appendField(p, "deal")
			p = appendField(p, "d"+strconv.Itoa(rng.IntN(benchDeals)))
			p = appendField(p, "viewer")
			p = appendField(p, "member")
			p = appendField(p, "group")
			it, _ := snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upperBound(p)})
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				out := new(Relationship)
				k := append(append([]byte(nil), it.Key()...), make([]byte, 8)...)
				decodeForwardKey(k, out)
				decodePayload(it.Value(), out)
				n++
			}
			it.Close()
			if n != 1 {
				b.Fatal(n)
			}
		}
	})
}

// TestOpenCost1M measures Open with and without checksum verification on a store of one
// million relationships. It takes about a minute, so it runs only with KENGEN_STORE_OPEN_COST=1.
func TestOpenCost1M(t *testing.T) {
	if os.Getenv("KENGEN_STORE_OPEN_COST") == "" {
		t.Skip("set KENGEN_STORE_OPEN_COST=1 to measure")
	}
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSchema(Entry{Index: 1}, t0, dealSchema); err != nil {
		t.Fatal(err)
	}
	const total = 1_000_000
	for i := 0; i < total/1000; i++ {
		batch := &Batch{Updates: make([]Update, 1000)}
		for j := range batch.Updates {
			n := i*1000 + j
			batch.Updates[j] = Update{Op: OpCreate, Relationship: Relationship{ResourceType: "deal", ResourceID: "d" + strconv.Itoa(n/4), Relation: "viewer", SubjectType: "user", SubjectID: "u" + strconv.Itoa(n)}}
		}
		mustApply(t, s, Revision(i+2), t0, batch)
	}
	s.Flush()
	s.Close()
	size := dirSize(t, dir)
	for _, skip := range []bool{true, false, true, false} {
		start := time.Now()
		s, err := Open(dir, Options{SkipVerify: skip, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if s.Stats().Relationships != total {
			t.Fatalf("%d relationships after reopen", s.Stats().Relationships)
		}
		s.Close()
		t.Logf("open of %d relationships (%d MiB on disk), verify=%v: %v", total, size>>20, !skip, elapsed)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}
