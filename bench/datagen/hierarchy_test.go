package datagen

import (
	"slices"
	"testing"
)

// Every order emits the same relationships, the membership first; only the edges' order
// differs, and "up" is "down" reversed.
func TestHierarchyOrders(t *testing.T) {
	collect := func(gen func(string, func(Tuple)), order string) []Tuple {
		var out []Tuple
		gen(order, func(tp Tuple) { out = append(out, tp) })
		return out
	}
	gens := map[string]func(string, func(Tuple)){
		"chain": func(o string, emit func(Tuple)) { ChainOrdered(50, o, 1, emit) },
		"tree":  func(o string, emit func(Tuple)) { Tree(50, o, 1, emit) },
	}
	for name, gen := range gens {
		down, up, random := collect(gen, OrderDown), collect(gen, OrderUp), collect(gen, OrderRandom)
		if len(down) != 50 || down[0].Relation != "member" || up[0] != down[0] || random[0] != down[0] {
			t.Fatalf("%s: %d tuples, first %v / %v / %v", name, len(down), down[0], up[0], random[0])
		}
		rev := slices.Clone(down[1:])
		slices.Reverse(rev)
		if !slices.Equal(rev, up[1:]) {
			t.Errorf("%s: up is not down reversed", name)
		}
		key := func(tp Tuple) string { return tp.ResourceID + "@" + tp.SubjectID }
		a, b := make([]string, 0, 50), make([]string, 0, 50)
		for i := range down {
			a, b = append(a, key(down[i])), append(b, key(random[i]))
		}
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) || slices.Equal(down, random) {
			t.Errorf("%s: random is not a shuffle of down", name)
		}
	}
	var chain []Tuple
	Chain(50, func(tp Tuple) { chain = append(chain, tp) })
	if !slices.Equal(chain, collect(gens["chain"], OrderDown)) {
		t.Error("ChainOrdered down differs from Chain")
	}
}
