package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// The type checker resolves every name in the AST and reports, all at once, everything that
// would make the compiled schema meaningless: bad or duplicate names, unknown types,
// relations and caveats, arrows that lead nowhere, and permissions defined in terms of
// themselves.

var (
	typeNameRE     = regexp.MustCompile(`^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
	relationNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
	paramNameRE    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

const (
	typeNameRule     = "lower-case letters, digits and `_`, 3 to 64 characters, starting with a letter and not ending with `_`, optionally prefixed `prefix/`"
	relationNameRule = "lower-case letters, digits and `_`, 3 to 64 characters, starting with a letter and not ending with `_`"
)

// caveatTypes maps each caveat parameter type to its number of type arguments.
var caveatTypes = map[string]int{
	"int": 0, "uint": 0, "bool": 0, "string": 0, "double": 0, "bytes": 0, "duration": 0,
	"timestamp": 0, "ipaddress": 0, "any": 0, "list": 1, "map": 1,
}

const caveatTypeList = "int, uint, bool, string, double, bytes, duration, timestamp, ipaddress, any, list<T>, map<T>"

type checker struct {
	f       *fileNode
	defs    map[string]*definitionNode
	rels    map[*definitionNode]map[string]*relationNode
	caveats map[string]*caveatNode
	errs    ErrorList
}

func check(f *fileNode) ErrorList {
	c := &checker{
		f:       f,
		defs:    map[string]*definitionNode{},
		rels:    map[*definitionNode]map[string]*relationNode{},
		caveats: map[string]*caveatNode{},
	}
	c.declare()
	for _, cv := range f.caveats {
		c.checkCaveat(cv)
	}
	for _, d := range f.definitions {
		for _, r := range d.relations {
			if r.isPermission {
				c.checkExpr(d, r, r.expr)
			} else {
				c.checkTypes(d, r)
			}
		}
		c.checkCycles(d)
	}
	if len(c.errs) == 0 && !f.lostDefinition && !f.lostCaveat {
		c.checkAnnotations() // typecheck.go
	}
	return c.errs
}

func (c *checker) errorf(pos Position, format string, args ...any) {
	c.errs = append(c.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// declare validates and records every definition, relation, permission and caveat name.
func (c *checker) declare() {
	for _, d := range c.f.definitions {
		if !typeNameRE.MatchString(d.name) {
			c.errorf(d.namePos, "definition %q: invalid definition name; use %s", d.name, typeNameRule)
		}
		if prev, dup := c.defs[d.name]; dup {
			c.errorf(d.namePos, "definition %q: already defined at %s", d.name, prev.namePos)
		} else {
			c.defs[d.name] = d
		}
		rels := map[string]*relationNode{}
		if _, dup := c.rels[d]; !dup {
			c.rels[d] = rels
		}
		for _, r := range d.relations {
			kind := r.kind()
			if !relationNameRE.MatchString(r.name) {
				c.errorf(r.namePos, "%s: invalid %s name; use %s", r.where(d), kind, relationNameRule)
			}
			if prev, dup := rels[r.name]; dup {
				from := ""
				if prev.inPartial != "" {
					from = fmt.Sprintf(" (in partial %q)", prev.inPartial)
				}
				c.errorf(r.namePos, "%s: %q is already defined at %s%s as a %s", r.where(d), r.name, prev.namePos, from, prev.kind())
				continue
			}
			rels[r.name] = r
		}
	}
	for _, cv := range c.f.caveats {
		if !typeNameRE.MatchString(cv.name) {
			c.errorf(cv.namePos, "caveat %q: invalid caveat name; use %s", cv.name, typeNameRule)
		}
		if prev, dup := c.caveats[cv.name]; dup {
			c.errorf(cv.namePos, "caveat %q: already defined at %s", cv.name, prev.namePos)
			continue
		}
		c.caveats[cv.name] = cv
	}
}

// where names r of d for a message: `relation "doc#viewer"`, with the partial it comes from.
func (r *relationNode) where(d *definitionNode) string {
	w := fmt.Sprintf("%s %q", r.kind(), d.name+"#"+r.name)
	if r.inPartial != "" && !d.partial {
		w += fmt.Sprintf(" (from partial %q)", r.inPartial)
	}
	return w
}

func (r *relationNode) kind() string {
	if r.isPermission {
		return "permission"
	}
	return "relation"
}

func (c *checker) checkCaveat(cv *caveatNode) {
	seen := map[string]bool{}
	for _, p := range cv.params {
		if !paramNameRE.MatchString(p.name) {
			c.errorf(p.pos, "caveat %q: invalid parameter name %q; use letters, digits and `_`, starting with a letter or `_`", cv.name, p.name)
		}
		if seen[p.name] {
			c.errorf(p.pos, "caveat %q: duplicate parameter %q", cv.name, p.name)
		}
		seen[p.name] = true
		c.checkParamType(cv, p, p.typ)
	}
	if cv.empty {
		c.errorf(cv.bodyPos, "caveat %q: empty expression; write a CEL expression over the parameters between `{` and `}`", cv.name)
	}
}

func (c *checker) checkParamType(cv *caveatNode, p *paramNode, t *paramType) {
	want, ok := caveatTypes[t.name]
	switch {
	case !ok:
		c.errorf(t.pos, "caveat %q: parameter %q has unknown type %q; use one of %s", cv.name, p.name, t.name, caveatTypeList)
		return
	case len(t.args) != want && want == 0:
		c.errorf(t.pos, "caveat %q: parameter %q: type %q takes no type arguments", cv.name, p.name, t.name)
		return
	case len(t.args) != want:
		c.errorf(t.pos, "caveat %q: parameter %q: type %q takes exactly one type argument, e.g. %s<string>", cv.name, p.name, t.name, t.name)
		return
	}
	for _, a := range t.args {
		c.checkParamType(cv, p, a)
	}
}

func (c *checker) checkTypes(d *definitionNode, r *relationNode) {
	where := r.where(d)
	seen := map[string]Position{}
	for _, t := range r.types {
		text := t.String()
		if prev, dup := seen[text]; dup {
			c.errorf(t.pos, "%s: subject type `%s` is listed twice (first at %s)", where, text, prev)
		} else {
			seen[text] = t.pos
		}
		target, ok := c.defs[t.typ]
		switch {
		case !ok && c.f.lostDefinition:
		case !ok:
			c.errorf(t.pos, "%s: unknown definition %q in subject type `%s`", where, t.typ, text)
		case t.relation != "" && c.rels[target][t.relation] == nil && !target.incomplete:
			c.errorf(t.relPos, "%s: definition %q has no relation or permission %q (in subject type `%s`)", where, t.typ, t.relation, text)
		}
		if t.caveat != "" && c.caveats[t.caveat] == nil && !c.f.lostCaveat {
			c.errorf(t.caveatPos, "%s: unknown caveat %q in subject type `%s`", where, t.caveat, text)
		}
		if t.expiration && !c.f.useExpiration {
			c.errorf(t.expPos, "%s: `with expiration` in subject type `%s` needs the `use expiration` directive; add `use expiration` at the top of the schema", where, text)
		}
	}
}

// String renders the type reference as written in canonical form.
func (t *typeRefNode) String() string {
	var b strings.Builder
	b.WriteString(t.typ)
	switch {
	case t.wildcard:
		b.WriteString(":*")
	case t.relation != "":
		b.WriteString("#" + t.relation)
	}
	switch {
	case t.caveat != "" && t.expiration:
		b.WriteString(" with " + t.caveat + " and expiration")
	case t.caveat != "":
		b.WriteString(" with " + t.caveat)
	case t.expiration:
		b.WriteString(" with expiration")
	}
	return b.String()
}

func (c *checker) checkExpr(d *definitionNode, r *relationNode, e *exprNode) {
	where := r.where(d)
	rels := c.rels[d]
	switch e.kind {
	case exprUnion, exprIntersection, exprExclusion:
		for _, ch := range e.children {
			c.checkExpr(d, r, ch)
		}
	case exprName:
		if rels[e.name] == nil && !d.incomplete {
			hint := ""
			if e.name == "self" {
				hint = "; to mean the resource itself, add `use self` at the top of the schema"
			}
			c.errorf(e.pos, "%s: %q is not a relation or permission of definition %q%s", where, e.name, d.name, hint)
		}
	case exprArrow:
		arrow := e.tupleset + "->" + e.name
		ts := rels[e.tupleset]
		switch {
		case ts == nil && d.incomplete:
			return
		case ts == nil:
			c.errorf(e.pos, "%s: %q in arrow `%s` is not a relation of definition %q", where, e.tupleset, arrow, d.name)
			return
		case ts.isPermission:
			c.errorf(e.pos, "%s: arrow `%s` must start from a relation, but %q is a permission", where, arrow, e.tupleset)
			return
		}
		var types []string
		for _, t := range ts.types {
			target, ok := c.defs[t.typ]
			if !ok {
				return // already reported on the relation
			}
			if c.rels[target][e.name] != nil || target.incomplete {
				return
			}
			types = append(types, t.typ)
		}
		c.errorf(e.targetPos, "%s: arrow `%s` leads nowhere: no subject type of relation %q (%s) has a relation or permission %q",
			where, arrow, e.tupleset, strings.Join(dedupe(types), ", "), e.name)
	}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// checkCycles reports permissions that reach themselves through computed usersets alone: with
// no relation (no stored data) on the way, such a permission has no meaning. Arrows break
// cycles because they follow relationships.
func (c *checker) checkCycles(d *definitionNode) {
	rels := c.rels[d]
	const (
		white = iota
		grey
		black
	)
	colour := map[*relationNode]int{}
	var stack []*relationNode
	var visit func(r *relationNode)
	visit = func(r *relationNode) {
		colour[r] = grey
		stack = append(stack, r)
		for _, name := range computedNames(r.expr, nil) {
			next := rels[name]
			if next == nil || !next.isPermission {
				continue
			}
			switch colour[next] {
			case white:
				visit(next)
			case grey:
				var path []string
				start := 0
				for i, s := range stack {
					if s == next {
						start = i
					}
				}
				for _, s := range stack[start:] {
					path = append(path, s.name)
				}
				path = append(path, next.name)
				c.errorf(next.namePos, "permission %q: refers to itself with no relation in between (%s); break the cycle with a relation or an arrow",
					d.name+"#"+next.name, strings.Join(path, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		colour[r] = black
	}
	for _, r := range d.relations {
		if r.isPermission && rels[r.name] == r && colour[r] == white {
			visit(r)
		}
	}
}

// computedNames appends the names e refers to as computed usersets (not through arrows).
func computedNames(e *exprNode, out []string) []string {
	if e == nil {
		return out
	}
	switch e.kind {
	case exprName:
		out = append(out, e.name)
	case exprUnion, exprIntersection, exprExclusion:
		for _, ch := range e.children {
			out = computedNames(ch, out)
		}
	}
	return out
}
