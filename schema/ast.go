package schema

// The AST is the parser's output: the schema as written, with a position on every name, before
// any name is resolved. check.go type-checks it and compile.go turns it into a *Schema.

type fileNode struct {
	useExpiration   bool
	useSelf         bool
	useTypechecking bool
	usePartial      bool
	useImport       bool
	definitions     []*definitionNode
	caveats         []*caveatNode
	partials        []*definitionNode // `partial name { ... }`, expanded into definitions by partials.go
	imports         []*importNode

	// After a syntax error the AST is incomplete; the checker uses these to avoid reporting
	// names as unknown when their declaration is what failed to parse.
	lostDefinition bool // a definition whose name did not parse
	lostCaveat     bool // a caveat that did not parse
}

type definitionNode struct {
	name      string
	namePos   Position
	pos       Position // the `definition` keyword
	doc       string
	relations []*relationNode
	// incomplete is set when a relation or permission of the definition failed to parse.
	incomplete bool
	// partial is set for a `partial name { ... }` block.
	partial bool
}

// importNode is `import "path"`: another schema file whose definitions, caveats and partials
// join this one's (compose.go).
type importNode struct {
	path    string
	pos     Position // the `import` keyword
	pathPos Position
}

// annotationNode is one type of a permission's type annotation.
type annotationNode struct {
	typ string
	pos Position
}

type relationNode struct {
	name         string
	namePos      Position
	pos          Position // the `relation` or `permission` keyword
	doc          string
	isPermission bool
	types        []*typeRefNode    // relation only
	limit        int               // relation only; 0 if absent
	limitKeyword bool              // the limit was written `limit N` (not as a doc comment line)
	expr         *exprNode         // permission only
	annotations  []*annotationNode // permission only: `permission name: user | team = ...`
	// include is the partial's name for a `...name` line of a definition or partial, which
	// partials.go replaces with the partial's relations and permissions. Only name, pos and
	// namePos are set on such a node.
	include string
	// inPartial names the partial the relation or permission is written in; "" in a definition.
	inPartial string
}

// typeRefNode is one entry of a relation's type list.
type typeRefNode struct {
	typ        string
	relation   string // `member` in `group#member`
	relPos     Position
	wildcard   bool
	caveat     string
	caveatPos  Position
	expiration bool
	expPos     Position
	pos        Position
}

type exprKind int

const (
	exprUnion exprKind = iota
	exprIntersection
	exprExclusion
	exprName  // a bare relation or permission name
	exprArrow // tupleset->target, tupleset.any(target), tupleset.all(target)
	exprNil
	exprSelf // `self` under `use self`; the parser writes it as an exprName that flags.go resolves
)

type exprNode struct {
	kind      exprKind
	children  []*exprNode // union, intersection (flattened), exclusion (two)
	name      string      // exprName; the arrow's target for exprArrow
	tupleset  string      // exprArrow
	targetPos Position    // exprArrow: position of the target name
	fn        ArrowFunc
	pos       Position
}

type caveatNode struct {
	name    string
	namePos Position
	pos     Position // the `caveat` keyword
	doc     string
	params  []*paramNode
	expr    string
	empty   bool     // expr holds only whitespace and comments
	bodyPos Position // the opening `{`
}

type paramNode struct {
	name    string
	typ     *paramType
	pos     Position
	typePos Position
}

// paramType is a caveat parameter type as written: a name and its type arguments.
type paramType struct {
	name string
	args []*paramType
	pos  Position
}

func (t *paramType) String() string {
	s := t.name
	if len(t.args) > 0 {
		s += "<"
		for i, a := range t.args {
			if i > 0 {
				s += ", "
			}
			s += a.String()
		}
		s += ">"
	}
	return s
}
