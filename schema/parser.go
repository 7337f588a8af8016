package schema

import (
	"fmt"
	"strconv"
	"strings"
)

// parser is a recursive-descent parser over the lexer's tokens. A syntax error inside a
// statement abandons that statement (by panicking with bailout) and the parser resumes at the
// next `relation`, `permission`, `}`, `definition`, `caveat` or `use`, so one pass reports
// every independent error.
type parser struct {
	lex  *lexer
	tok  token
	errs ErrorList

	// where names the statement being parsed, for messages: `definition "doc"`,
	// `relation "doc#viewer"`, `caveat "c"`.
	where string
}

type bailout struct{}

// parse parses one schema text; file is the name its positions carry ("" for text given
// directly).
func parse(src, file string) (*fileNode, ErrorList) {
	p := &parser{}
	p.lex = newLexer(src, file, func(pos Position, format string, args ...any) {
		p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	})
	p.next()
	f := p.parseFile()
	return f, p.errs
}

func (p *parser) errorf(pos Position, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.where != "" {
		msg = p.where + ": " + msg
	}
	p.errs = append(p.errs, &Error{Pos: pos, Msg: msg})
}

// fail reports a syntax error at the current token and abandons the statement.
func (p *parser) fail(format string, args ...any) {
	p.errorf(p.tok.pos, format, args...)
	panic(bailout{})
}

func (p *parser) next() { p.tok = p.lex.next() }

func (p *parser) isKeyword(kw string) bool { return p.tok.kind == tokIdent && p.tok.text == kw }

func (p *parser) expect(k tokenKind, context string) Position {
	pos := p.tok.pos
	if p.tok.kind != k {
		p.fail("expected %s %s, found %s", k, context, p.tok.describe())
	}
	p.next()
	return pos
}

// statementKeywords start a statement; they cannot be used as a subject type or in a
// permission expression, so that a statement cut short is not read into the next one.
var statementKeywords = map[string]bool{"definition": true, "caveat": true, "relation": true, "permission": true}

func (p *parser) expectName(what string) (string, Position) {
	if p.tok.kind != tokIdent || statementKeywords[p.tok.text] {
		p.fail("expected %s, found %s", what, p.tok.describe())
	}
	name, pos := p.tok.text, p.tok.pos
	p.next()
	return name, pos
}

// statement runs parse and recovers from a bailout, reporting whether it completed.
func (p *parser) statement(parse func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, isBail := r.(bailout); !isBail {
				panic(r)
			}
			ok = false
		}
	}()
	parse()
	return true
}

// skipTo advances to the next token that starts a statement in the given set, or to a `}` if
// atBrace.
func (p *parser) skipTo(atBrace bool, keywords ...string) {
	for p.tok.kind != tokEOF {
		if atBrace && p.tok.kind == tokRBrace {
			return
		}
		for _, kw := range keywords {
			if p.isKeyword(kw) {
				return
			}
		}
		p.next()
	}
}

var topLevelKeywords = []string{"definition", "caveat", "use", "partial", "import"}

func (p *parser) parseFile() *fileNode {
	f := &fileNode{}
	for p.tok.kind != tokEOF {
		p.where = ""
		switch {
		case p.isKeyword("definition"):
			p.parseDefinition(f, false)
		case p.isKeyword("partial"):
			p.parseDefinition(f, true)
		case p.isKeyword("import"):
			if !p.statement(func() { p.parseImport(f) }) {
				p.skipTo(false, topLevelKeywords...)
			}
		case p.isKeyword("caveat"):
			if !p.statement(func() { f.caveats = append(f.caveats, p.parseCaveat()) }) {
				f.lostCaveat = true
				p.skipTo(false, topLevelKeywords...)
			}
		case p.isKeyword("use"):
			if !p.statement(func() { p.parseUse(f) }) {
				p.skipTo(false, topLevelKeywords...)
			}
		case p.tok.kind == tokSemicolon:
			p.next()
		default:
			p.statement(func() {
				p.fail("expected `definition`, `caveat`, `partial`, `import` or `use`, found %s", p.tok.describe())
			})
			p.next()
			p.skipTo(false, topLevelKeywords...)
		}
	}
	return f
}

func (p *parser) parseUse(f *fileNode) {
	p.next()
	name, pos := p.expectName("a feature after `use`")
	switch name {
	case "expiration":
		f.useExpiration = true
	case "self":
		f.useSelf = true
	case "typechecking":
		f.useTypechecking = true
	case "partial":
		f.usePartial = true
	case "import":
		f.useImport = true
	default:
		p.errorf(pos, "unknown feature %q in `use`; the features are expiration, import, partial, self and typechecking", name)
	}
}

// parseImport parses `import "path"`.
func (p *parser) parseImport(f *fileNode) {
	im := &importNode{pos: p.tok.pos}
	p.next()
	if p.tok.kind != tokString {
		p.fail("expected a quoted file path after `import`, found %s", p.tok.describe())
	}
	text := p.tok.text
	im.pathPos = p.tok.pos
	if len(text) < 2 || text[len(text)-1] != text[0] {
		panic(bailout{}) // the lexer reported the unterminated string
	}
	im.path = text[1 : len(text)-1]
	p.next()
	f.imports = append(f.imports, im)
}

// parseDefinition parses `definition name { ... }`, or `partial name { ... }` if partial: the
// two have the same body.
func (p *parser) parseDefinition(f *fileNode, partial bool) {
	d := &definitionNode{pos: p.tok.pos, doc: p.tok.doc, partial: partial}
	kind := "definition"
	if partial {
		kind = "partial"
	}
	p.next()
	ok := p.statement(func() {
		d.name, d.namePos = p.expectName(fmt.Sprintf("a %s name after `%s`", kind, kind))
		p.where = fmt.Sprintf("%s %q", kind, d.name)
		p.expect(tokLBrace, "after the "+kind+" name")
	})
	add := func() {
		if partial {
			f.partials = append(f.partials, d)
		} else {
			f.definitions = append(f.definitions, d)
		}
	}
	if !ok {
		if d.name == "" {
			f.lostDefinition = true
		} else {
			add()
			d.incomplete = true
		}
		p.skipTo(false, topLevelKeywords...)
		return
	}
	add()
	for {
		p.where = fmt.Sprintf("%s %q", kind, d.name)
		switch {
		case p.tok.kind == tokRBrace:
			p.next()
			return
		case p.tok.kind == tokSemicolon:
			p.next()
		case p.isKeyword("relation") || p.isKeyword("permission"):
			if !p.statement(func() { d.relations = append(d.relations, p.parseRelation(d)) }) {
				d.incomplete = true
				p.skipTo(true, "relation", "permission", "definition", "caveat", "use", "partial", "import")
			}
		case p.tok.kind == tokEllipsis:
			if !p.statement(func() { d.relations = append(d.relations, p.parseInclude()) }) {
				d.incomplete = true
				p.skipTo(true, "relation", "permission", "definition", "caveat", "use", "partial", "import")
			}
		case p.tok.kind == tokEOF || p.isKeyword("definition") || p.isKeyword("caveat") || p.isKeyword("use") ||
			p.isKeyword("partial") || p.isKeyword("import"):
			p.errorf(p.tok.pos, "missing `}` at the end of the %s, found %s", kind, p.tok.describe())
			return
		default:
			p.statement(func() {
				p.fail("expected `relation`, `permission`, `...partial` or `}`, found %s", p.tok.describe())
			})
			d.incomplete = true
			p.next()
			p.skipTo(true, "relation", "permission", "definition", "caveat", "use", "partial", "import")
		}
	}
}

// parseInclude parses `...name`, the inclusion of a partial's relations and permissions.
func (p *parser) parseInclude() *relationNode {
	r := &relationNode{pos: p.tok.pos}
	p.next()
	if p.tok.kind != tokIdent || statementKeywords[p.tok.text] {
		p.fail("expected a partial's name after `...`, found %s", p.tok.describe())
	}
	r.include, r.namePos = p.tok.text, p.tok.pos
	r.name = r.include
	p.next()
	return r
}

func (p *parser) parseRelation(d *definitionNode) *relationNode {
	r := &relationNode{pos: p.tok.pos, doc: p.tok.doc, isPermission: p.tok.text == "permission"}
	if d.partial {
		r.inPartial = d.name
	}
	kind := p.tok.text
	p.next()
	r.name, r.namePos = p.expectName(fmt.Sprintf("a %s name after `%s`", kind, kind))
	p.where = fmt.Sprintf("%s %q", kind, d.name+"#"+r.name)
	if r.isPermission {
		if hasLimitDirective(r.doc) {
			p.errorf(r.pos, "a `kengen:limit` doc comment applies only to relations, not to a permission")
		}
		if p.tok.kind == tokColon {
			p.next()
			r.annotations = p.parseAnnotation()
		}
		p.expect(tokEquals, "after the permission name")
		r.expr = p.parseExclusion()
		return r
	}
	p.expect(tokColon, "after the relation name")
	r.types = append(r.types, p.parseTypeRef())
	for p.tok.kind == tokPipe {
		p.next()
		r.types = append(r.types, p.parseTypeRef())
	}
	if p.isKeyword("limit") {
		p.next()
		if p.tok.kind != tokNumber {
			p.fail("expected a positive number after `limit`, found %s", p.tok.describe())
		}
		n, err := strconv.Atoi(p.tok.text)
		switch {
		case err != nil:
			p.errorf(p.tok.pos, "limit %s is too large", p.tok.text)
		case n < 1:
			p.errorf(p.tok.pos, "limit must be at least 1, found %d", n)
		default:
			r.limit, r.limitKeyword = n, true
		}
		p.next()
	}
	p.limitDirective(r)
	return r
}

// limitDirectivePrefix starts the doc-comment line that carries a relation's limit in the form
// SpiceDB's parser accepts (it keeps doc comments as comments): `/** kengen:limit 5 */`.
const limitDirectivePrefix = "kengen:limit"

// limitDirective takes a `kengen:limit N` line out of a relation's doc comment and makes it the
// relation's limit. The same limit may also be written as `limit N` after the type list; two
// that disagree are an error, as is the directive on a permission (which parseRelation reaches
// only for relations) or a malformed one.
func (p *parser) limitDirective(r *relationNode) {
	if !hasLimitDirective(r.doc) {
		return
	}
	var kept []string
	for _, line := range strings.Split(r.doc, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), limitDirectivePrefix)
		if !ok {
			kept = append(kept, line)
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(rest))
		switch {
		case err != nil || strings.TrimSpace(rest) == "" || rest[0] != ' ':
			p.errorf(r.pos, "the doc comment's %q must be `kengen:limit N` with N a positive number", strings.TrimSpace(line))
		case n < 1:
			p.errorf(r.pos, "limit must be at least 1, found %d in the doc comment", n)
		case r.limit != 0 && r.limit != n:
			p.errorf(r.pos, "the relation has `limit %d` and a doc comment `kengen:limit %d`; keep one", r.limit, n)
		default:
			r.limit = n
		}
	}
	for len(kept) > 0 && strings.TrimSpace(kept[len(kept)-1]) == "" {
		kept = kept[:len(kept)-1]
	}
	r.doc = strings.Join(kept, "\n")
}

func hasLimitDirective(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), limitDirectivePrefix) {
			return true
		}
	}
	return false
}

// parseAnnotation parses a permission's type annotation after the `:`: `user | team`. SpiceDB's
// parser reads each type as one plain name, so a prefixed, wildcard or userset type is refused
// here, where it would make kengen's schema text one SpiceDB cannot read.
func (p *parser) parseAnnotation() []*annotationNode {
	var out []*annotationNode
	for {
		name, pos := p.expectName("a definition name in the type annotation (`permission name: user | team = ...`)")
		if strings.Contains(name, "/") {
			p.errorf(pos, "type annotation %q: name a definition without its prefix; SpiceDB's type annotations are plain names", name)
		}
		switch p.tok.kind {
		case tokColon, tokHash:
			p.fail("type annotation %q: a type annotation lists definitions only, without `%s`", name, p.tok.text)
		}
		out = append(out, &annotationNode{typ: name, pos: pos})
		if p.tok.kind != tokPipe {
			return out
		}
		p.next()
	}
}

func (p *parser) parseTypeRef() *typeRefNode {
	t := &typeRefNode{pos: p.tok.pos}
	t.typ, _ = p.expectName("a subject type")
	switch p.tok.kind {
	case tokColon:
		p.next()
		p.expect(tokStar, "after `"+t.typ+":` (a wildcard is written `"+t.typ+":*`)")
		t.wildcard = true
		if p.tok.kind == tokHash {
			p.fail("a wildcard subject type `%s:*` cannot have a subject relation", t.typ)
		}
	case tokHash:
		p.next()
		t.relation, t.relPos = p.expectName("a subject relation after `" + t.typ + "#`")
	}
	if p.isKeyword("with") {
		p.next()
		if p.isKeyword("expiration") {
			t.expiration, t.expPos = true, p.tok.pos
			p.next()
			return t
		}
		t.caveat, t.caveatPos = p.expectName("a caveat name or `expiration` after `with`")
		if p.isKeyword("and") {
			p.next()
			if !p.isKeyword("expiration") {
				p.fail("expected `expiration` after `and`, found %s", p.tok.describe())
			}
			t.expiration, t.expPos = true, p.tok.pos
			p.next()
		}
	}
	return t
}

// Permission expressions. Precedence, loosest first, as in SpiceDB: `-` (exclusion, binary,
// left-associative), `&` (intersection), `+` (union); `->`, `.any()`, `.all()` bind tightest.
// Unions and intersections are flattened, including parenthesised operands of the same kind.

func (p *parser) parseExclusion() *exprNode {
	left := p.parseIntersection()
	for p.tok.kind == tokMinus {
		p.next()
		right := p.parseIntersection()
		left = &exprNode{kind: exprExclusion, children: []*exprNode{left, right}, pos: left.pos}
	}
	return left
}

func (p *parser) parseIntersection() *exprNode {
	return p.parseFlat(exprIntersection, tokAmp, p.parseUnion)
}

func (p *parser) parseUnion() *exprNode {
	return p.parseFlat(exprUnion, tokPlus, p.parseTerm)
}

func (p *parser) parseFlat(kind exprKind, op tokenKind, operand func() *exprNode) *exprNode {
	first := operand()
	if p.tok.kind != op {
		return first
	}
	n := &exprNode{kind: kind, pos: first.pos}
	n.addFlat(first)
	for p.tok.kind == op {
		p.next()
		n.addFlat(operand())
	}
	return n
}

func (n *exprNode) addFlat(c *exprNode) {
	if c.kind == n.kind {
		n.children = append(n.children, c.children...)
		return
	}
	n.children = append(n.children, c)
}

func (p *parser) parseTerm() *exprNode {
	pos := p.tok.pos
	switch {
	case p.tok.kind == tokLParen:
		p.next()
		e := p.parseExclusion()
		p.expect(tokRParen, "to close the `(`")
		return e
	case p.isKeyword("nil"):
		p.next()
		return &exprNode{kind: exprNil, pos: pos}
	case p.tok.kind != tokIdent || statementKeywords[p.tok.text]:
		p.fail("expected a relation, a permission, `nil` or `(`, found %s", p.tok.describe())
	}
	name := p.tok.text
	p.next()
	e := &exprNode{kind: exprName, name: name, pos: pos}
	switch p.tok.kind {
	case tokArrow:
		p.next()
		e = &exprNode{kind: exprArrow, tupleset: name, fn: ArrowAny, pos: pos}
		e.name, e.targetPos = p.expectName("a relation or permission after `" + name + "->`")
	case tokDot:
		p.next()
		fn, fnPos := p.expectName("`any` or `all` after `" + name + ".`")
		e = &exprNode{kind: exprArrow, tupleset: name, pos: pos}
		switch fn {
		case "any":
			e.fn = ArrowAny
		case "all":
			e.fn = ArrowAll
		default:
			p.errorf(fnPos, "unknown arrow function %q in `%s.%s()`; use `any` or `all`", fn, name, fn)
		}
		p.expect(tokLParen, "after `"+name+"."+fn+"`")
		e.name, e.targetPos = p.expectName("a relation or permission in `" + name + "." + fn + "()`")
		p.expect(tokRParen, "to close `"+name+"."+fn+"(`")
	default:
		return e
	}
	if p.tok.kind == tokArrow || p.tok.kind == tokDot {
		p.fail("an arrow cannot follow an arrow (`%s->%s` then %s); introduce a permission for the first step", e.tupleset, e.name, p.tok.describe())
	}
	return e
}

func (p *parser) parseCaveat() *caveatNode {
	c := &caveatNode{pos: p.tok.pos, doc: p.tok.doc}
	p.next()
	c.name, c.namePos = p.expectName("a caveat name after `caveat`")
	p.where = fmt.Sprintf("caveat %q", c.name)
	p.expect(tokLParen, "after the caveat name")
	for p.tok.kind != tokRParen {
		prm := &paramNode{}
		prm.name, prm.pos = p.expectName("a parameter name")
		prm.typePos = p.tok.pos
		prm.typ = p.parseParamType()
		c.params = append(c.params, prm)
		if p.tok.kind != tokComma {
			break
		}
		p.next()
	}
	p.expect(tokRParen, "after the caveat parameters")
	if p.tok.kind != tokLBrace {
		p.fail("expected %s before the caveat expression, found %s", tokLBrace, p.tok.describe())
	}
	c.bodyPos = p.tok.pos
	body, code, ok := p.lex.scanCEL()
	c.empty = !code
	if !ok {
		p.errorf(c.bodyPos, "missing `}` at the end of the caveat expression")
	}
	c.expr = trimSpace(body)
	p.next()
	return c
}

func (p *parser) parseParamType() *paramType {
	t := &paramType{pos: p.tok.pos}
	t.name, _ = p.expectName("a parameter type")
	if p.tok.kind == tokLAngle {
		p.next()
		t.args = append(t.args, p.parseParamType())
		for p.tok.kind == tokComma {
			p.next()
			t.args = append(t.args, p.parseParamType())
		}
		p.expect(tokRAngle, "to close the type arguments of "+t.name)
	}
	return t
}

func trimSpace(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
