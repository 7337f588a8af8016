package raftnode

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kengen/kengen/store"
)

// The log entry encoding. Every raft log entry kengen writes is one Command, encoded as
//
//	byte 0      the encoding version, commandVersion (1)
//	bytes 1..   a JSON object, wireCommand:
//	            {"kind": "schema" | "batch" | "member",
//	             "at": leader's clock when proposing, Unix nanoseconds,
//	             "schema": schema text (kind schema),
//	             "batch": wireBatch (kind batch),
//	             "member": {"id", "grpc_addr"} (kind member)}
//
// wireBatch mirrors store.Batch field by field with stable JSON names, so that renaming a Go
// field never changes what is in a log. A new field is added with omitempty and ignored by
// older readers only if it is optional; anything else bumps commandVersion, and a node refuses
// (ErrUnknownCommand) an entry of a version it does not know rather than misapply it.
const commandVersion byte = 1

// Kind says what a Command carries.
type Kind string

const (
	// KindSchema replaces the schema.
	KindSchema Kind = "schema"
	// KindBatch applies one store.Batch.
	KindBatch Kind = "batch"
	// KindMember records a node's gRPC address, so that followers can forward writes to
	// whichever node leads. It advances the revision without changing relationships.
	KindMember Kind = "member"
)

// Command is the payload of one raft log entry.
type Command struct {
	Kind Kind
	// At is the time of the write (expirations and caveats are evaluated at it). The node
	// that proposes the command sets it when it is zero, so every node applies the same one.
	At     time.Time
	Schema string
	Batch  *store.Batch
	Member Member
}

// Member is a node's identity and gRPC address, as a KindMember command records it.
type Member struct {
	ID       string `json:"id"`
	GRPCAddr string `json:"grpc_addr"`
}

type wireCommand struct {
	Kind   Kind       `json:"kind"`
	At     int64      `json:"at"`
	Schema string     `json:"schema,omitempty"`
	Batch  *wireBatch `json:"batch,omitempty"`
	Member *Member    `json:"member,omitempty"`
}

type wireBatch struct {
	Preconditions         []wirePrecondition `json:"preconditions,omitempty"`
	Updates               []wireUpdate       `json:"updates,omitempty"`
	DeleteFilter          *wireFilter        `json:"delete_filter,omitempty"`
	DeleteLimit           int                `json:"delete_limit,omitempty"`
	AllowPartialDeletions bool               `json:"allow_partial_deletions,omitempty"`
}

type wirePrecondition struct {
	Op     int        `json:"op"`
	Filter wireFilter `json:"filter"`
}

type wireFilter struct {
	ResourceType     string             `json:"resource_type,omitempty"`
	ResourceID       string             `json:"resource_id,omitempty"`
	ResourceIDPrefix string             `json:"resource_id_prefix,omitempty"`
	Relation         string             `json:"relation,omitempty"`
	Subject          *wireSubjectFilter `json:"subject,omitempty"`
}

type wireSubjectFilter struct {
	Type        string `json:"type"`
	ID          string `json:"id,omitempty"`
	Relation    string `json:"relation,omitempty"`
	RelationSet bool   `json:"relation_set,omitempty"`
}

type wireUpdate struct {
	Op              int            `json:"op"`
	ResourceType    string         `json:"resource_type"`
	ResourceID      string         `json:"resource_id"`
	Relation        string         `json:"relation"`
	SubjectType     string         `json:"subject_type"`
	SubjectID       string         `json:"subject_id"`
	SubjectRelation string         `json:"subject_relation,omitempty"`
	Caveat          string         `json:"caveat,omitempty"`
	CaveatContext   map[string]any `json:"caveat_context,omitempty"`
	// Expiration is Unix nanoseconds; 0 is never.
	Expiration int64 `json:"expiration,omitempty"`
}

// Encode returns the command's log entry bytes.
func (c *Command) Encode() ([]byte, error) {
	w := wireCommand{Kind: c.Kind, At: c.At.UnixNano()}
	switch c.Kind {
	case KindSchema:
		w.Schema = c.Schema
	case KindBatch:
		if c.Batch == nil {
			return nil, fmt.Errorf("%w: a batch command without a batch", ErrUnknownCommand)
		}
		w.Batch = toWireBatch(c.Batch)
	case KindMember:
		m := c.Member
		w.Member = &m
	default:
		return nil, fmt.Errorf("%w: kind %q", ErrUnknownCommand, c.Kind)
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("raftnode: encoding a %s command: %w", c.Kind, err)
	}
	return append([]byte{commandVersion}, b...), nil
}

// DecodeCommand parses a log entry Encode wrote.
func DecodeCommand(data []byte) (*Command, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrUnknownCommand)
	}
	if data[0] != commandVersion {
		return nil, fmt.Errorf("%w: encoding version %d, this build reads %d", ErrUnknownCommand, data[0], commandVersion)
	}
	var w wireCommand
	if err := json.Unmarshal(data[1:], &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownCommand, err)
	}
	c := &Command{Kind: w.Kind, At: time.Unix(0, w.At).UTC(), Schema: w.Schema}
	switch w.Kind {
	case KindSchema:
	case KindBatch:
		if w.Batch == nil {
			return nil, fmt.Errorf("%w: a batch entry without a batch", ErrUnknownCommand)
		}
		c.Batch = fromWireBatch(w.Batch)
	case KindMember:
		if w.Member == nil {
			return nil, fmt.Errorf("%w: a member entry without a member", ErrUnknownCommand)
		}
		c.Member = *w.Member
	default:
		return nil, fmt.Errorf("%w: kind %q", ErrUnknownCommand, w.Kind)
	}
	return c, nil
}

func toWireBatch(b *store.Batch) *wireBatch {
	w := &wireBatch{DeleteLimit: b.DeleteLimit, AllowPartialDeletions: b.AllowPartialDeletions}
	for _, p := range b.Preconditions {
		w.Preconditions = append(w.Preconditions, wirePrecondition{Op: int(p.Op), Filter: *toWireFilter(&p.Filter)})
	}
	for _, u := range b.Updates {
		r := &u.Relationship
		wu := wireUpdate{Op: int(u.Op), ResourceType: r.ResourceType, ResourceID: r.ResourceID, Relation: r.Relation,
			SubjectType: r.SubjectType, SubjectID: r.SubjectID, SubjectRelation: r.SubjectRelation,
			Caveat: r.Caveat, CaveatContext: r.CaveatContext}
		if !r.Expiration.IsZero() {
			wu.Expiration = r.Expiration.UnixNano()
		}
		w.Updates = append(w.Updates, wu)
	}
	if b.DeleteFilter != nil {
		w.DeleteFilter = toWireFilter(b.DeleteFilter)
	}
	return w
}

func toWireFilter(f *store.Filter) *wireFilter {
	w := &wireFilter{ResourceType: f.ResourceType, ResourceID: f.ResourceID, ResourceIDPrefix: f.ResourceIDPrefix, Relation: f.Relation}
	if s := f.Subject; s != nil {
		w.Subject = &wireSubjectFilter{Type: s.Type, ID: s.ID, Relation: s.Relation, RelationSet: s.RelationSet}
	}
	return w
}

func fromWireBatch(w *wireBatch) *store.Batch {
	b := &store.Batch{DeleteLimit: w.DeleteLimit, AllowPartialDeletions: w.AllowPartialDeletions}
	for _, p := range w.Preconditions {
		b.Preconditions = append(b.Preconditions, store.Precondition{Op: store.PreconditionOp(p.Op), Filter: *fromWireFilter(&p.Filter)})
	}
	for _, u := range w.Updates {
		r := store.Relationship{ResourceType: u.ResourceType, ResourceID: u.ResourceID, Relation: u.Relation,
			SubjectType: u.SubjectType, SubjectID: u.SubjectID, SubjectRelation: u.SubjectRelation,
			Caveat: u.Caveat, CaveatContext: u.CaveatContext}
		if u.Expiration != 0 {
			r.Expiration = time.Unix(0, u.Expiration).UTC()
		}
		b.Updates = append(b.Updates, store.Update{Op: store.Op(u.Op), Relationship: r})
	}
	if w.DeleteFilter != nil {
		b.DeleteFilter = fromWireFilter(w.DeleteFilter)
	}
	return b
}

func fromWireFilter(w *wireFilter) *store.Filter {
	f := &store.Filter{ResourceType: w.ResourceType, ResourceID: w.ResourceID, ResourceIDPrefix: w.ResourceIDPrefix, Relation: w.Relation}
	if s := w.Subject; s != nil {
		f.Subject = &store.SubjectFilter{Type: s.Type, ID: s.ID, Relation: s.Relation, RelationSet: s.RelationSet}
	}
	return f
}
