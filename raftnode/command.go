package raftnode

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kengen/kengen/store"
)

// The log entry encoding. Every raft log entry kengen writes is one Command: a version byte,
// then the command in that version's encoding. This build writes version 2 and reads 1 and 2;
// a node refuses (ErrUnknownCommand) an entry of a version it does not know rather than
// misapply it, and every node refuses it alike.
//
// Version 2 (commandVersion), compact binary, written since the JSON of version 1 cost a fifth
// of the apply time of large batches. Integers are varints: uvarint (encoding/binary
// unsigned) for lengths and counts, varint (zig-zag signed) for everything else; a string is
// a uvarint length and its bytes. After the version byte:
//
//	kind        1 byte: 1 schema, 2 batch, 3 member
//	at          varint, the leader's clock when proposing, Unix nanoseconds
//	then by kind:
//	schema      string: the schema text
//	member      string id, string gRPC address
//	batch       flags 1 byte: bit 0 a delete filter follows, bit 1 AllowPartialDeletions
//	            varint DeleteLimit
//	            uvarint n, then n preconditions: varint op, filter
//	            uvarint n, then n updates: varint op; strings resource type, resource id,
//	              relation, subject type, subject id, subject relation, caveat; string caveat
//	              context (JSON object of the context; empty when there is none); varint
//	              expiration as varint Unix seconds and varint nanoseconds (0, 0 is never)
//	            filter, if flag bit 0
//	filter      flags 1 byte: bit 0 a subject filter follows, bit 1 its RelationSet;
//	            strings resource type, resource id, resource id prefix, relation;
//	            if bit 0: strings subject type, subject id, subject relation
//
// An entry must end exactly where its command does. Numbers keep their Go values (an unknown
// operation travels as it is, and the store refuses it on every node alike); a caveat context
// is JSON so that every node decodes its values to the same Go types (float64, string, bool,
// []any, map[string]any, nil), as version 1 did.
//
// Version 3 (commandVersionCounter) is version 2 with one more kind, written only for the
// commands that need it, so that a node of a build that lacks them stops (ErrNewerCommand)
// rather than skip an entry every upgraded node applies; every other command stays version 2:
//
//	kind        4 counter: a batch that registers or unregisters a relationship counter
//	counter     string name; flags 1 byte: bit 0 register (a filter follows); filter
//
// Version 1 (commandVersionJSON), still decoded for logs written before version 2: a JSON
// object, wireCommand:
//
//	{"kind": "schema" | "batch" | "member",
//	 "at": leader's clock when proposing, Unix nanoseconds,
//	 "schema": schema text (kind schema),
//	 "batch": wireBatch (kind batch),
//	 "member": {"id", "grpc_addr"} (kind member)}
//
// wireBatch mirrors store.Batch field by field with stable JSON names.
const (
	commandVersion        byte = 2
	commandVersionJSON    byte = 1
	commandVersionCounter byte = 3
)

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

// Encode returns the command's log entry bytes (version 2).
func (c *Command) Encode() ([]byte, error) {
	var e encoder
	e.b = append(make([]byte, 0, c.sizeHint()), commandVersion)
	switch c.Kind {
	case KindSchema:
		e.b = append(e.b, kindSchema)
		e.varint(c.At.UnixNano())
		e.str(c.Schema)
	case KindBatch:
		if c.Batch == nil {
			return nil, fmt.Errorf("%w: a batch command without a batch", ErrUnknownCommand)
		}
		if c.Batch.Counter != nil {
			if err := e.counter(c.At, c.Batch); err != nil {
				return nil, fmt.Errorf("raftnode: encoding a %s command: %w", c.Kind, err)
			}
			return e.b, nil
		}
		e.b = append(e.b, kindBatch)
		e.varint(c.At.UnixNano())
		if err := e.batch(c.Batch); err != nil {
			return nil, fmt.Errorf("raftnode: encoding a %s command: %w", c.Kind, err)
		}
	case KindMember:
		e.b = append(e.b, kindMember)
		e.varint(c.At.UnixNano())
		e.str(c.Member.ID)
		e.str(c.Member.GRPCAddr)
	default:
		return nil, fmt.Errorf("%w: kind %q", ErrUnknownCommand, c.Kind)
	}
	return e.b, nil
}

// DecodeCommand parses a log entry Encode wrote, in this version or an earlier one.
func DecodeCommand(data []byte) (*Command, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrUnknownCommand)
	}
	switch data[0] {
	case commandVersion, commandVersionCounter:
		c, err := decodeBinary(data[1:], data[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnknownCommand, err)
		}
		return c, nil
	case commandVersionJSON:
		return decodeJSON(data[1:])
	default:
		if data[0] > commandVersionCounter {
			return nil, fmt.Errorf("%w: encoding version %d, this build reads %d to %d", ErrNewerCommand, data[0], commandVersionJSON, commandVersionCounter)
		}
		return nil, fmt.Errorf("%w: encoding version %d, this build reads %d to %d", ErrUnknownCommand, data[0], commandVersionJSON, commandVersionCounter)
	}
}

// decodeJSON decodes a version 1 entry.
func decodeJSON(data []byte) (*Command, error) {
	var w wireCommand
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknownCommand, err)
	}
	c := &Command{Kind: w.Kind, At: time.Unix(0, w.At).UTC()}
	switch w.Kind {
	case KindSchema:
		c.Schema = w.Schema
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
			Caveat: u.Caveat}
		if len(u.CaveatContext) > 0 {
			r.CaveatContext = u.CaveatContext
		}
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
