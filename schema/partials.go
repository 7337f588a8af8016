package schema

import (
	"fmt"
	"strings"
)

// Partials (`use partial`): `partial name { ... }` holds relations and permissions that a
// definition (or another partial) includes with `...name`, as if they were written there.
// expandPartials replaces every `...name` of the definitions with the partial's contents, so
// the checker and the compiler see plain definitions: a partial's names are resolved in each
// definition that includes it, and a partial no definition includes is not checked, as in
// SpiceDB. The compiled schema has no partials; Generate prints the definitions expanded.

func expandPartials(f *fileNode) ErrorList {
	var errs ErrorList
	errorf := func(pos Position, format string, args ...any) {
		errs = append(errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	partials := map[string]*definitionNode{}
	for _, p := range f.partials {
		if !typeNameRE.MatchString(p.name) {
			errorf(p.namePos, "partial %q: invalid partial name; use %s", p.name, typeNameRule)
		}
		if prev, dup := partials[p.name]; dup {
			errorf(p.namePos, "partial %q: already defined at %s", p.name, prev.namePos)
			continue
		}
		partials[p.name] = p
	}
	others := map[string]Position{}
	for _, d := range f.definitions {
		others[d.name] = d.namePos
	}
	for _, c := range f.caveats {
		others[c.name] = c.namePos
	}
	for _, p := range f.partials {
		if at, clash := others[p.name]; clash && partials[p.name] == p {
			errorf(p.namePos, "partial %q: a definition or caveat at %s has the same name; rename one of them", p.name, at)
		}
	}

	const (
		unvisited = iota
		visiting
		done
	)
	state := map[*definitionNode]int{}
	expanded := map[*definitionNode][]*relationNode{}
	var stack []string
	var expand func(d *definitionNode) []*relationNode
	expand = func(d *definitionNode) []*relationNode {
		kind := "definition"
		if d.partial {
			kind = "partial"
		}
		var out []*relationNode
		included := map[string]Position{}
		for _, r := range d.relations {
			if r.include == "" {
				out = append(out, r)
				continue
			}
			p := partials[r.include]
			switch {
			case p == nil:
				hint := ""
				if _, ok := others[r.include]; ok {
					hint = fmt.Sprintf("; %q is a definition or caveat, and `...` includes only a partial", r.include)
				}
				errorf(r.namePos, "%s %q: no partial named %q%s", kind, d.name, r.include, hint)
				d.incomplete = true
				continue
			case included[r.include] != Position{}:
				errorf(r.pos, "%s %q: includes partial %q twice (first at %s)", kind, d.name, r.include, included[r.include])
				continue
			}
			included[r.include] = r.pos
			switch state[p] {
			case visiting:
				path := append(append([]string(nil), stack[indexOf(stack, p.name):]...), p.name)
				errorf(r.pos, "partial %q: includes itself (%s); a partial cannot include itself, directly or through others", p.name, strings.Join(path, " -> "))
				d.incomplete = true
				continue
			case unvisited:
				state[p] = visiting
				stack = append(stack, p.name)
				expanded[p] = expand(p)
				stack = stack[:len(stack)-1]
				state[p] = done
			}
			if p.incomplete {
				d.incomplete = true
			}
			out = append(out, expanded[p]...)
		}
		return out
	}
	for _, d := range f.definitions {
		d.relations = expand(d)
	}
	// A partial no definition includes is still expanded, so that its unknown or circular
	// inclusions are reported, as SpiceDB reports them.
	for _, p := range f.partials {
		if state[p] == unvisited && partials[p.name] == p {
			state[p] = visiting
			stack = append(stack[:0], p.name)
			expanded[p] = expand(p)
			state[p] = done
		}
	}
	return errs
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return 0
}
