package store

import (
	"errors"
	"time"
)

// Revision is the position of an applied batch. Under Raft it is the log index of the entry
// that carried the batch; in-process it is whatever increasing number the caller hands to
// Apply.
type Revision uint64

// Relationship is one stored tuple: resource#relation@subject, with an optional caveat and
// expiration. A subject with SubjectRelation "" is a plain object (written `#...` in SpiceDB);
// SubjectID "*" is a wildcard (`user:*`).
type Relationship struct {
	ResourceType    string
	ResourceID      string
	Relation        string
	SubjectType     string
	SubjectID       string
	SubjectRelation string

	// Caveat names the caveat that conditions this relationship; "" for none.
	Caveat string
	// CaveatContext is the caveat context written with the relationship (JSON-compatible
	// values: string, float64, bool, nil, []any, map[string]any). Nil when empty.
	CaveatContext map[string]any
	// Expiration is when the relationship stops counting; the zero time for never.
	Expiration time.Time
}

// Wildcard is the subject id of a wildcard subject (`user:*`).
const Wildcard = "*"

// Op is a write operation on one relationship.
type Op int

const (
	// OpTouch creates the relationship or replaces its caveat and expiration.
	OpTouch Op = iota + 1
	// OpCreate creates the relationship and fails with ErrAlreadyExists if it is present.
	OpCreate
	// OpDelete removes the relationship; deleting an absent relationship is not an error.
	OpDelete
)

// Update is one operation of a write.
type Update struct {
	Op           Op
	Relationship Relationship
}

// SubjectFilter narrows a Filter to subjects of one type, optionally one id and one subject
// relation.
type SubjectFilter struct {
	Type string
	ID   string // "" matches any id
	// Relation matches the subject relation when RelationSet is true; Relation "" with
	// RelationSet true matches only plain object subjects (`#...`).
	Relation    string
	RelationSet bool
}

// Filter selects relationships, as the Authzed API's RelationshipFilter does. Every field but
// ResourceType may be empty, meaning "any". ResourceType may be empty only when ResourceID
// is empty too (a filter with neither is refused for deletes and preconditions, where
// it would match the whole store by accident).
type Filter struct {
	ResourceType string
	ResourceID   string
	// ResourceIDPrefix, when set, matches resource ids that start with it.
	ResourceIDPrefix string
	Relation         string
	Subject          *SubjectFilter
}

// PreconditionOp says whether a precondition's filter must or must not match.
type PreconditionOp int

const (
	// MustMatch fails the write unless at least one relationship matches the filter.
	MustMatch PreconditionOp = iota + 1
	// MustNotMatch fails the write if any relationship matches the filter.
	MustNotMatch
)

// Precondition guards a write: it is evaluated at the state just before the write, inside
// Apply, so every node reaches the same decision.
type Precondition struct {
	Op     PreconditionOp
	Filter Filter
}

// Sentinel errors. Callers test them with errors.Is; the errors returned wrap them with the
// details (which relationship, which filter, which limit).
var (
	// ErrInvalid is bad input: a malformed type, id or relation, an unknown type or relation,
	// a subject type the relation does not allow, a duplicate update in one batch.
	ErrInvalid = errors.New("store: invalid relationship")
	// ErrAlreadyExists is a CREATE of a relationship that is present.
	ErrAlreadyExists = errors.New("store: relationship already exists")
	// ErrPreconditionFailed is a precondition that did not hold.
	ErrPreconditionFailed = errors.New("store: precondition failed")
	// ErrRelationLimit is a write that would give one resource more subjects on a relation
	// than its `limit` allows.
	ErrRelationLimit = errors.New("store: relation limit exceeded")
	// ErrSchemaStrands is a schema change that would leave stored relationships that the new
	// schema no longer allows.
	ErrSchemaStrands = errors.New("store: schema change would strand relationships")
	// ErrNoSchema is a write of relationships before any schema was written.
	ErrNoSchema = errors.New("store: no schema has been written")
	// ErrRevisionNotRetained is a read at a revision older than the retention window keeps.
	ErrRevisionNotRetained = errors.New("store: revision no longer retained")
	// ErrRevisionNotApplied is a read at a revision this store has not applied yet.
	ErrRevisionNotApplied = errors.New("store: revision not applied yet")
	// ErrStaleRevision is an Apply at a revision at or below the applied one. Under Raft such
	// an entry is skipped on replay; the error says it was not applied again.
	ErrStaleRevision = errors.New("store: revision already applied")
	// ErrCorrupt is a data directory whose files fail their checks.
	ErrCorrupt = errors.New("store: data directory is corrupt")
	// ErrIncompatibleFormat is a data directory written by an incompatible format version.
	ErrIncompatibleFormat = errors.New("store: data directory has an incompatible format")
	// ErrDeleteLimit is a delete by filter that matched more relationships than its limit
	// while partial deletions were not allowed (FAILED_PRECONDITION).
	ErrDeleteLimit = errors.New("store: delete matches more relationships than its limit")
	// ErrClosed is any call on a closed store.
	ErrClosed = errors.New("store: closed")
	// ErrDiskFull is a write refused because a filesystem the node writes to (the store's, or
	// the raft log's) has less free space than the minimum kept free (CheckFreeSpace). Nothing
	// of the write was done; writes succeed again once space is freed (RESOURCE_EXHAUSTED).
	ErrDiskFull = errors.New("store: disk full")
)
