package schema

import (
	"fmt"
	"strings"
)

// Type annotations (`use typechecking`): `permission edit: user | team = ...` declares the
// subject types the permission can have. Under the directive the checker computes the types a
// permission reaches, as SpiceDB's type system does, and refuses an annotation that leaves one
// out. A permission reaches, through every branch of its rewrite (a subtracted side included):
//
//   - the type of each plain `T` or wildcard `T:*` entry of a relation it names;
//   - through a userset entry `T#r`, what T#r reaches (not T itself);
//   - through an arrow `rel->p`, what p reaches on each subject type of rel that has p.
//
// `nil` and `self` reach nothing, as in SpiceDB. Without the directive annotations are parsed
// and ignored.

// reachedType is a subject type a permission reaches and the relation whose type list admits it.
type reachedType struct {
	typ, via string
}

// checkAnnotations checks every annotated permission; it runs once the schema is otherwise
// free of errors, so that every name resolves.
func (c *checker) checkAnnotations() {
	if !c.f.useTypechecking {
		return
	}
	for _, d := range c.f.definitions {
		for _, r := range d.relations {
			if !r.isPermission || len(r.annotations) == 0 || c.rels[d][r.name] != r {
				continue
			}
			where := r.where(d)
			declared := map[string]bool{}
			known := true
			for _, a := range r.annotations {
				declared[a.typ] = true
				if strings.Contains(a.typ, "/") {
					known = false // the parser reported it
				} else if c.defs[a.typ] == nil {
					c.errorf(a.pos, "%s: unknown definition %q in the type annotation", where, a.typ)
					known = false
				}
			}
			if !known {
				continue
			}
			var missing []string
			var add []string
			for _, t := range c.reachedTypes(d, r) {
				if !declared[t.typ] {
					missing = append(missing, fmt.Sprintf("`%s` (through relation %q)", t.typ, t.via))
					add = append(add, t.typ)
				}
			}
			if len(missing) == 0 {
				continue
			}
			var written []string
			for _, a := range r.annotations {
				written = append(written, a.typ)
			}
			c.errorf(r.annotations[0].pos, "%s: the type annotation `%s` leaves out %s, which the permission reaches; write `permission %s: %s = ...`",
				where, strings.Join(written, " | "), strings.Join(missing, ", "), r.name, strings.Join(append(written, add...), " | "))
		}
	}
}

// reachedTypes returns the subject types r of d reaches, each once, in the order a
// breadth-first walk meets them.
func (c *checker) reachedTypes(d *definitionNode, r *relationNode) []reachedType {
	type step struct {
		def *definitionNode
		rel string
	}
	seen := map[step]bool{}
	seenType := map[string]bool{}
	var out []reachedType
	queue := []step{{d, r.name}}
	push := func(s step) {
		if s.def != nil && !seen[s] {
			seen[s] = true
			queue = append(queue, s)
		}
	}
	seen[queue[0]] = true
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		rn := c.rels[s.def][s.rel]
		if rn == nil {
			continue
		}
		if !rn.isPermission {
			for _, t := range rn.types {
				if t.relation != "" {
					push(step{c.defs[t.typ], t.relation})
					continue
				}
				if !seenType[t.typ] {
					seenType[t.typ] = true
					out = append(out, reachedType{t.typ, s.def.name + "#" + s.rel})
				}
			}
			continue
		}
		var walk func(e *exprNode)
		walk = func(e *exprNode) {
			switch e.kind {
			case exprName:
				push(step{s.def, e.name})
			case exprArrow:
				ts := c.rels[s.def][e.tupleset]
				if ts == nil {
					return
				}
				for _, t := range ts.types {
					if target := c.defs[t.typ]; target != nil && c.rels[target][e.name] != nil {
						push(step{target, e.name})
					}
				}
			case exprUnion, exprIntersection, exprExclusion:
				for _, ch := range e.children {
					walk(ch)
				}
			}
		}
		walk(rn.expr)
	}
	return out
}
