package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHierarchyOrder loads a role hierarchy in one order, in batches of 1,000 parent
// edges, and reports relationships per second: the Leopard index's cost of each order
// (docs/benchmarks.md, "Hierarchy writes in any order"). chain-N is a chain of N roles, tree-N
// a tree of N roles with branching 4. down writes each role below the ones already written
// (parents first), up each role above them (children first), random in a random order.
//
//	go test ./store -run XXX -bench HierarchyOrder -benchtime 1x
//	KENGEN_BIG_BENCH=1 go test ./store -run XXX -bench 'HierarchyOrder/tree-1000000' -benchtime 1x
func BenchmarkHierarchyOrder(b *testing.B) {
	sizes := []struct {
		shape string
		n     int
	}{{"chain", 100_000}, {"tree", 100_000}}
	if testingBig() {
		sizes = append(sizes, struct {
			shape string
			n     int
		}{"tree", 1_000_000})
	}
	for _, sz := range sizes {
		for _, order := range []string{"down", "up", "random"} {
			b.Run(fmt.Sprintf("%s-%d/%s", sz.shape, sz.n, order), func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					s, apply := openLeopardBench(b, false)
					edges := hierarchyEdges(sz.shape, sz.n, order)
					b.StartTimer()
					start := time.Now()
					for i := 0; i < len(edges); i += 1000 {
						apply(&Batch{Updates: edges[i:min(i+1000, len(edges))]})
					}
					b.ReportMetric(float64(len(edges))/time.Since(start).Seconds(), "rels/s")
					b.StopTimer()
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-MiB")
					_ = s.Close()
					b.StartTimer()
				}
			})
		}
	}
}

func testingBig() bool { return os.Getenv("KENGEN_BIG_BENCH") != "" }

// hierarchyEdges returns the parent edges of a chain or tree of n roles in the given order.
// Chain: role c{j}'s parent is c{j+1}. Tree: role t{i}'s parent is t{(i-1)/4}.
func hierarchyEdges(shape string, n int, order string) []Update {
	edges := make([]Update, 0, n)
	for i := range n - 1 {
		switch shape {
		case "chain":
			edges = append(edges, parentOf("c"+strconv.Itoa(i), "c"+strconv.Itoa(i+1)))
		default:
			edges = append(edges, parentOf("t"+strconv.Itoa(i+1), "t"+strconv.Itoa(i/4)))
		}
	}
	// As built, the chain goes upwards (each edge above the last) and the tree downwards.
	reverse := func() {
		for i, j := 0, len(edges)-1; i < j; i, j = i+1, j-1 {
			edges[i], edges[j] = edges[j], edges[i]
		}
	}
	switch {
	case order == "random":
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		rng.Shuffle(len(edges), func(i, j int) { edges[i], edges[j] = edges[j], edges[i] })
	case (order == "down") == (shape == "chain"):
		reverse()
	}
	return edges
}

// BenchmarkSingleEdge commits one parent edge per Apply at depth and reports the latency
// percentiles (target: p99 under 10 ms): below writes a new role under the bottom of a
// 2,000-role chain built top-down (a closure of 2,000 copied), above a new role over the top
// of a chain growing upwards, reparent moves a role in the middle of a 2,000-role chain
// between two parents and back.
//
//	go test ./store -run XXX -bench SingleEdge -benchtime 500x
func BenchmarkSingleEdge(b *testing.B) {
	for _, kind := range []string{"below", "above", "reparent"} {
		b.Run(kind, func(b *testing.B) {
			_, apply := openLeopardBench(b, false)
			const depth = 2000
			// A chain c0 (top) … c1999, one edge per Apply so that it is indexed whole.
			for i := 1; i < depth; i++ {
				apply(&Batch{Updates: []Update{parentOf("c"+strconv.Itoa(i), "c"+strconv.Itoa(i-1))}})
			}
			apply(&Batch{Updates: []Update{parentOf("alt", "c0")}})
			var lat []time.Duration
			top := "c0"
			for i := 0; b.Loop(); i++ {
				var u []Update
				switch kind {
				case "below":
					u = []Update{parentOf("leaf"+strconv.Itoa(i), "c"+strconv.Itoa(depth-1))}
				case "above":
					next := "u" + strconv.Itoa(i)
					u = []Update{parentOf(top, next)}
					top = next
				case "reparent":
					from, to := "c999", "alt"
					if i%2 == 1 {
						from, to = to, from
					}
					u = []Update{{Op: OpDelete, Relationship: parentOf("c1000", from).Relationship}, parentOf("c1000", to)}
				}
				start := time.Now()
				apply(&Batch{Updates: u})
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
