package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Relationship strings use SpiceDB's tuple syntax:
//
//	resType:resID#relation@subjType:subjID[#subjRel][[caveat[:{json}]]][[expiration:RFC3339]]
//
// for example `document:1#viewer@group:eng#member` or
// `document:1#viewer@user:tom[only_on_tuesday:{"day":"tuesday"}][expiration:2030-01-01T00:00:00Z]`.
// A subject relation `...` means a plain object subject and is read as "".

const (
	// maxNameLen bounds type, relation and caveat names (each `/`-separated segment).
	maxNameLen = 64
	// maxIDLen bounds resource and subject ids.
	maxIDLen = 1024
	// ellipsis is SpiceDB's spelling of "no subject relation".
	ellipsis = "..."
	// expirationOpen starts the expiration part.
	expirationOpen = "[expiration:"
)

// ParseRelationship reads one relationship string. Errors wrap ErrInvalid and name the column
// (1-based, in bytes) and what was expected there.
func ParseRelationship(s string) (Relationship, error) {
	p := relParser{src: s}
	r, err := p.relationship()
	if err != nil {
		return Relationship{}, err
	}
	return r, nil
}

// String prints the relationship in canonical form: no `#...`, caveat context as JSON with
// sorted keys, expiration in RFC 3339 UTC. ParseRelationship(r.String()) returns r.
func (r Relationship) String() string {
	var b strings.Builder
	b.WriteString(r.ResourceType)
	b.WriteByte(':')
	b.WriteString(r.ResourceID)
	b.WriteByte('#')
	b.WriteString(r.Relation)
	b.WriteByte('@')
	b.WriteString(r.SubjectType)
	b.WriteByte(':')
	b.WriteString(r.SubjectID)
	if r.SubjectRelation != "" {
		b.WriteByte('#')
		b.WriteString(r.SubjectRelation)
	}
	if r.Caveat != "" {
		b.WriteByte('[')
		b.WriteString(r.Caveat)
		if len(r.CaveatContext) > 0 {
			b.WriteByte(':')
			b.Write(canonicalJSON(r.CaveatContext))
		}
		b.WriteByte(']')
	}
	if !r.Expiration.IsZero() {
		b.WriteString(expirationOpen)
		b.WriteString(r.Expiration.UTC().Format(time.RFC3339Nano))
		b.WriteByte(']')
	}
	return b.String()
}

// canonicalJSON encodes a caveat context with sorted keys (encoding/json sorts map keys) and
// without HTML escaping, so that the printed string reads as written.
func canonicalJSON(v map[string]any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only values that did not come from JSON (a channel, NaN) get here; print them
		// visibly rather than dropping the context.
		return []byte(fmt.Sprintf("%q", fmt.Sprint(v)))
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// relParser is a cursor over one relationship string.
type relParser struct {
	src string
	pos int
}

func (p *relParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %q at column %d: %s", ErrInvalid, p.src, p.pos+1, fmt.Sprintf(format, args...))
}

func (p *relParser) eof() bool { return p.pos >= len(p.src) }

func (p *relParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

// expect consumes c or fails naming what it was looking for.
func (p *relParser) expect(c byte, what string) error {
	if p.eof() {
		return p.errorf("expected %q %s, found end of string", c, what)
	}
	if p.src[p.pos] != c {
		return p.errorf("expected %q %s, found %q", c, what, p.src[p.pos])
	}
	p.pos++
	return nil
}

func (p *relParser) relationship() (Relationship, error) {
	var r Relationship
	var err error
	if r.ResourceType, err = p.name("resource type", true); err != nil {
		return r, err
	}
	if err = p.expect(':', "after the resource type"); err != nil {
		return r, err
	}
	if r.ResourceID, err = p.id("resource id", false); err != nil {
		return r, err
	}
	if err = p.expect('#', "after the resource id"); err != nil {
		return r, err
	}
	if r.Relation, err = p.name("relation", false); err != nil {
		return r, err
	}
	if err = p.expect('@', "after the relation"); err != nil {
		return r, err
	}
	if r.SubjectType, err = p.name("subject type", true); err != nil {
		return r, err
	}
	if err = p.expect(':', "after the subject type"); err != nil {
		return r, err
	}
	if r.SubjectID, err = p.id("subject id", true); err != nil {
		return r, err
	}
	if p.peek() == '#' {
		p.pos++
		if strings.HasPrefix(p.src[p.pos:], ellipsis) {
			p.pos += len(ellipsis)
		} else if r.SubjectRelation, err = p.name("subject relation", false); err != nil {
			return r, err
		}
	}
	if p.peek() == '[' && !p.atExpiration() {
		if err = p.caveat(&r); err != nil {
			return r, err
		}
	}
	if p.atExpiration() {
		if err = p.expiration(&r); err != nil {
			return r, err
		}
	}
	if !p.eof() {
		return r, p.errorf("unexpected %q after the relationship", p.src[p.pos:])
	}
	return r, nil
}

// atExpiration reports whether the cursor is at `[expiration:<time>]`. A caveat that happens
// to be named expiration is `[expiration]` or `[expiration:{...}]`.
func (p *relParser) atExpiration() bool {
	rest := p.src[p.pos:]
	return strings.HasPrefix(rest, expirationOpen) && !strings.HasPrefix(rest[len(expirationOpen):], "{")
}

// name reads a type, relation or caveat name: lower-case letters, digits and `_`, starting
// with a letter; with slashes=true it may have `/`-separated prefixes (`org/team/user`).
func (p *relParser) name(what string, slashes bool) (string, error) {
	start := p.pos
	segStart := p.pos
	for !p.eof() {
		c := p.src[p.pos]
		switch {
		case c >= 'a' && c <= 'z':
		case (c >= '0' && c <= '9') || c == '_':
			if p.pos == segStart {
				return "", p.errorf("%s must start with a lower-case letter, found %q", what, c)
			}
		case c == '/' && slashes:
			if p.pos == segStart {
				return "", p.errorf("%s has an empty segment before %q", what, c)
			}
			segStart = p.pos + 1
		default:
			goto done
		}
		if p.pos-segStart >= maxNameLen {
			return "", p.errorf("%s is longer than %d characters", what, maxNameLen)
		}
		p.pos++
	}
done:
	if p.pos == segStart {
		if p.pos == start {
			if p.eof() {
				return "", p.errorf("expected %s, found end of string", what)
			}
			return "", p.errorf("expected %s, found %q", what, p.src[p.pos])
		}
		return "", p.errorf("%s ends with '/'", what)
	}
	return p.src[start:p.pos], nil
}

func isIDByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '/', '_', '|', '-', '=', '+':
		return true
	}
	return false
}

// id reads a resource or subject id: letters, digits and `/ _ | - = +`, at most maxIDLen
// bytes; a subject id may also be the wildcard `*`.
func (p *relParser) id(what string, wildcard bool) (string, error) {
	if wildcard && p.peek() == '*' {
		p.pos++
		return Wildcard, nil
	}
	start := p.pos
	for !p.eof() && isIDByte(p.src[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		if p.eof() {
			return "", p.errorf("expected %s, found end of string", what)
		}
		return "", p.errorf("expected %s (letters, digits and / _ | - = +), found %q", what, p.src[p.pos])
	}
	if p.pos-start > maxIDLen {
		p.pos = start
		return "", p.errorf("%s is longer than %d characters", what, maxIDLen)
	}
	return p.src[start:p.pos], nil
}

// caveat reads `[name]` or `[name:{json object}]`.
func (p *relParser) caveat(r *Relationship) error {
	p.pos++ // '['
	name, err := p.name("caveat name", true)
	if err != nil {
		return err
	}
	r.Caveat = name
	if p.peek() == ':' {
		p.pos++
		if p.peek() != '{' {
			return p.errorf("expected a JSON object after the caveat name %q", name)
		}
		ctx, err := p.jsonObject()
		if err != nil {
			return err
		}
		if len(ctx) > 0 {
			r.CaveatContext = ctx
		}
	}
	return p.expect(']', "closing the caveat")
}

// jsonObject decodes one JSON object at the cursor and moves past it.
func (p *relParser) jsonObject() (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(p.src[p.pos:]))
	var ctx map[string]any
	if err := dec.Decode(&ctx); err != nil {
		return nil, p.errorf("caveat context is not a valid JSON object: %v", err)
	}
	p.pos += int(dec.InputOffset())
	return ctx, nil
}

// expiration reads `[expiration:RFC3339]`.
func (p *relParser) expiration(r *Relationship) error {
	p.pos += len(expirationOpen)
	end := strings.IndexByte(p.src[p.pos:], ']')
	if end < 0 {
		return p.errorf("expected ']' closing the expiration")
	}
	text := p.src[p.pos : p.pos+end]
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return p.errorf("expiration %q is not an RFC 3339 time (like 2030-01-02T15:04:05Z)", text)
	}
	r.Expiration = t.UTC()
	p.pos += end + 1
	return nil
}
