package schema

import "fmt"

// The `use` directives. SpiceDB's lexer turns `self`, `partial` and `import` into keywords only
// under their directive, so the parser reads them as names and this pass, which knows the
// file's directives, gives them their meaning:
//
//   - under `use self`, `self` in a permission is the resource itself (exprSelf); it cannot
//     start or end an arrow, and no relation or permission may be called `self`. Without it,
//     `self` is the name of a relation, as in SpiceDB;
//   - `partial name { ... }` and `...name` need `use partial`;
//   - `import "file"` needs `use import`.
//
// `use typechecking` is read by typecheck.go, `use expiration` by the checker.

// applyFlags resolves `self` and reports the forms used without their directive. In a schema
// composed from files the directives of all the files count (compose.go merges them).
func applyFlags(f *fileNode) ErrorList {
	var errs ErrorList
	errorf := func(pos Position, format string, args ...any) {
		errs = append(errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	for _, im := range f.imports {
		if !f.useImport {
			errorf(im.pos, "`import %q` needs the `use import` directive; add `use import` at the top of the schema", im.path)
		}
	}
	for _, d := range append(append([]*definitionNode(nil), f.definitions...), f.partials...) {
		kind := "definition"
		if d.partial {
			kind = "partial"
			if !f.usePartial {
				errorf(d.pos, "partial %q: `partial` needs the `use partial` directive; add `use partial` at the top of the schema", d.name)
			}
		}
		for _, r := range d.relations {
			if r.include != "" {
				if !f.usePartial {
					errorf(r.pos, "%s %q: `...%s` includes a partial, which needs the `use partial` directive; add `use partial` at the top of the schema", kind, d.name, r.include)
				}
				continue
			}
			where := fmt.Sprintf("%s %q", r.kind(), d.name+"#"+r.name)
			if f.useSelf && r.name == "self" {
				errorf(r.namePos, "%s: under `use self`, `self` is the resource itself and cannot name a %s; rename it", where, r.kind())
			}
			if r.isPermission && f.useSelf {
				resolveSelf(r.expr, func(pos Position, format string, args ...any) {
					errorf(pos, where+": "+format, args...)
				})
			}
		}
	}
	return errs
}

// resolveSelf turns the name `self` into exprSelf throughout e and reports arrows that use
// `self` as either side.
func resolveSelf(e *exprNode, errorf func(Position, string, ...any)) {
	if e == nil {
		return
	}
	switch e.kind {
	case exprName:
		if e.name == "self" {
			e.kind, e.name = exprSelf, ""
		}
	case exprArrow:
		if e.tupleset == "self" {
			errorf(e.pos, "`self` cannot start an arrow (`self->%s`): it is the resource itself, not a relation; name a relation before `->`", e.name)
		}
		if e.name == "self" {
			errorf(e.targetPos, "an arrow cannot lead to `self` (`%s->self`): `self` is not a relation or permission; to reach the subjects of %q themselves, give their definition a permission such as `permission itself = self` and arrow to that", e.tupleset, e.tupleset)
		}
	case exprUnion, exprIntersection, exprExclusion:
		for _, c := range e.children {
			resolveSelf(c, errorf)
		}
	}
}
