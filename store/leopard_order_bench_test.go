package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
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
