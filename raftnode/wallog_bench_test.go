package raftnode

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkLogAppend measures the raft log alone with kengen's segment size (8 MiB) and
// raft-wal's default (64 MiB): one op is one fsynced append of 64 entries of 3 KB (a group
// commit of 64 writes of a batch of 100 relationships), through walLog's free-space check.
// A segment is allocated and synced when the previous one fills, and the append after it
// waits for that, so smaller segments pay it more often: the p99.9 and max latencies show
// it, MiB/s the throughput (docs/raft.md, "Segment size").
//
//	go test ./raftnode -run '^$' -bench LogAppend -benchtime 1400x -count 5
func BenchmarkLogAppend(b *testing.B) {
	for _, seg := range []int{8, 64} {
		b.Run(fmt.Sprintf("segment=%dMiB", seg), func(b *testing.B) {
			l, err := openWALLog(b.TempDir(), seg<<20)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			data := make([]byte, 3000)
			lats := make([]time.Duration, 0, b.N)
			idx := uint64(1)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				logs := make([]*raft.Log, 64)
				for i := range logs {
					logs[i] = &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
					idx++
				}
				t0 := time.Now()
				if err := l.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
				lats = append(lats, time.Since(t0))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lats)
			b.ReportMetric(float64(b.N*64*len(data))/(1<<20)/elapsed.Seconds(), "MiB/s")
			b.ReportMetric(float64(lats[len(lats)*999/1000].Microseconds())/1000, "p99.9-ms")
			b.ReportMetric(float64(lats[len(lats)-1].Microseconds())/1000, "max-ms")
		})
	}
}
