package datagen

import (
	"fmt"
	"math/rand/v2"
)

// Orders in which a hierarchy's parent edges can be written: the Leopard index's cost used
// to depend on it (docs/benchmarks.md, "Hierarchy writes in any order").
const (
	// OrderDown writes each role below the ones already written: parents first.
	OrderDown = "down"
	// OrderUp writes each role above the ones already written: children first.
	OrderUp = "up"
	// OrderRandom writes the edges in a random order (from the seed).
	OrderRandom = "random"
)

// ValidOrder reports whether order is one of the orders above ("" is OrderDown).
func ValidOrder(order string) bool {
	switch order {
	case "", OrderDown, OrderUp, OrderRandom:
		return true
	}
	return false
}

// ChainOrdered emits the role chain of Chain with its parent edges in the given order;
// user:boss's membership of the top comes first.
func ChainOrdered(depth int, order string, seed uint64, emit func(Tuple)) {
	emit(Tuple{"role", ChainRoleID(0), "member", "user", "boss", ""})
	var edges []Tuple
	for i := 1; i < depth; i++ {
		edges = append(edges, Tuple{"role", ChainRoleID(i), "parent", "role", ChainRoleID(i - 1), ""})
	}
	emitOrdered(edges, order, seed, emit)
}

// TreeRoleID names role i of a role tree (Tree).
func TreeRoleID(i int) string { return fmt.Sprintf("tree-%d", i) }

// Tree emits a role tree of n roles with branching 4 (role i's parent is role (i-1)/4), with
// user:boss a member of the root, its parent edges in the given order.
func Tree(n int, order string, seed uint64, emit func(Tuple)) {
	emit(Tuple{"role", TreeRoleID(0), "member", "user", "boss", ""})
	edges := make([]Tuple, 0, n)
	for i := 1; i < n; i++ {
		edges = append(edges, Tuple{"role", TreeRoleID(i), "parent", "role", TreeRoleID((i - 1) / 4), ""})
	}
	emitOrdered(edges, order, seed, emit)
}

// emitOrdered emits edges, listed parents first, in the given order.
func emitOrdered(edges []Tuple, order string, seed uint64, emit func(Tuple)) {
	switch order {
	case OrderUp:
		for i := len(edges) - 1; i >= 0; i-- {
			emit(edges[i])
		}
		return
	case OrderRandom:
		rng := rand.New(rand.NewPCG(seed, 0x6f72646572))
		rng.Shuffle(len(edges), func(i, j int) { edges[i], edges[j] = edges[j], edges[i] })
	}
	for _, t := range edges {
		emit(t)
	}
}
