package pgsync

import "errors"

// Sentinel errors. Callers test them with errors.Is; the errors returned wrap them with the
// details (which line, which row, which rule).
var (
	// ErrMapping is a mapping file that does not parse or does not fit the database.
	ErrMapping = errors.New("pgsync: invalid mapping")
	// ErrRefused is a change the Authzed endpoint refused (a relation limit, a subject type
	// the schema does not allow): the stream stops rather than diverge.
	ErrRefused = errors.New("pgsync: change refused by the endpoint")
	// ErrState is a state file that cannot be read or does not belong to this slot.
	ErrState = errors.New("pgsync: bad state file")
	// ErrSlotInUse is a replication slot another connection is streaming from.
	ErrSlotInUse = errors.New("pgsync: replication slot in use")
	// ErrDiverged is a --check that found relationships differing from the rows.
	ErrDiverged = errors.New("pgsync: relationships differ from the database")
)
