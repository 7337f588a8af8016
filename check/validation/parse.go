package validation

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kengen/kengen/store"
)

// fileParser holds what every document of one file needs to report errors.
type fileParser struct {
	path  string
	lines []string // the file's lines, for locating relationships inside block scalars
}

func (p *fileParser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrInvalid, p.path, line, fmt.Sprintf(format, args...))
}

func parseFile(path string, data []byte) (*File, error) {
	p := &fileParser{path: path, lines: strings.Split(string(data), "\n")}
	f := &File{Path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(path, err)
		}
		if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
			continue
		}
		body := root.Content[0]
		if body.Kind == yaml.ScalarNode && body.Tag == "!!null" {
			continue // an empty document, e.g. after a trailing `---`
		}
		doc, err := p.document(body)
		if err != nil {
			return nil, err
		}
		f.Docs = append(f.Docs, doc)
	}
	return f, nil
}

// yamlLine matches the position yaml puts at the start of a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError reports a YAML syntax error as `file:line: yaml: message`.
func yamlError(path string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%w: %s:%s: yaml: %s", ErrInvalid, path, m[1], msg[len(m[0]):])
	}
	return fmt.Errorf("%w: %s: %s", ErrInvalid, path, msg)
}

// document parses one YAML document's top-level mapping.
func (p *fileParser) document(n *yaml.Node) (*Document, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n.Line, "a validation document must be a mapping with schema, relationships and assertions")
	}
	doc := &Document{Line: n.Line}
	var schemaNode, schemaFileNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		var err error
		switch key.Value {
		case "schema":
			schemaNode = val
		case "schemaFile":
			schemaFileNode = val
		case "relationships":
			err = p.relationships(doc, val)
		case "assertions":
			err = p.assertions(doc, val)
		case "validation":
			err = p.validation(doc, val)
		case "validation_tuples", "relation_tuples":
			err = p.errorf(key.Line, "field %q is the legacy format: relationships must be specified in `relationships`", key.Value)
		case "namespace_configs":
			err = p.errorf(key.Line, "field %q is the legacy format: definitions must be specified in `schema`", key.Value)
		default:
			err = p.errorf(key.Line, "unknown field %q (want schema, schemaFile, relationships, assertions or validation)", key.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	if schemaNode != nil && !isNull(schemaNode) && schemaFileNode != nil && !isNull(schemaFileNode) {
		return nil, p.errorf(schemaFileNode.Line, "only one of schema or schemaFile can be specified")
	}
	if schemaNode != nil && !isNull(schemaNode) {
		if schemaNode.Kind != yaml.ScalarNode {
			return nil, p.errorf(schemaNode.Line, "schema must be text")
		}
		doc.Schema = schemaNode.Value
		doc.SchemaPos = schemaNode.Line
		if schemaNode.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			doc.SchemaPos++ // a block scalar's text starts on the line after `|` or `>`
		}
		doc.schemaLiteral = schemaNode.Style&yaml.LiteralStyle != 0
	}
	if schemaFileNode != nil && !isNull(schemaFileNode) {
		if err := p.schemaFile(doc, schemaFileNode); err != nil {
			return nil, err
		}
	}
	if err := p.checkRepeats(doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// schemaFile reads the schema named by `schemaFile:`, relative to the validation file's
// directory. Like zed, it refuses paths that leave that directory.
func (p *fileParser) schemaFile(doc *Document, n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		return p.errorf(n.Line, "schemaFile must be a path")
	}
	if !filepath.IsLocal(n.Value) {
		return p.errorf(n.Line, "schemaFile %q is not local: it must name a file in or below the validation file's directory", n.Value)
	}
	full := filepath.Join(filepath.Dir(p.path), n.Value)
	data, err := os.ReadFile(full)
	if err != nil {
		return p.errorf(n.Line, "reading schemaFile: %v", err)
	}
	doc.Schema = string(data)
	doc.SchemaFile = full
	doc.SchemaPos = 1
	doc.schemaLiteral = true
	return nil
}

// relationships parses the newline-separated relationship strings; blank lines and `//`
// comments are skipped.
func (p *fileParser) relationships(doc *Document, n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return p.errorf(n.Line, "relationships must be text, one relationship per line")
	}
	cursor := n.Line // a plain or quoted scalar may start on the key's line
	for _, text := range strings.Split(n.Value, "\n") {
		text = strings.TrimSpace(text)
		if text == "" || strings.HasPrefix(text, "//") {
			continue
		}
		line := p.locate(text, cursor, n.Line)
		cursor = line + 1
		r, err := store.ParseRelationship(text)
		if err != nil {
			return p.errorf(line, "bad relationship: %v", err)
		}
		doc.Relationships = append(doc.Relationships, Located[store.Relationship]{Value: r, Line: line, Text: text})
	}
	return nil
}

// locate finds the file line, at or after from, that holds text: a line that is exactly
// text, else one that contains it; fallback if none does.
func (p *fileParser) locate(text string, from, fallback int) int {
	from = max(from, 1)
	for i := from; i <= len(p.lines); i++ {
		if strings.TrimSpace(p.lines[i-1]) == text {
			return i
		}
	}
	for i := from; i <= len(p.lines); i++ {
		if strings.Contains(p.lines[i-1], text) {
			return i
		}
	}
	return fallback
}

// checkRepeats refuses a relationship written twice (with or without a different caveat or
// expiration), as zed does: the second would silently replace the first.
func (p *fileParser) checkRepeats(doc *Document) error {
	seen := make(map[string]int, len(doc.Relationships))
	for _, lr := range doc.Relationships {
		bare := lr.Value
		bare.Caveat, bare.CaveatContext, bare.Expiration = "", nil, time.Time{}
		key := bare.String()
		if first, ok := seen[key]; ok {
			return p.errorf(lr.Line, "found repeated relationship `%s` (first at line %d)", key, first)
		}
		seen[key] = lr.Line
	}
	return nil
}

// assertions parses `assertions:`, a mapping of assertTrue / assertFalse / assertCaveated to
// lists of assertion strings.
func (p *fileParser) assertions(doc *Document, n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errorf(n.Line, "assertions must be a mapping of assertTrue, assertFalse and assertCaveated")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		var kind AssertionKind
		switch key.Value {
		case "assertTrue":
			kind = AssertTrue
		case "assertFalse":
			kind = AssertFalse
		case "assertCaveated":
			kind = AssertCaveated
		default:
			return p.errorf(key.Line, "unknown assertion kind %q (want assertTrue, assertFalse or assertCaveated)", key.Value)
		}
		if isNull(val) {
			continue
		}
		if val.Kind != yaml.SequenceNode {
			return p.errorf(val.Line, "%s must be a list of assertions", key.Value)
		}
		for _, item := range val.Content {
			if item.Kind != yaml.ScalarNode {
				return p.errorf(item.Line, "%s entries must be strings like `document:1#view@user:tom`", key.Value)
			}
			req, err := parseAssertion(item.Value)
			if err != nil {
				return p.errorf(item.Line, "bad %s assertion %q: %v", key.Value, item.Value, err)
			}
			doc.Assertions = append(doc.Assertions, Assertion{Kind: kind, Request: req, Line: item.Line, Text: strings.TrimSpace(item.Value)})
		}
	}
	return nil
}

// validation parses `validation:`, a mapping from `res:id#permission` to lists of expected
// subject strings.
func (p *fileParser) validation(doc *Document, n *yaml.Node) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errorf(n.Line, "validation must be a mapping from `resource:id#permission` to lists of expected subjects")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		res, err := parseObjectRef(key.Value, true)
		if err != nil {
			return p.errorf(key.Line, "bad validation key %q: %v", key.Value, err)
		}
		er := ExpectedRelation{Resource: res, Line: key.Line}
		if !isNull(val) {
			if val.Kind != yaml.SequenceNode {
				return p.errorf(val.Line, "the expected subjects of %q must be a list", key.Value)
			}
			for _, item := range val.Content {
				if item.Kind != yaml.ScalarNode {
					return p.errorf(item.Line, "expected subjects must be strings like `[user:tom] is <document:1#viewer>`")
				}
				es, err := parseExpectedSubject(item.Value)
				if err != nil {
					return p.errorf(item.Line, "bad expected subject %q: %v", item.Value, err)
				}
				es.Line = item.Line
				er.Subjects = append(er.Subjects, es)
			}
		}
		doc.ExpectedRelations = append(doc.ExpectedRelations, er)
	}
	return nil
}
