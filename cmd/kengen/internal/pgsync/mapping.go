package pgsync

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mapping is a parsed mapping file: which rows of which tables make which relationships.
type Mapping struct {
	// Slot is the logical replication slot's name; Publication the publication's.
	Slot, Publication string
	Tables            []*Table
}

// Table is one mapped table and the rules its rows follow.
type Table struct {
	// Schema and Name name the table (Schema defaults to public).
	Schema, Name string
	Rules        []*Rule
	Line         int

	// Filled in from the database's catalog at start (catalog.go).
	key     []string // primary key columns, the row's key in messages
	columns []string // the columns the rules read, in SELECT order
}

// Rule is one relationship template: `deal:{id}#owner@user:{owner_id}`, with an optional
// caveat (its context from a JSON column) and expiration (from a timestamp column).
type Rule struct {
	Text string // the template as written, used to name the rule in messages
	Line int

	table string // the table's name, the refused metric's label

	ResourceType string
	ResourceID   template
	Relation     string
	SubjectType  string
	SubjectID    template
	SubjectRel   string

	Caveat        string // caveat name, or ""
	CaveatContext string // column holding the caveat context as a JSON object, or ""
	Expiration    string // column holding the expiration time, or ""
}

// template is an object id built from literal text and {column} placeholders.
type template []piece

type piece struct {
	lit    string
	column string // set for a placeholder
}

// String gives the rule as the file wrote it, with its line.
func (r *Rule) String() string { return fmt.Sprintf("%s (mapping line %d)", r.Text, r.Line) }

// MappingError is one problem in a mapping file, at its line and column.
type MappingError struct {
	Line, Col int
	Msg       string
}

func (e MappingError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// MappingErrors is every problem found in a mapping file, in file order.
type MappingErrors struct {
	File   string
	Errors []MappingError
}

func (e *MappingErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s", ErrMapping, e.File)
	for _, m := range e.Errors {
		fmt.Fprintf(&b, "\n  %s:%s", e.File, m.Error())
	}
	return b.String()
}

func (e *MappingErrors) Unwrap() error { return ErrMapping }

var (
	typeName  = regexp.MustCompile(`^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
	relName   = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
	identName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
	idLiteral = regexp.MustCompile(`^[a-zA-Z0-9/_|\-=+]*$`)
)

// ParseMapping reads a mapping file's text; file names it in errors. Every problem comes back
// at once, each with its line, as *MappingErrors.
func ParseMapping(file string, data []byte) (*Mapping, error) {
	p := &mappingParser{errs: &MappingErrors{File: file}}
	m := p.parse(data)
	if len(p.errs.Errors) > 0 {
		sort.SliceStable(p.errs.Errors, func(i, j int) bool { return p.errs.Errors[i].Line < p.errs.Errors[j].Line })
		return nil, p.errs
	}
	return m, nil
}

type mappingParser struct{ errs *MappingErrors }

func (p *mappingParser) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errs.Errors = append(p.errs.Errors, MappingError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

func (p *mappingParser) parse(data []byte) *Mapping {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(nil, "the mapping file is empty: it needs a tables list")
			return nil
		}
		var te *yaml.TypeError
		line := 1
		if errors.As(err, &te) && len(te.Errors) > 0 {
			p.errorf(nil, "%s", te.Errors[0])
			return nil
		}
		// yaml.v3 syntax errors read "yaml: line N: ..."; keep the line.
		msg := err.Error()
		if _, err := fmt.Sscanf(msg, "yaml: line %d:", &line); err == nil {
			msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
			msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
		}
		p.errs.Errors = append(p.errs.Errors, MappingError{Line: line, Col: 1, Msg: msg})
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorf(nil, "the mapping file is empty: it needs a tables list")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "the mapping file must be a mapping with a tables list")
		return nil
	}
	m := &Mapping{Slot: "kengen_sync", Publication: "kengen_sync"}
	var tables *yaml.Node
	p.fields(root, map[string]func(*yaml.Node){
		"slot":        func(v *yaml.Node) { m.Slot = p.ident(v, "slot") },
		"publication": func(v *yaml.Node) { m.Publication = p.ident(v, "publication") },
		"tables":      func(v *yaml.Node) { tables = v },
	})
	if tables == nil {
		p.errorf(root, "missing tables: the list of mapped tables")
		return m
	}
	if tables.Kind != yaml.SequenceNode || len(tables.Content) == 0 {
		p.errorf(tables, "tables must be a non-empty list")
		return m
	}
	seen := map[string]int{}
	for _, tn := range tables.Content {
		t := p.table(tn)
		if t == nil {
			continue
		}
		key := t.Schema + "." + t.Name
		if prev, ok := seen[key]; ok {
			p.errorf(tn, "table %s is mapped twice (first at line %d): list all its relationships under one entry", key, prev)
			continue
		}
		seen[key] = t.Line
		m.Tables = append(m.Tables, t)
	}
	return m
}

// fields walks a mapping node's keys, refusing unknown and repeated ones.
func (p *mappingParser) fields(n *yaml.Node, known map[string]func(*yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := known[k.Value]
		switch {
		case !ok:
			names := make([]string, 0, len(known))
			for name := range known {
				names = append(names, name)
			}
			sort.Strings(names)
			p.errorf(k, "unknown key %q (known: %s)", k.Value, strings.Join(names, ", "))
		case seen[k.Value]:
			p.errorf(k, "key %q is given twice", k.Value)
		default:
			seen[k.Value] = true
			f(v)
		}
	}
}

func (p *mappingParser) scalar(v *yaml.Node, what string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		p.errorf(v, "%s must be a non-empty string", what)
		return "", false
	}
	return v.Value, true
}

func (p *mappingParser) ident(v *yaml.Node, what string) string {
	s, ok := p.scalar(v, what)
	if ok && !identName.MatchString(s) {
		p.errorf(v, "%s %q is not a plain SQL identifier (letters, digits, _)", what, s)
	}
	return s
}

func (p *mappingParser) table(n *yaml.Node) *Table {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "a tables entry must be a mapping with table and relationships")
		return nil
	}
	t := &Table{Line: n.Line}
	var rels *yaml.Node
	p.fields(n, map[string]func(*yaml.Node){
		"table": func(v *yaml.Node) {
			name, ok := p.scalar(v, "table")
			if !ok {
				return
			}
			t.Schema, t.Name = "public", name
			if s, tn, ok := strings.Cut(name, "."); ok {
				t.Schema, t.Name = s, tn
			}
			if !identName.MatchString(t.Schema) || !identName.MatchString(t.Name) {
				p.errorf(v, "table %q is not a plain [schema.]name identifier", name)
			}
		},
		"relationships": func(v *yaml.Node) { rels = v },
	})
	if t.Name == "" {
		p.errorf(n, "missing table: the table's name")
		return nil
	}
	if rels == nil || rels.Kind != yaml.SequenceNode || len(rels.Content) == 0 {
		at := n
		if rels != nil {
			at = rels
		}
		p.errorf(at, "table %s needs a non-empty relationships list", t.Name)
		return nil
	}
	for _, rn := range rels.Content {
		if r := p.rule(rn); r != nil {
			r.table = t.qualified()
			t.Rules = append(t.Rules, r)
		}
	}
	return t
}

func (p *mappingParser) rule(n *yaml.Node) *Rule {
	r := &Rule{Line: n.Line}
	text := n
	switch n.Kind {
	case yaml.ScalarNode:
	case yaml.MappingNode:
		text = nil
		p.fields(n, map[string]func(*yaml.Node){
			"relationship": func(v *yaml.Node) { text = v },
			"caveat": func(v *yaml.Node) {
				if s, ok := p.scalar(v, "caveat"); ok {
					if !relName.MatchString(s) {
						p.errorf(v, "caveat %q is not a caveat name", s)
					}
					r.Caveat = s
				}
			},
			"caveat_context": func(v *yaml.Node) { r.CaveatContext = p.ident(v, "caveat_context") },
			"expiration":     func(v *yaml.Node) { r.Expiration = p.ident(v, "expiration") },
		})
		if text == nil {
			p.errorf(n, "missing relationship: the template, e.g. deal:{id}#owner@user:{owner_id}")
			return nil
		}
		if r.CaveatContext != "" && r.Caveat == "" {
			p.errorf(n, "caveat_context %s is given without a caveat", r.CaveatContext)
		}
	default:
		p.errorf(n, "a relationships entry is a template string or a mapping with relationship")
		return nil
	}
	s, ok := p.scalar(text, "relationship")
	if !ok {
		return nil
	}
	r.Text = s
	if err := r.parseTemplate(s); err != nil {
		p.errorf(text, "relationship %q: %v", s, err)
		return nil
	}
	return r
}

// parseTemplate reads `type:id#relation@type:id[#relation]`, where the ids hold literal text
// and {column} placeholders.
func (r *Rule) parseTemplate(s string) error {
	res, subj, ok := strings.Cut(s, "@")
	if !ok {
		return errors.New("want resource#relation@subject, e.g. deal:{id}#owner@user:{owner_id}")
	}
	resObj, rel, ok := strings.Cut(res, "#")
	if !ok {
		return errors.New("the resource needs #relation")
	}
	var err error
	if r.ResourceType, r.ResourceID, err = object(resObj, "resource"); err != nil {
		return err
	}
	if !relName.MatchString(rel) {
		return fmt.Errorf("relation %q is not a relation name", rel)
	}
	r.Relation = rel
	subjObj, subjRel, _ := strings.Cut(subj, "#")
	if r.SubjectType, r.SubjectID, err = object(subjObj, "subject"); err != nil {
		return err
	}
	if subjRel != "" && !relName.MatchString(subjRel) {
		return fmt.Errorf("subject relation %q is not a relation name", subjRel)
	}
	r.SubjectRel = subjRel
	if len(r.ResourceID.columns())+len(r.SubjectID.columns()) == 0 {
		return errors.New("names no {column}: every row would give the same relationship")
	}
	return nil
}

func object(s, what string) (string, template, error) {
	typ, id, ok := strings.Cut(s, ":")
	if !ok {
		return "", nil, fmt.Errorf("the %s %q needs type:id", what, s)
	}
	if !typeName.MatchString(typ) {
		return "", nil, fmt.Errorf("%s type %q is not a definition name", what, typ)
	}
	if what == "subject" && id == "*" {
		return typ, template{{lit: "*"}}, nil
	}
	var t template
	for id != "" {
		open := strings.IndexByte(id, '{')
		if open < 0 {
			open = len(id)
		}
		if lit := id[:open]; lit != "" {
			if !idLiteral.MatchString(lit) || strings.ContainsAny(lit, "}") {
				return "", nil, fmt.Errorf("%s id %q: %q is not allowed in an object id", what, s, lit)
			}
			t = append(t, piece{lit: lit})
		}
		if open == len(id) {
			break
		}
		end := strings.IndexByte(id[open:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("%s id in %q has an unclosed {", what, s)
		}
		col := id[open+1 : open+end]
		if !identName.MatchString(col) {
			return "", nil, fmt.Errorf("%s id in %q: {%s} is not a column name", what, s, col)
		}
		t = append(t, piece{column: col})
		id = id[open+end+1:]
	}
	if len(t) == 0 {
		return "", nil, fmt.Errorf("the %s %q has an empty id", what, s)
	}
	return typ, t, nil
}

func (t template) columns() []string {
	var cols []string
	for _, p := range t {
		if p.column != "" {
			cols = append(cols, p.column)
		}
	}
	return cols
}

// columns is every column the rule reads.
func (r *Rule) columnsRead() []string {
	cols := append(r.ResourceID.columns(), r.SubjectID.columns()...)
	if r.CaveatContext != "" {
		cols = append(cols, r.CaveatContext)
	}
	if r.Expiration != "" {
		cols = append(cols, r.Expiration)
	}
	return cols
}

// fingerprint identifies what the mapping makes, so a changed mapping is noticed and copied
// anew (the stream alone would miss rows the old mapping ignored).
func (m *Mapping) fingerprint() string {
	var b strings.Builder
	b.WriteString(m.Publication)
	for _, t := range m.Tables {
		fmt.Fprintf(&b, "|%s.%s", t.Schema, t.Name)
		for _, r := range t.Rules {
			fmt.Fprintf(&b, ";%s[%s:%s][%s]", r.Text, r.Caveat, r.CaveatContext, r.Expiration)
		}
	}
	return b.String()
}
