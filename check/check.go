// Package check answers permission questions over the relationships a store.Reader sees at
// one revision, by evaluating the compiled schema's userset rewrites (Zanzibar §2.3).
//
// This file is the front door: Checker, Request, Result, and the sentinel errors.
package check

import (
	"context"

	"github.com/kengen/kengen/store"
)

// Membership is the answer to one check.
type Membership int

const (
	// NoPermission is the answer when the subject is not in the permission's userset.
	NoPermission Membership = iota
	// HasPermission is the answer when the subject is in the userset.
	HasPermission
	// ConditionalPermission is the answer when it depends on caveat parameters the request
	// did not supply; Result.MissingParams names them.
	ConditionalPermission
)

func (m Membership) String() string {
	switch m {
	case HasPermission:
		return "has permission"
	case ConditionalPermission:
		return "conditional"
	case unresolved:
		return "unresolved (a cycle decides it)"
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
	// Concurrency bounds how many items of one bulk call (or candidates of one lookup) are
	// evaluated at once. Zero means DefaultConcurrency.
	Concurrency int
	// FanOut bounds how many goroutines one check may spread its independent branches over
	// (near the root, cancelling the rest on the first decisive answer). Zero means
	// DefaultFanOut; 1 evaluates each check on the caller's goroutine.
	FanOut int
	// Observe, when set, receives an Observation for every check evaluated (one per bulk
	// item). It is called on the evaluating goroutine and must be cheap and safe for
	// concurrent use; api/ turns it into metrics.
	Observe func(Observation)
	// NoIndex evaluates every recursion by walking, never from the store's Leopard index:
	// for tests and benchmarks that compare the two.
	NoIndex bool
	// CacheBytes is the memory budget of the sub-problem cache shared by requests at the
	// same revision (cache.go). Zero means DefaultCacheBytes; negative turns it off.
	CacheBytes int64
}

// DefaultCacheBytes is the default sub-problem cache budget.
const DefaultCacheBytes = 64 << 20

// DefaultMaxDepth is far above any real hierarchy; a cycle never reaches it because
// evaluation cuts cycles first.
const DefaultMaxDepth = 10_000

// MaxMaxDepth bounds MaxDepth so that evaluation stays within the Go stack.
const MaxMaxDepth = 100_000

// DefaultConcurrency is the default number of bulk items evaluated at once.
const DefaultConcurrency = 4

// DefaultFanOut is 1, no fan-out within a check: with the data in Pebble's block cache, a
// branch costs a few microseconds, and on a 2-core machine a forked goroutine (its start,
// its growing stack, its copied path) cost more than it saved — a CRM check took 250 µs
// with a fan-out of 4 against 167 µs without (docs/benchmarks.md). Raise it where branches
// wait on disk.
const DefaultFanOut = 1

// Checker evaluates checks. It holds no per-revision state and is safe for concurrent use;
// one Checker serves the whole process.
type Checker struct {
	maxDepth    int
	concurrency int
	fanOut      int
	observe     func(Observation)
	noIndex     bool
	cache       *subCache
	caveats     *caveatCache
	candidates  *candidateCache // LookupResources' recent reverse walks
}

// New returns a Checker.
func New(opts Options) *Checker {
	c := &Checker{maxDepth: opts.MaxDepth, concurrency: opts.Concurrency, fanOut: opts.FanOut, observe: opts.Observe, noIndex: opts.NoIndex, caveats: newCaveatCache(), candidates: newCandidateCache()}
	if c.maxDepth <= 0 {
		c.maxDepth = DefaultMaxDepth
	}
	if c.maxDepth > MaxMaxDepth {
		c.maxDepth = MaxMaxDepth
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultConcurrency
	}
	if c.fanOut <= 0 {
		c.fanOut = DefaultFanOut
	}
	switch {
	case opts.CacheBytes == 0:
		c.cache = newSubCache(DefaultCacheBytes)
	case opts.CacheBytes > 0:
		c.cache = newSubCache(opts.CacheBytes)
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
	return c.checkBulk(ctx, r, reqs, nil)
}

// SubjectsRequest asks for every subject that has a permission (or relation) on one resource.
type SubjectsRequest struct {
	ResourceType string
	ResourceID   string
	Permission   string
	// SubjectType is the type of the subjects wanted. Empty means every subject that a
	// relationship on the way names, of any type, usersets included: the membership set that
	// validation files' expected relations list.
	SubjectType string
	// SubjectRelation is "" for plain objects, or the relation of the usersets wanted
	// (`group#member`).
	SubjectRelation string
	// Context is the caveat context, as in Request.
	Context map[string]any
}

// FoundSubject is one subject a lookup found, with its membership: HasPermission or
// ConditionalPermission (with the missing caveat parameters).
type FoundSubject struct {
	Type, ID string
	// Relation is "" for a plain object, the subject relation of a userset otherwise.
	Relation      string
	Membership    Membership
	MissingParams []string
	// Excluded is, for a wildcard (ID "*"), the ids of its type it does not cover with its
	// own membership, sorted: `user:* - {user:fred}`. Such an id that still has a
	// conditional membership is found on its own as well.
	Excluded []string
}

// LookupSubjects returns every subject of req's kind that has the permission on the resource
// at the reader's revision, as Check would answer for each: sorted by (type, relation, id),
// with a wildcard result standing for the ids of its type that no relationship names.
func (c *Checker) LookupSubjects(ctx context.Context, r *store.Reader, req SubjectsRequest) ([]FoundSubject, error) {
	return c.lookupSubjects(ctx, r, req)
}

// ResourcesRequest asks for every resource of a type on which a subject has a permission.
type ResourcesRequest struct {
	ResourceType    string
	Permission      string
	SubjectType     string
	SubjectID       string
	SubjectRelation string
	Context         map[string]any
	// After, when set, resumes a listing: only ids after it are returned.
	After string
	// Limit, when positive, stops after that many resources.
	Limit int
}

// FoundResource is one resource a lookup found: HasPermission or ConditionalPermission.
type FoundResource struct {
	ID            string
	Membership    Membership
	MissingParams []string
}

// LookupResources returns every resource of req.ResourceType on which the subject has the
// permission at the reader's revision, sorted by id, exactly those for which Check answers
// HasPermission or ConditionalPermission. It walks the reverse index from the subject to the
// candidates and decides them with the check engine. Where Check refuses a candidate
// (ErrMaxDepth: a path past the limit, or a cycle that decides its answer), the lookup fails
// with that error; so does LookupSubjects.
func (c *Checker) LookupResources(ctx context.Context, r *store.Reader, req ResourcesRequest) ([]FoundResource, error) {
	return c.lookupResources(ctx, r, req)
}

// ExpandOperation is the kind of an ExpandNode.
type ExpandOperation int

const (
	// ExpandLeaf holds subjects: a relation's relationships.
	ExpandLeaf ExpandOperation = iota
	// ExpandUnion combines its children: any of them. Arrows expand to a union over the
	// tupleset's subjects (an intersection for `.all()`).
	ExpandUnion
	// ExpandIntersection combines its children: all of them.
	ExpandIntersection
	// ExpandExclusion is Children[0] minus the rest.
	ExpandExclusion
)

// ExpandNode is one node of a permission's userset tree (Zanzibar's Expand), on the object
// and relation it expands.
type ExpandNode struct {
	Operation                          ExpandOperation
	ResourceType, ResourceID, Relation string
	Children                           []*ExpandNode
	// Subjects are a leaf's subjects; a userset subject (`group:eng#member`) is not expanded
	// further.
	Subjects []ExpandSubject
}

// ExpandSubject is one subject of a leaf: an object, a wildcard (ID "*") or a userset.
type ExpandSubject struct {
	Type, ID, Relation string
	// Caveat names the relationship's caveat; "" for none.
	Caveat string
}

// Expand returns the userset tree of the permission (or relation) on the resource at the
// reader's revision: set operations, computed usersets and arrows followed, relations'
// subjects as leaves. A cycle in the data through unions only ends in an empty leaf; one
// through an intersection, an exclusion or an .all() arrow is ErrMaxDepth.
func (c *Checker) Expand(ctx context.Context, r *store.Reader, resourceType, resourceID, permission string) (*ExpandNode, error) {
	return c.expand(ctx, r, resourceType, resourceID, permission)
}
