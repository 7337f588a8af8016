package schema

import (
	"fmt"
	"strings"
)

// tokenKind is the lexical class of a token.
type tokenKind int

const (
	tokEOF       tokenKind = iota
	tokIllegal             // a character the language does not use
	tokIdent               // a name, possibly prefixed: `user`, `org/team/user`; keywords are idents too
	tokNumber              // a decimal integer (for `limit N`)
	tokString              // a quoted string; only ever an error outside a caveat body
	tokLBrace              // {
	tokRBrace              // }
	tokLParen              // (
	tokRParen              // )
	tokLAngle              // <
	tokRAngle              // >
	tokColon               // :
	tokPipe                // |
	tokHash                // #
	tokStar                // *
	tokPlus                // +
	tokAmp                 // &
	tokMinus               // -
	tokArrow               // ->
	tokEquals              // =
	tokComma               // ,
	tokDot                 // .
	tokSemicolon           // ;
	tokEllipsis            // ... (before a partial's name: `...name`)
)

var tokenNames = [...]string{
	tokEOF: "end of file", tokIllegal: "illegal character", tokIdent: "name", tokNumber: "number",
	tokString: "string", tokLBrace: "`{`", tokRBrace: "`}`", tokLParen: "`(`", tokRParen: "`)`",
	tokLAngle: "`<`", tokRAngle: "`>`", tokColon: "`:`", tokPipe: "`|`", tokHash: "`#`",
	tokStar: "`*`", tokPlus: "`+`", tokAmp: "`&`", tokMinus: "`-`", tokArrow: "`->`",
	tokEquals: "`=`", tokComma: "`,`", tokDot: "`.`", tokSemicolon: "`;`", tokEllipsis: "`...`",
}

func (k tokenKind) String() string { return tokenNames[k] }

// token is one lexeme. doc holds the /** doc */ comments found since the previous token.
type token struct {
	kind tokenKind
	text string
	pos  Position
	doc  string
}

// describe renders the token for an "expected X, found Y" message.
func (t token) describe() string {
	switch t.kind {
	case tokIdent:
		if statementKeywords[t.text] {
			return "`" + t.text + "`"
		}
		return fmt.Sprintf("%q", t.text)
	case tokNumber:
		return fmt.Sprintf("%q", t.text)
	case tokIllegal:
		return fmt.Sprintf("illegal character %q", t.text)
	case tokString:
		return "string " + t.text
	}
	return t.kind.String()
}

// lexer turns schema source into tokens. It is driven by the parser one token at a time so
// that the parser can switch it into raw mode for a caveat's CEL body.
type lexer struct {
	src  string
	file string // the file name positions carry; "" for a schema given as text
	off  int
	line int
	col  int
	errf func(Position, string, ...any)
}

func newLexer(src, file string, errf func(Position, string, ...any)) *lexer {
	return &lexer{src: src, file: file, line: 1, col: 1, errf: errf}
}

func (l *lexer) pos() Position { return Position{File: l.file, Line: l.line, Column: l.col} }

func (l *lexer) peekByte(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

// advance moves past n bytes, keeping line and column. Columns count bytes.
func (l *lexer) advance(n int) {
	for i := 0; i < n && l.off < len(l.src); i++ {
		if l.src[l.off] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.off++
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// next scans the next token, skipping whitespace and comments and gathering doc comments.
func (l *lexer) next() token {
	var docs []string
	for {
		c := l.peekByte(0)
		switch {
		case l.off >= len(l.src):
			return token{kind: tokEOF, pos: l.pos(), doc: joinDocs(docs)}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.advance(1)
			continue
		case c == '/' && l.peekByte(1) == '/':
			end := strings.IndexByte(l.src[l.off:], '\n')
			if end < 0 {
				end = len(l.src) - l.off
			}
			l.advance(end)
			continue
		case c == '/' && l.peekByte(1) == '*':
			start := l.pos()
			end := strings.Index(l.src[l.off+2:], "*/")
			if end < 0 {
				l.errf(start, "unterminated block comment")
				l.advance(len(l.src) - l.off)
				continue
			}
			body := l.src[l.off+2 : l.off+2+end]
			if strings.HasPrefix(body, "*") && len(body) > 0 {
				docs = append(docs, normaliseDoc(body[1:]))
			}
			l.advance(end + 4)
			continue
		}
		break
	}
	t := token{pos: l.pos(), doc: joinDocs(docs)}
	start := l.off
	c := l.peekByte(0)
	switch {
	case isLetter(c):
		l.scanName()
		t.kind = tokIdent
	case isDigit(c):
		for isDigit(l.peekByte(0)) {
			l.advance(1)
		}
		t.kind = tokNumber
	case c == '"' || c == '\'':
		l.scanString(c)
		t.kind = tokString
	case c == '-' && l.peekByte(1) == '>':
		l.advance(2)
		t.kind = tokArrow
	case c == '.' && l.peekByte(1) == '.' && l.peekByte(2) == '.':
		l.advance(3)
		t.kind = tokEllipsis
	default:
		k, ok := punctuation[c]
		if !ok {
			k = tokIllegal
		}
		t.kind = k
		l.advanceRune()
	}
	t.text = l.src[start:l.off]
	return t
}

var punctuation = map[byte]tokenKind{
	'{': tokLBrace, '}': tokRBrace, '(': tokLParen, ')': tokRParen, '<': tokLAngle,
	'>': tokRAngle, ':': tokColon, '|': tokPipe, '#': tokHash, '*': tokStar,
	'+': tokPlus, '&': tokAmp, '-': tokMinus, '=': tokEquals, ',': tokComma,
	'.': tokDot, ';': tokSemicolon,
}

// advanceRune moves past one UTF-8 encoded character, so that an illegal token holds all of it.
func (l *lexer) advanceRune() {
	n := 1
	for l.off+n < len(l.src) && l.src[l.off+n]&0xC0 == 0x80 && n < 4 {
		n++
	}
	l.advance(n)
}

// scanName scans `seg(/seg)*` where seg is a letter followed by letters and digits. Whether the
// name is a valid type or relation name is the type checker's business.
func (l *lexer) scanName() {
	for {
		for isLetter(l.peekByte(0)) || isDigit(l.peekByte(0)) {
			l.advance(1)
		}
		if l.peekByte(0) == '/' && isLetter(l.peekByte(1)) {
			l.advance(1)
			continue
		}
		return
	}
}

// scanString scans a quoted string starting at the opening quote q, honouring backslash
// escapes. It stops at the end of the line if the string is unterminated.
func (l *lexer) scanString(q byte) {
	start := l.pos()
	l.advance(1)
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == '\\':
			l.advance(2)
			continue
		case c == q:
			l.advance(1)
			return
		case c == '\n':
			l.errf(start, "unterminated string")
			return
		}
		l.advance(1)
	}
	l.errf(start, "unterminated string")
}

// scanCEL scans a caveat body: the raw text after the opening `{` up to the matching `}`,
// which it consumes. Braces inside CEL strings and comments do not count. code reports whether
// the body holds anything but whitespace and comments; ok is false if the source ends first.
func (l *lexer) scanCEL() (body string, code, ok bool) {
	start := l.off
	depth := 1
	for l.off < len(l.src) {
		c := l.src[l.off]
		isSpace := c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
		if !isSpace && !(c == '/' && l.peekByte(1) == '/') && !(c == '}' && depth == 1) {
			code = true
		}
		switch {
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				body = l.src[start:l.off]
				l.advance(1)
				return body, code, true
			}
		case c == '/' && l.peekByte(1) == '/':
			end := strings.IndexByte(l.src[l.off:], '\n')
			if end < 0 {
				end = len(l.src) - l.off
			}
			l.advance(end)
			continue
		case c == '"' || c == '\'':
			l.skipCELString(start)
			continue
		}
		l.advance(1)
	}
	return l.src[start:], code, false
}

// skipCELString skips a CEL string literal at the current offset: single, double or triple
// quoted, raw if prefixed with r or R (bodyStart bounds the look-back for the prefix).
func (l *lexer) skipCELString(bodyStart int) {
	raw := false
	for i := l.off - 1; i >= bodyStart && i >= l.off-2; i-- {
		p := l.src[i]
		if p == 'r' || p == 'R' {
			raw = true
		} else if p != 'b' && p != 'B' {
			if isLetter(p) || isDigit(p) {
				raw = false
			}
			break
		}
	}
	q := l.src[l.off]
	delim := string(q)
	if strings.HasPrefix(l.src[l.off:], strings.Repeat(delim, 3)) {
		delim = strings.Repeat(delim, 3)
	}
	l.advance(len(delim))
	for l.off < len(l.src) {
		if !raw && l.src[l.off] == '\\' && l.peekByte(1) != '\n' {
			l.advance(2)
			continue
		}
		if strings.HasPrefix(l.src[l.off:], delim) {
			l.advance(len(delim))
			return
		}
		if len(delim) == 1 && l.src[l.off] == '\n' {
			return // unterminated; CEL will report it, and the newline ends the string here
		}
		l.advance(1)
	}
}

// normaliseDoc turns the inside of a /** ... */ comment (after the second `*`) into Doc text:
// the first line is trimmed; each further line loses its indentation, one leading `*` and one
// space after it; trailing spaces and leading and trailing blank lines are dropped.
func normaliseDoc(body string) string {
	lines := strings.Split(body, "\n")
	for i, line := range lines {
		line = strings.TrimLeft(line, docSpace)
		if i > 0 && strings.HasPrefix(line, "*") {
			line = strings.TrimPrefix(line[1:], " ")
		}
		lines[i] = strings.TrimRight(line, docSpace)
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}

const docSpace = " \t\r\f\v"

func joinDocs(docs []string) string {
	var kept []string
	for _, d := range docs {
		if d != "" {
			kept = append(kept, d)
		}
	}
	return strings.Join(kept, "\n")
}
