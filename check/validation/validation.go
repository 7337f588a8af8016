// Package validation reads SpiceDB/zed validation files (YAML with a schema, relationships,
// assertions and expected relations) and runs them in-process against a real in-memory store
// and the check engine, as `zed validate` does against SpiceDB.
//
// This file is the front door: the parsed form (File, Document, Assertion, ExpectedRelation),
// Load, Parse, Run and the Report.
package validation

import (
	"errors"
	"fmt"
	"os"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// ErrInvalid is a validation file that cannot be read: bad YAML, an unknown field, a bad
// relationship, assertion or expected-relation string, a missing or non-local schemaFile.
// The wrapped error names the file and line.
var ErrInvalid = errors.New("validation: invalid validation file")

// File is one parsed validation file.
type File struct {
	Path string
	// Docs are the YAML documents of the file, in order; each is run on its own store.
	Docs []*Document
}

// Document is one YAML document of a validation file.
type Document struct {
	// Schema is the schema text, from `schema:` or from the file `schemaFile:` names.
	Schema string
	// SchemaPos is the line where the schema text starts: in the YAML file for `schema:`,
	// or 1 in SchemaFile.
	SchemaPos int
	// SchemaFile is the path of the schema file when the document used `schemaFile:`.
	SchemaFile string
	// Line is the line where the document starts.
	Line int

	Relationships     []Located[store.Relationship]
	Assertions        []Assertion
	ExpectedRelations []ExpectedRelation

	// schemaLiteral is true when the schema is a literal block (`|`), whose lines map one to
	// one onto the YAML file's.
	schemaLiteral bool
}

// Located is a value parsed from one line of a validation file.
type Located[T any] struct {
	Value T
	Line  int
	Text  string
}

// AssertionKind is what an assertion expects of a check.
type AssertionKind int

const (
	// AssertTrue expects HasPermission.
	AssertTrue AssertionKind = iota + 1
	// AssertFalse expects NoPermission.
	AssertFalse
	// AssertCaveated expects ConditionalPermission.
	AssertCaveated
)

func (k AssertionKind) String() string {
	switch k {
	case AssertTrue:
		return "assertTrue"
	case AssertFalse:
		return "assertFalse"
	case AssertCaveated:
		return "assertCaveated"
	}
	return fmt.Sprintf("AssertionKind(%d)", int(k))
}

// want is the membership the assertion expects.
func (k AssertionKind) want() check.Membership {
	switch k {
	case AssertTrue:
		return check.HasPermission
	case AssertCaveated:
		return check.ConditionalPermission
	}
	return check.NoPermission
}

// Assertion is one entry of `assertions:`: `res:id#permission@subj:id[#rel] [with {json}]`.
type Assertion struct {
	Kind    AssertionKind
	Request check.Request
	Line    int
	// Text is the assertion as written.
	Text string
}

// ObjectRef is `type:id` or `type:id#relation` in an expected relation.
type ObjectRef struct {
	Type, ID, Relation string
}

func (o ObjectRef) String() string {
	if o.Relation == "" {
		return o.Type + ":" + o.ID
	}
	return o.Type + ":" + o.ID + "#" + o.Relation
}

// ExpectedRelation is one key of a `validation:` block: the subjects expected to have
// Resource's relation, each with the paths that grant it.
type ExpectedRelation struct {
	// Resource is the `res:id#permission` key.
	Resource ObjectRef
	Line     int
	Subjects []ExpectedSubject
}

// ExpectedSubject is one string like `[user:* - {user:fred}] is <document:1#viewer>`.
type ExpectedSubject struct {
	Subject ObjectRef
	// Caveated is true for a subject written `[user:sarah[caveatname]]`.
	Caveated bool
	// Excluded lists the subjects a wildcard excludes (`- {user:fred, user:bob}`).
	Excluded []ObjectRef
	// Via lists the `<res:id#relation>` entries after `is`.
	Via  []ObjectRef
	Line int
	Text string
}

// Load reads and parses the validation file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return Parse(path, data)
}

// Parse parses the contents of a validation file. path names the file in errors and locates
// a `schemaFile:`, which must be a local path relative to path's directory.
func Parse(path string, data []byte) (*File, error) {
	return parseFile(path, data)
}

// RunOptions configures Run.
type RunOptions struct {
	// Checker evaluates the assertions; nil means check.New(check.Options{}).
	Checker *check.Checker
}

// Report tallies a run. Failed counts failing assertions and documents whose schema or
// relationships would not load; Pending counts what cannot be evaluated yet.
type Report struct {
	Passed, Failed, Pending int
	Failures                []Failure
	Pendings                []Pending
}

// Failure is one failed assertion, or a document that failed to load.
type Failure struct {
	File string
	Line int
	// Text is what failed: `assertTrue document:1#view@user:tom`, or `schema`, or
	// `relationship ...`.
	Text string
	// Got is what happened: a membership (`no permission`) or an error.
	Got string
	// Want is what the file expected; empty for load failures.
	Want string
}

// String prints the failure as `file:line: text: got ...`, so an editor can jump to it.
func (f Failure) String() string {
	return fmt.Sprintf("%s:%d: %s: got %s", f.File, f.Line, f.Text, f.Got)
}

// Pending is something the file asks for that kengen cannot evaluate yet.
type Pending struct {
	File   string
	Line   int
	Text   string
	Reason string
}

func (p Pending) String() string {
	return fmt.Sprintf("%s:%d: %s: skipped: %s", p.File, p.Line, p.Text, p.Reason)
}

// TallyLine is exactly `N passed, N failed, N skipped` (skipped counts the pending items).
func (r *Report) TallyLine() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", r.Passed, r.Failed, r.Pending)
}

// Merge adds o's counts and items to r.
func (r *Report) Merge(o *Report) {
	r.Passed += o.Passed
	r.Failed += o.Failed
	r.Pending += o.Pending
	r.Failures = append(r.Failures, o.Failures...)
	r.Pendings = append(r.Pendings, o.Pendings...)
}
