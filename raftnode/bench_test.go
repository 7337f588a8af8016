package raftnode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kengen/kengen/store"
)

// BenchmarkWrite measures replicated write throughput: nodes in one process, raft on real
// TCP, each with its own on-disk store and raft log (raft-wal, fsync on every append), raft's
// default timeouts. One op is one Apply of a batch of `batch` CREATEs of fresh relationships
// on the leader, issued by `conc` goroutines at once. It reports relationships per second
// (rels/s) and the latency of one Apply (p50-ms, p99-ms).
//
// store=fsync commits every applied entry to Pebble with fsync (store.Options default);
// store=nosync leaves Pebble's WAL unsynced and relies on the fsynced raft log, from which a
// node replays what its store lost (docs/raft.md, "Write throughput").
//
//	go test ./raftnode -run '^$' -bench BenchmarkWrite -benchtime 1s -count 3
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{"fsync", "nosync"} {
		for _, nodes := range []int{1, 3} {
			b.Run(fmt.Sprintf("store=%s/nodes=%d", mode, nodes), func(b *testing.B) {
				benchMatrix(b, startBenchCluster(b, nodes, mode == "nosync"))
			})
		}
	}
}

func benchMatrix(b *testing.B, l *Node) {
	for _, batch := range []int{1, 100, 1000} {
		for _, conc := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("batch=%d/conc=%d", batch, conc), func(b *testing.B) {
				benchWrites(b, l, batch, conc)
			})
		}
	}
}

// benchSeq numbers relationships so that every CREATE is of a new one.
var benchSeq atomic.Int64

func benchWrites(b *testing.B, n *Node, batch, conc int) {
	ctx := context.Background()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		lats    = make([]time.Duration, 0, b.N)
		failure atomic.Value
	)
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				ups := make([]store.Update, batch)
				for i := range ups {
					ups[i] = viewer(fmt.Sprint("b", benchSeq.Add(1)), "sato")
				}
				t0 := time.Now()
				if _, err := n.Apply(ctx, &Command{Kind: KindBatch, Batch: &store.Batch{Updates: ups}}); err != nil {
					failure.Store(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failure.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lats)
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "rels/s")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[(len(lats)*99)/100].Microseconds())/1000, "p99-ms")
}

// startBenchCluster starts nodes with fsync on and raft's default timeouts, and returns the
// leader once every follower has applied the schema.
func startBenchCluster(b *testing.B, nodes int, noSync bool) *Node {
	b.Helper()
	var all []*Node
	for i := 0; i < nodes; i++ {
		dir := b.TempDir()
		st, err := store.Open(filepath.Join(dir, "store"), store.Options{GCInterval: -1, NoSync: noSync})
		if err != nil {
			b.Fatal(err)
		}
		n, err := Open(Config{
			NodeID: fmt.Sprint("n", i+1), RaftAddr: "127.0.0.1:0", Dir: filepath.Join(dir, "raft"),
			Store: st, Bootstrap: i == 0, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := n.Close(); err != nil {
				b.Error(err)
			}
			if err := st.Close(); err != nil {
				b.Error(err)
			}
		})
		all = append(all, n)
	}
	l := all[0]
	deadline := time.Now().Add(30 * time.Second)
	for !l.IsLeader() {
		if time.Now().After(deadline) {
			b.Fatal("n1 did not become leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range all[1:] {
		if err := l.AddVoter(ctx, n.ID(), n.RaftAddr(), ""); err != nil {
			b.Fatal(err)
		}
	}
	res, err := l.Apply(ctx, &Command{Kind: KindSchema, Schema: testSchema})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range all {
		if err := n.WaitApplied(ctx, res.Revision); err != nil {
			b.Fatal(err)
		}
	}
	return l
}
