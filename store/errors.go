package store

import "errors"

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
	// ErrRestoreBusy is a Restore that gave up waiting for open Readers to close.
	ErrRestoreBusy = errors.New("store: readers still open, restore postponed")
	// ErrDiskFull is a write refused because a filesystem the node writes to (the store's, or
	// the raft log's) has less free space than the minimum kept free (CheckFreeSpace). Nothing
	// of the write was done; writes succeed again once space is freed (RESOURCE_EXHAUSTED).
	ErrDiskFull = errors.New("store: disk full")
	// ErrCounterAlreadyRegistered is a relationship counter registered under a name that is
	// taken (FAILED_PRECONDITION, as SpiceDB answers).
	ErrCounterAlreadyRegistered = errors.New("store: relationship counter already registered")
	// ErrCounterNotRegistered is a count or an unregistration of a relationship counter name
	// that is not registered (FAILED_PRECONDITION).
	ErrCounterNotRegistered = errors.New("store: relationship counter not registered")
)

// ErrorKind gives a sentinel error a stable name: the name an error travels under between
// nodes (raftnode's cluster service) and the key api maps to a gRPC code. Each package that
// has sentinels lists them, in its errors.go, with ErrorKinds; raftnode.ErrorKinds is the
// registry built from them. Names never change once released: a node of another build must
// read them.
type ErrorKind struct {
	Name string
	Err  error
}

// ErrorKinds lists store's sentinels under their stable names, most specific first.
func ErrorKinds() []ErrorKind {
	return []ErrorKind{
		{Name: "invalid", Err: ErrInvalid},
		{Name: "already_exists", Err: ErrAlreadyExists},
		{Name: "precondition_failed", Err: ErrPreconditionFailed},
		{Name: "relation_limit", Err: ErrRelationLimit},
		{Name: "schema_strands", Err: ErrSchemaStrands},
		{Name: "no_schema", Err: ErrNoSchema},
		{Name: "revision_not_retained", Err: ErrRevisionNotRetained},
		{Name: "revision_not_applied", Err: ErrRevisionNotApplied},
		{Name: "stale_revision", Err: ErrStaleRevision},
		{Name: "corrupt", Err: ErrCorrupt},
		{Name: "incompatible_format", Err: ErrIncompatibleFormat},
		{Name: "delete_limit", Err: ErrDeleteLimit},
		{Name: "closed", Err: ErrClosed},
		{Name: "restore_busy", Err: ErrRestoreBusy},
		{Name: "disk_full", Err: ErrDiskFull},
		{Name: "counter_already_registered", Err: ErrCounterAlreadyRegistered},
		{Name: "counter_not_registered", Err: ErrCounterNotRegistered},
	}
}
