package raftnode

import (
	"errors"

	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// Sentinel errors, wrapped with the details and tested with errors.Is.
var (
	// ErrUnavailable is a write or read barrier that could not be completed now: no leader
	// took it within its deadline, leadership changed during the write, or the leader could
	// not be reached. Its message says whether the write may have been applied; a retry
	// (with the same preconditions) is safe for TOUCH and DELETE.
	ErrUnavailable = errors.New("raftnode: cluster unavailable, retry")
	// ErrNoLeader is a write or read barrier that was not proposed: no leader is known, the
	// leader's gRPC address is not known yet or it cannot be reached, or the node asked does
	// not lead. Apply and ReadIndex wait out these conditions until their deadline.
	ErrNoLeader = errors.New("raftnode: no leader to take the request")
	// ErrUnknownCommand is a log entry this build cannot decode.
	ErrUnknownCommand = errors.New("raftnode: unknown command")
	// ErrNewerCommand is a log entry written in an encoding newer than this build reads: the
	// node must be upgraded, and it stops rather than skip the entry and diverge.
	ErrNewerCommand = errors.New("raftnode: log entry from a newer kengen")
	// ErrSnapshot is a snapshot stream that is not kengen's.
	ErrSnapshot = errors.New("raftnode: bad snapshot")
	// ErrMembership is a membership change that raft refused.
	ErrMembership = errors.New("raftnode: membership change failed")
	// ErrNotReady is a node that should not take requests yet: it knows no leader, or it has
	// not applied every entry it knows committed.
	ErrNotReady = errors.New("raftnode: not ready")
	// ErrTLS is a raft TLS configuration that cannot be used: a missing or unreadable file, a
	// key that does not match its certificate, a CA file with no certificate.
	ErrTLS = errors.New("raftnode: bad raft TLS configuration")
	// ErrDamagedLog is a raft log that cannot be trusted: an entry fails its checksum, the log
	// has a gap, ends below the store's applied revision, or disagrees with the entry the
	// store applied. A node refuses to start on it (Open) until it is repaired
	// (RepairFromStore, RepairFromCluster).
	ErrDamagedLog = errors.New("raftnode: damaged raft log")
	// ErrNotSingleNode is RepairFromStore on a node whose last known configuration has other
	// members: made the only voter, it would go on as a second cluster beside the first.
	ErrNotSingleNode = errors.New("raftnode: the node is a member of a cluster of several")
	// ErrOnlyMember is RepairFromCluster on a node whose last known configuration lists no
	// other member: a cluster of one has no leader to fill an emptied log.
	ErrOnlyMember = errors.New("raftnode: the node is the only member of its cluster")
	// ErrTooLarge is a write whose command encodes larger than MaxCommandBytes: one raft
	// entry, forwarded between nodes in one gRPC message, cannot carry it. Nothing was
	// proposed; the write must be split.
	ErrTooLarge = errors.New("raftnode: write too large for one raft entry")
)

// kinds lists raftnode's sentinels under their stable names. The order is the order KindOf
// tries them: ErrUnavailable before ErrNoLeader, so that a request that waited for a leader
// until its deadline travels as unavailable (do not retry) rather than as no_leader (the
// forwarding node may retry: nothing was proposed).
func kinds() []store.ErrorKind {
	return []store.ErrorKind{
		{Name: "unavailable", Err: ErrUnavailable},
		{Name: "no_leader", Err: ErrNoLeader},
		{Name: "unknown_command", Err: ErrUnknownCommand},
		{Name: "newer_command", Err: ErrNewerCommand},
		{Name: "snapshot", Err: ErrSnapshot},
		{Name: "membership", Err: ErrMembership},
		{Name: "not_ready", Err: ErrNotReady},
		{Name: "tls", Err: ErrTLS},
		{Name: "damaged_log", Err: ErrDamagedLog},
		{Name: "not_single_node", Err: ErrNotSingleNode},
		{Name: "only_member", Err: ErrOnlyMember},
		{Name: "too_large", Err: ErrTooLarge},
	}
}

// ErrorKinds is the registry of error kinds every error of a write or a read barrier belongs
// to: raftnode's sentinels, then store's. The node-to-node wire (service.go) carries an error
// as its kind's name and message, and api maps the same names to gRPC codes, so an error
// keeps its code whichever node answers. A new sentinel is one line in its package's list.
func ErrorKinds() []store.ErrorKind {
	return append(kinds(), store.ErrorKinds()...)
}

// registry is ErrorKinds, built once.
var registry = ErrorKinds()

// KindOf returns the name of the first kind in ErrorKinds that err wraps; the schema's typed
// errors (a schema that does not compile) are store's "invalid". It returns "" for an error
// of no kind.
func KindOf(err error) string {
	var (
		slist schema.ErrorList
		serr  *schema.Error
	)
	if errors.As(err, &slist) || errors.As(err, &serr) {
		return "invalid"
	}
	for _, k := range registry {
		if errors.Is(err, k.Err) {
			return k.Name
		}
	}
	return ""
}

// sentinelOf is the sentinel of the kind called name, nil for a name this build does not know
// (an error from a newer node, which then counts as unclassified).
func sentinelOf(name string) error {
	for _, k := range registry {
		if k.Name == name {
			return k.Err
		}
	}
	return nil
}
