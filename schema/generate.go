package schema

import (
	"strconv"
	"strings"
)

// generate implements Schema.Generate.
func generate(s *Schema) string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
	}
	if s.UseExpiration {
		b.WriteString("use expiration\n")
	}
	if s.UseSelf {
		b.WriteString("use self\n")
	}
	if s.UseTypechecking {
		b.WriteString("use typechecking\n")
	}
	for _, c := range s.Caveats {
		sep()
		writeDoc(&b, c.Doc, "")
		b.WriteString("caveat " + c.Name + "(")
		for i, p := range c.Parameters {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(p.Name + " " + p.Type)
		}
		b.WriteString(") {\n\t" + c.Expression + "\n}\n")
	}
	for _, ns := range s.Namespaces {
		sep()
		writeDoc(&b, ns.Doc, "")
		b.WriteString("definition " + ns.Name + " {")
		if len(ns.Relations) == 0 {
			b.WriteString("}\n")
			continue
		}
		b.WriteString("\n")
		for i, r := range ns.Relations {
			if i > 0 && r.IsPermission != ns.Relations[i-1].IsPermission {
				b.WriteString("\n")
			}
			writeDoc(&b, r.Comment(), "\t")
			b.WriteString("\t" + r.String() + "\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// Comment is the doc comment kengen writes for r: its Doc, and for a relation with a limit a
// last line `kengen:limit N`, the form of the limit that SpiceDB's parser accepts (it keeps a
// doc comment as a comment), so that every schema text kengen generates is one SpiceDB's
// tools (zed) can parse. Generate and the reflection API use it.
func (r *Relation) Comment() string {
	if r.Limit == 0 {
		return r.Doc
	}
	directive := limitDirectivePrefix + " " + strconv.Itoa(r.Limit)
	if r.Doc == "" {
		return directive
	}
	return r.Doc + "\n" + directive
}

// String renders the relation or permission as one canonical schema line, e.g.
// `relation viewer: user | group#member` or `permission view = viewer + edit`. A relation's
// limit is not part of the line: generate writes it into the doc comment (Comment).
func (r *Relation) String() string {
	if r.IsPermission {
		if len(r.TypeAnnotations) > 0 {
			return "permission " + r.Name + ": " + strings.Join(r.TypeAnnotations, " | ") + " = " + r.Rewrite.String()
		}
		return "permission " + r.Name + " = " + r.Rewrite.String()
	}
	parts := make([]string, len(r.AllowedSubjects))
	for i, a := range r.AllowedSubjects {
		parts[i] = a.String()
	}
	return "relation " + r.Name + ": " + strings.Join(parts, " | ")
}

// String renders the entry as written in a type list, e.g. `group#member with c and expiration`.
func (a *AllowedSubject) String() string {
	t := &typeRefNode{typ: a.Type, relation: a.Relation, wildcard: a.Wildcard, caveat: a.Caveat, expiration: a.Expiration}
	return t.String()
}

// String renders the rewrite as a permission expression with minimal parentheses.
func (rw *Rewrite) String() string {
	var b strings.Builder
	writeRewrite(&b, rw)
	return b.String()
}

// precedence: exclusion binds loosest, then intersection, then union; leaves bind tightest.
func (rw *Rewrite) precedence() int {
	switch rw.Kind {
	case RewriteExclusion:
		return 1
	case RewriteIntersection:
		return 2
	case RewriteUnion:
		return 3
	}
	return 4
}

func writeRewrite(b *strings.Builder, rw *Rewrite) {
	if rw == nil {
		b.WriteString("nil")
		return
	}
	var op string
	switch rw.Kind {
	case RewriteComputedUserset:
		b.WriteString(rw.Relation)
		return
	case RewriteTupleToUserset:
		b.WriteString(rw.Tupleset)
		if rw.Func == ArrowAll {
			b.WriteString(".all(" + rw.Relation + ")")
		} else {
			b.WriteString("->" + rw.Relation)
		}
		return
	case RewriteNil:
		b.WriteString("nil")
		return
	case RewriteSelf:
		b.WriteString("self")
		return
	case RewriteUnion:
		op = " + "
	case RewriteIntersection:
		op = " & "
	case RewriteExclusion:
		op = " - "
	}
	for i, c := range rw.Children {
		if i > 0 {
			b.WriteString(op)
		}
		// A child of the same or looser binding needs parentheses, except the left operand of
		// an exclusion, which is left-associative.
		paren := c.precedence() < rw.precedence() ||
			c.precedence() == rw.precedence() && !(rw.Kind == RewriteExclusion && i == 0)
		if paren {
			b.WriteString("(")
		}
		writeRewrite(b, c)
		if paren {
			b.WriteString(")")
		}
	}
}

// writeDoc writes a doc comment so that the lexer's normaliseDoc gives doc back.
func writeDoc(b *strings.Builder, doc, indent string) {
	if doc == "" {
		return
	}
	if !strings.Contains(doc, "\n") && strings.TrimLeft(doc, docSpace) == doc {
		b.WriteString(indent + "/** " + doc + " */\n")
		return
	}
	b.WriteString(indent + "/**\n")
	for _, line := range strings.Split(doc, "\n") {
		if line == "" {
			b.WriteString(indent + " *\n")
		} else {
			b.WriteString(indent + " * " + line + "\n")
		}
	}
	b.WriteString(indent + " */\n")
}

// DocComment renders doc as the `/** ... */` comment Generate writes for it, without the
// final newline; "" for no doc. Reflection APIs return comments in this form.
func DocComment(doc string) string {
	var b strings.Builder
	writeDoc(&b, doc, "")
	return strings.TrimSuffix(b.String(), "\n")
}
