// Package schema is kengen's schema language: SpiceDB's, so existing schemas work unchanged,
// plus one extension, `limit N` on a relation.
//
// It is a pipeline: source → lexer (lexer.go) → AST (parser.go, ast.go) → type check
// (check.go) → compiled userset rewrites (compile.go) → analysis of the compiled schema
// (analysis.go: which relations recurse, the Leopard index's edges and plans, the reverse
// graph of lookups), and a generator (generate.go) that
// prints a compiled schema back as canonical text, so that parse → generate → parse is the
// identity (positions aside) and generation is a fixed point; FuzzRoundTrip checks both.
//
// The language: `definition [prefix/]name { ... }` holding `relation name: t1 | t2 ...` and
// `permission name = expr`. A subject type is `type`, `type:*` (wildcard) or `type#relation`
// (userset), optionally `with caveat`, `with expiration` or `with caveat and expiration`;
// expiration needs a top-level `use expiration`. kengen's `limit N` may follow a relation's type
// list. Expressions combine names with `+` (union, binds tightest), `&` (intersection) and `-`
// (exclusion, binds loosest, left-associative), parentheses, arrows `rel->perm`,
// `rel.any(perm)`, `rel.all(perm)` and `nil`. `caveat name(p type, ...) { CEL }` declares a
// caveat; its CEL text is kept verbatim for check/ to compile. `/** doc */` comments attach to
// the following definition, relation, permission or caveat.
//
// SpiceDB v1.56's forms, each under its `use` line (flags.go): `self` in a permission, the
// resource itself as a subject (`use self`); type annotations `permission edit: user | team =
// ...`, checked against the types the permission reaches (`use typechecking`, typecheck.go);
// `partial name { ... }` and `...name` in a definition (`use partial`, partials.go, expanded at
// compile time); `import "file.zed"` (`use import`), which Parse refuses and Compose resolves
// from files into one text (compose.go).
//
// The type checker reports, all at once and with positions: invalid or duplicate names; unknown
// definitions, relations and caveats; arrows that start from a permission or whose target no
// subject type has; and permissions that refer to themselves through computed usersets alone.
//
// The exported front door is this file: Parse, Generate, Compose (compose.go) and the compiled
// types that check/ and store/ read. Everything else in the package is unexported, apart from String methods.
package schema

import (
	"fmt"
	"sort"
	"strings"
)

// Parse parses, type-checks and compiles a schema written in SpiceDB's schema language (plus
// kengen's `limit N`). On failure it returns a nil *Schema and an ErrorList holding every
// error found, sorted by position, each naming the definition, relation or caveat at fault.
//
// A schema given as text cannot `import` files: Compose resolves imports from files and
// returns the composed text, which Parse accepts.
func Parse(source string) (*Schema, error) {
	f, errs := parse(source, "")
	if f.useImport {
		for _, im := range f.imports {
			errs = append(errs, &Error{Pos: im.pos, Msg: fmt.Sprintf("`import %q`: a schema given as text cannot import files; compose it from its files first (`kengen schema write FILE` and `kengen validate` do) and send the composed text", im.path)})
		}
	}
	return build(f, errs)
}

// build runs the pipeline after parsing: directives, partials, type check, compile, analysis.
func build(f *fileNode, errs ErrorList) (*Schema, error) {
	errs = append(errs, applyFlags(f)...)
	errs = append(errs, expandPartials(f)...)
	errs = append(errs, check(f)...)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	s := compile(f)
	analyse(s)
	return s, nil
}

// Generate prints the schema as canonical schema text: its `use` lines first, then caveats,
// then definitions, each in source order, with their doc comments, tab indentation and the
// fewest parentheses that keep each permission's meaning. Parse(s.Generate()) yields a schema
// equal to s apart from positions, and generating that schema again gives the same text.
func (s *Schema) Generate() string { return generate(s) }

// Schema is a compiled, type-checked schema. It is immutable once Parse returns it and safe
// for concurrent use.
type Schema struct {
	// Namespaces are the definitions in source order.
	Namespaces []*Namespace
	// Caveats are the caveat declarations in source order.
	Caveats []*Caveat
	// UseExpiration records a top-level `use expiration` directive.
	UseExpiration bool
	// UseSelf records `use self`, under which `self` in a permission is the resource itself.
	UseSelf bool
	// UseTypechecking records `use typechecking`, under which a permission's type annotation
	// (`permission edit: user | team = ...`) is checked and kept; without it annotations are
	// ignored, as SpiceDB does.
	UseTypechecking bool
	// KeywordLimits records that the source wrote a relation limit as `limit N` after a type
	// list, kengen's own form, which SpiceDB's parser refuses; Generate writes every limit as a
	// `kengen:limit N` doc comment line instead, which it accepts.
	KeywordLimits bool

	namespaces map[string]*Namespace
	caveats    map[string]*Caveat
	// The analysis stage's results (analysis.go).
	indexed    []Edge
	indexedSet map[Edge]struct{}
	reverse    *ReverseGraph
}

// Namespace is one compiled `definition` (Zanzibar's namespace).
type Namespace struct {
	Name string
	Doc  string // the /** doc */ comment above the definition, without the markers
	// Relations holds relations and permissions in source order.
	Relations []*Relation
	Pos       Position

	relations map[string]*Relation
}

// Relation is a `relation` (stored relationships) or a `permission` (a computed rewrite).
type Relation struct {
	Name string
	Doc  string
	Pos  Position

	// IsPermission is true for `permission name = expr`.
	IsPermission bool
	// AllowedSubjects lists the subject types a `relation` accepts, in source order.
	// Empty for permissions.
	AllowedSubjects []*AllowedSubject
	// Limit is kengen's extension: the most subjects one resource may have on this relation.
	// Zero means no limit.
	Limit int
	// Rewrite is the userset rewrite of a permission; nil for a relation.
	Rewrite *Rewrite
	// TypeAnnotations are the subject types a permission declares (`permission edit: user |
	// team = ...`), in source order, under `use typechecking`; nil otherwise.
	TypeAnnotations []string
	// Leopard is how a check answers this relation from the Leopard index, or nil when it
	// walks (analysis.go).
	Leopard *LeopardPlan
}

// AllowedSubject is one entry of a relation's type list: `user`, `user:*`, `group#member`,
// each optionally `with caveatname`, `with expiration`, or `with caveatname and expiration`.
type AllowedSubject struct {
	Type string
	// Relation is the subject relation of a userset (`member` in `group#member`); empty for
	// a plain object subject.
	Relation string
	// Wildcard is true for `type:*`.
	Wildcard bool
	// Caveat names the caveat a relationship of this subject type must carry; empty if none.
	Caveat string
	// Expiration is true when relationships of this subject type may carry an expiration.
	Expiration bool
	Pos        Position
}

// RewriteKind says which userset rewrite a Rewrite node is (Zanzibar §2.3.1).
type RewriteKind int

const (
	// RewriteUnion is `a + b + ...`: member of any child.
	RewriteUnion RewriteKind = iota
	// RewriteIntersection is `a & b & ...`: member of every child.
	RewriteIntersection
	// RewriteExclusion is `a - b`: member of Children[0] and not of Children[1].
	RewriteExclusion
	// RewriteComputedUserset is a bare name: the relation or permission Relation on the same
	// object.
	RewriteComputedUserset
	// RewriteTupleToUserset is an arrow `Tupleset->Relation` (or `Tupleset.any(Relation)` /
	// `Tupleset.all(Relation)`): follow the subjects of relation Tupleset and evaluate
	// Relation on each of them.
	RewriteTupleToUserset
	// RewriteNil is `nil`: the empty set.
	RewriteNil
	// RewriteSelf is `self` (under `use self`): the resource itself as a subject, so that
	// user:alice is in user:alice#view_profile for `permission view_profile = self + manager`.
	RewriteSelf
)

// ArrowFunc is how an arrow combines the subjects of its tupleset.
type ArrowFunc int

const (
	// ArrowAny (`->` or `.any()`) is a member if the permission holds on any subject.
	ArrowAny ArrowFunc = iota
	// ArrowAll (`.all()`) is a member if the permission holds on every subject (and there is at
	// least one).
	ArrowAll
)

// Rewrite is one node of a compiled permission expression.
type Rewrite struct {
	Kind RewriteKind
	// Children are the operands of a union, an intersection (two or more, flattened left to
	// right) or an exclusion (exactly two).
	Children []*Rewrite
	// Relation is the computed userset's relation, or the arrow's target relation/permission.
	Relation string
	// Tupleset is the arrow's left side: a relation of the same definition.
	Tupleset string
	// Func is the arrow function; ArrowAny for `->`.
	Func ArrowFunc
	Pos  Position
}

// Caveat is a `caveat name(params) { expr }` declaration. Expression is the CEL source text;
// check/ compiles and evaluates it.
type Caveat struct {
	Name       string
	Doc        string
	Parameters []CaveatParameter
	Expression string
	Pos        Position
}

// CaveatParameter is one typed parameter of a caveat, e.g. `allowed_ips list<ipaddress>`.
type CaveatParameter struct {
	Name string
	// Type is the parameter's type as written in the schema, normalised: `int`, `uint`,
	// `bool`, `string`, `double`, `bytes`, `duration`, `timestamp`, `ipaddress`, `any`,
	// `list<T>`, `map<T>`.
	Type string
}

// Position is a 1-based line and column in the schema source. File names the schema file for
// a schema composed from files (Compose); it is "" for a schema given as text.
type Position struct {
	Line, Column int
	File         string
}

func (p Position) String() string {
	if p.File != "" {
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Column)
}

// Error is one schema error at a position.
type Error struct {
	Pos Position
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Pos, e.Msg) }

// ErrorList is every error found in a schema, sorted by position. Parse returns all of them at
// once, as go/scanner does.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "schema: no errors"
	case 1:
		return "schema: " + l[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "schema: %d errors:", len(l))
	for _, e := range l {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Pos.File != l[j].Pos.File {
			return l[i].Pos.File < l[j].Pos.File
		}
		if l[i].Pos.Line != l[j].Pos.Line {
			return l[i].Pos.Line < l[j].Pos.Line
		}
		return l[i].Pos.Column < l[j].Pos.Column
	})
}

// Namespace returns the definition called name, or nil.
func (s *Schema) Namespace(name string) *Namespace {
	if s == nil {
		return nil
	}
	return s.namespaces[name]
}

// Caveat returns the caveat called name, or nil.
func (s *Schema) Caveat(name string) *Caveat {
	if s == nil {
		return nil
	}
	return s.caveats[name]
}

// Relation returns the relation or permission called name, or nil.
func (n *Namespace) Relation(name string) *Relation {
	if n == nil {
		return nil
	}
	return n.relations[name]
}

// Allows reports the entry of r's type list that admits a relationship whose subject is of
// type subjectType with subject relation subjectRelation ("" for a plain object), wildcard or
// not, carrying caveat ("" for none) and, if expiring, an expiration; nil if no entry does.
// The caveat must match exactly (`user with c` does not admit an uncaveated `user`); an
// expiration needs an entry `with expiration`, while a relationship without one is admitted by
// either kind of entry.
func (r *Relation) Allows(subjectType, subjectRelation string, wildcard bool, caveat string, expiring bool) *AllowedSubject {
	var found *AllowedSubject
	for _, a := range r.AllowedSubjects {
		if a.Type != subjectType || a.Relation != subjectRelation || a.Wildcard != wildcard || a.Caveat != caveat {
			continue
		}
		if expiring && !a.Expiration {
			continue
		}
		if a.Expiration == expiring {
			return a
		}
		if found == nil {
			found = a
		}
	}
	return found
}
