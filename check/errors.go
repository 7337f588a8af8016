package check

import (
	"errors"

	"github.com/kengen/kengen/store"
)

// Sentinel errors, wrapped with details and tested with errors.Is.
var (
	// ErrMaxDepth is a path longer than Options.MaxDepth, or an answer that a cycle in the
	// data through an intersection or exclusion decides (SpiceDB fails both at its depth
	// limit); the error names the path or the cycle.
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

// ErrorKinds lists check's sentinels under their stable names (store.ErrorKind), for api's
// one mapping to gRPC codes. No check error crosses the node-to-node wire: checks run where
// they are asked.
func ErrorKinds() []store.ErrorKind {
	return []store.ErrorKind{
		{Name: "max_depth", Err: ErrMaxDepth},
		{Name: "unknown_definition", Err: ErrUnknownDefinition},
		{Name: "unknown_relation", Err: ErrUnknownRelation},
		{Name: "invalid_request", Err: ErrInvalidRequest},
		{Name: "check_no_schema", Err: ErrNoSchema},
		{Name: "caveat", Err: ErrCaveat},
	}
}
