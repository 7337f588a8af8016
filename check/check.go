// Package check answers permission questions over the relationships a store.Reader sees at
// one revision, by evaluating the compiled schema's userset rewrites (Zanzibar §2.3).
//
// This file is the front door: Checker, Request, Result, and the sentinel errors.
package check

import (
	"context"
	"errors"

	"github.com/kengen/kengen/store"
)

// Membership is the answer to one check.
type Membership int

const (
	// NoPermission: the subject is not in the permission's userset.
	NoPermission Membership = iota
	// HasPermission: the subject is in the userset.
	HasPermission
	// ConditionalPermission: the answer depends on caveat parameters the request did not
	// supply; Result.MissingParams names them.
	ConditionalPermission
)

func (m Membership) String() string {
	switch m {
	case HasPermission:
		return "has permission"
	case ConditionalPermission:
		return "conditional"
	default:
		return "no permission"
	}
}

// Request asks whether a subject has a permission (or relation) on a resource.
type Request struct {
	ResourceType string
	ResourceID   string
	Permission   string
	SubjectType  string
	SubjectID    string
	// SubjectRelation is "" for a plain object subject, or the relation of a userset subject
	// (`group:eng#member`).
	SubjectRelation string
	// Context is the caveat context supplied with the request. Values written with a
	// relationship take precedence over these.
	Context map[string]any
	// Explain asks for Result.Explanation.
	Explain bool
}

// Result is the answer to a Request.
type Result struct {
	Membership Membership
	// MissingParams names the caveat parameters whose absence made the answer conditional,
	// sorted.
	MissingParams []string
	// Explanation is the evaluation tree when the request asked for it.
	Explanation *Explanation
}

// Options configures a Checker.
type Options struct {
	// MaxDepth bounds how many relations one path may traverse (parent roles, nested
	// groups, arrows). Zero means DefaultMaxDepth.
	MaxDepth int
	// Concurrency bounds how many goroutines one request may fan out to. Zero means
	// DefaultConcurrency; 1 evaluates everything on the caller's goroutine.
	Concurrency int
}

// DefaultMaxDepth is far above any real hierarchy; a cycle never reaches it because
// evaluation cuts cycles first.
const DefaultMaxDepth = 10_000

// MaxMaxDepth bounds MaxDepth so that evaluation stays within the Go stack.
const MaxMaxDepth = 100_000

// DefaultConcurrency is the default fan-out per request.
const DefaultConcurrency = 4

// Sentinel errors, wrapped with details and tested with errors.Is.
var (
	// ErrMaxDepth is a path longer than Options.MaxDepth; the error names the path.
	ErrMaxDepth = errors.New("check: maximum depth exceeded")
	// ErrUnknownDefinition is a resource or subject type the schema does not define.
	ErrUnknownDefinition = errors.New("check: unknown definition")
	// ErrUnknownRelation is a permission or relation the definition does not have.
	ErrUnknownRelation = errors.New("check: unknown relation or permission")
	// ErrInvalidRequest is a malformed request (empty ids, a wildcard subject, ...).
	ErrInvalidRequest = errors.New("check: invalid request")
	// ErrNoSchema is a check before any schema was written.
	ErrNoSchema = errors.New("check: no schema has been written")
	// ErrCaveat is a caveat that fails to compile or to evaluate (a parameter of the wrong
	// type, say).
	ErrCaveat = errors.New("check: caveat evaluation failed")
)

// Checker evaluates checks. It holds no per-revision state and is safe for concurrent use;
// one Checker serves the whole process.
type Checker struct {
	maxDepth    int
	concurrency int
	caveats     *caveatCache
}

// New returns a Checker.
func New(opts Options) *Checker {
	c := &Checker{maxDepth: opts.MaxDepth, concurrency: opts.Concurrency, caveats: newCaveatCache()}
	if c.maxDepth <= 0 {
		c.maxDepth = DefaultMaxDepth
	}
	if c.maxDepth > MaxMaxDepth {
		c.maxDepth = MaxMaxDepth
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultConcurrency
	}
	return c
}

// Check answers one request at the reader's revision, with the schema in force there.
func (c *Checker) Check(ctx context.Context, r *store.Reader, req Request) (Result, error) {
	results := c.CheckBulk(ctx, r, []Request{req})
	return results[0].Result, results[0].Err
}

// BulkResult is the answer to one item of CheckBulk.
type BulkResult struct {
	Result Result
	Err    error
}

// CheckBulk answers many requests at one revision, sharing sub-problems between them: a
// field mask (`view_email`, `edit_cost`, ...) or a list page costs little more than one
// check. An error in one item does not fail the others.
func (c *Checker) CheckBulk(ctx context.Context, r *store.Reader, reqs []Request) []BulkResult {
	return c.checkBulk(ctx, r, reqs)
}
