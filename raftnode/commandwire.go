package raftnode

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kengen/kengen/store"
)

// The version 2 binary encoding of commands; command.go documents the format.

// The kind byte of a version 2 entry.
const (
	kindSchema byte = 1
	kindBatch  byte = 2
	kindMember byte = 3
	// kindCounter is a batch with a store.CounterChange, in version 3 entries only.
	kindCounter byte = 4
)

const counterRegister = 1 << 0

const (
	batchHasDeleteFilter   = 1 << 0
	batchAllowPartial      = 1 << 1
	filterHasSubject       = 1 << 0
	filterSubjectRelSet    = 1 << 1
	knownBatchFlags        = batchHasDeleteFilter | batchAllowPartial
	knownFilterFlags       = filterHasSubject | filterSubjectRelSet
	minUpdateBytes         = 11 // op + 8 string lengths + expiration seconds and nanoseconds, one byte each
	minPreconditionBytes   = 6  // op + flags + 4 string lengths
	errTrailingBytesFormat = "%d bytes after the end of the command"
)

var errTruncated = errors.New("the entry ends inside the command")

// sizeHint estimates the encoded size, so that Encode allocates once.
func (c *Command) sizeHint() int {
	n := 16 + len(c.Schema) + len(c.Member.ID) + len(c.Member.GRPCAddr)
	if b := c.Batch; b != nil {
		n += 16 + 48*len(b.Preconditions)
		for i := range b.Updates {
			r := &b.Updates[i].Relationship
			n += 20 + len(r.ResourceType) + len(r.ResourceID) + len(r.Relation) + len(r.SubjectType) +
				len(r.SubjectID) + len(r.SubjectRelation) + len(r.Caveat)
		}
	}
	return n
}

type encoder struct{ b []byte }

func (e *encoder) varint(v int64) { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) batch(b *store.Batch) error {
	var flags byte
	if b.DeleteFilter != nil {
		flags |= batchHasDeleteFilter
	}
	if b.AllowPartialDeletions {
		flags |= batchAllowPartial
	}
	e.b = append(e.b, flags)
	e.varint(int64(b.DeleteLimit))
	e.b = binary.AppendUvarint(e.b, uint64(len(b.Preconditions)))
	for i := range b.Preconditions {
		p := &b.Preconditions[i]
		e.varint(int64(p.Op))
		e.filter(&p.Filter)
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(b.Updates)))
	for i := range b.Updates {
		u := &b.Updates[i]
		r := &u.Relationship
		e.varint(int64(u.Op))
		e.str(r.ResourceType)
		e.str(r.ResourceID)
		e.str(r.Relation)
		e.str(r.SubjectType)
		e.str(r.SubjectID)
		e.str(r.SubjectRelation)
		e.str(r.Caveat)
		if len(r.CaveatContext) == 0 {
			e.str("")
		} else {
			ctx, err := json.Marshal(r.CaveatContext)
			if err != nil {
				return fmt.Errorf("caveat context of update %d: %w", i, err)
			}
			e.b = binary.AppendUvarint(e.b, uint64(len(ctx)))
			e.b = append(e.b, ctx...)
		}
		// Seconds and nanoseconds, not Unix nanoseconds, which end in 2262 (SpiceDB's tests
		// expire relationships in 2323); (0, 0) is never.
		var secs, nanos int64
		if !r.Expiration.IsZero() {
			secs, nanos = r.Expiration.Unix(), int64(r.Expiration.Nanosecond())
		}
		e.varint(secs)
		e.varint(nanos)
	}
	if b.DeleteFilter != nil {
		e.filter(b.DeleteFilter)
	}
	return nil
}

// counter encodes a counter batch as a version 3 entry, replacing what e holds. The batch
// carries nothing else (the store refuses one that does, on every node alike, so the
// encoding refuses it first).
func (e *encoder) counter(at time.Time, b *store.Batch) error {
	if len(b.Updates) > 0 || len(b.Preconditions) > 0 || b.DeleteFilter != nil || b.DeleteLimit != 0 || b.AllowPartialDeletions {
		return errors.New("a batch that registers or unregisters a relationship counter carries nothing else")
	}
	e.b = append(e.b[:0], commandVersionCounter, kindCounter)
	e.varint(at.UnixNano())
	e.str(b.Counter.Name)
	if b.Counter.Filter == nil {
		e.b = append(e.b, 0)
		return nil
	}
	e.b = append(e.b, counterRegister)
	e.filter(b.Counter.Filter)
	return nil
}

func (e *encoder) filter(f *store.Filter) {
	var flags byte
	if f.Subject != nil {
		flags |= filterHasSubject
		if f.Subject.RelationSet {
			flags |= filterSubjectRelSet
		}
	}
	e.b = append(e.b, flags)
	e.str(f.ResourceType)
	e.str(f.ResourceID)
	e.str(f.ResourceIDPrefix)
	e.str(f.Relation)
	if s := f.Subject; s != nil {
		e.str(s.Type)
		e.str(s.ID)
		e.str(s.Relation)
	}
}

// decoder reads a version 2 entry. Strings are slices of one copy of the entry, so decoding a
// batch of a thousand updates allocates a handful of times, not thousands.
type decoder struct {
	s   string
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.s = ""
}

func (d *decoder) byte() byte {
	if len(d.s) == 0 {
		d.fail(errTruncated)
		return 0
	}
	b := d.s[0]
	d.s = d.s[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	for i, shift := 0, uint(0); i < len(d.s) && i < binary.MaxVarintLen64; i, shift = i+1, shift+7 {
		c := d.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			d.s = d.s[i+1:]
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
	}
	d.fail(errors.New("a malformed varint"))
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// int reads a varint that must fit an int.
func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail(fmt.Errorf("integer %d out of range", v))
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.s)) {
		d.fail(errTruncated)
		return ""
	}
	s := d.s[:n]
	d.s = d.s[n:]
	return s
}

// count reads a count of items of at least min bytes each, refusing one the rest of the entry
// cannot hold (so a corrupt count never allocates a huge slice).
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.s)/min) {
		d.fail(fmt.Errorf("a count of %d items in %d bytes", n, len(d.s)))
		return 0
	}
	return int(n)
}

func decodeBinary(data []byte, version byte) (*Command, error) {
	d := &decoder{s: string(data)}
	kind := d.byte()
	c := &Command{At: time.Unix(0, d.varint()).UTC()}
	switch kind {
	case kindSchema:
		c.Kind = KindSchema
		c.Schema = d.str()
	case kindBatch:
		c.Kind = KindBatch
		c.Batch = d.batch()
	case kindMember:
		c.Kind = KindMember
		c.Member = Member{ID: d.str(), GRPCAddr: d.str()}
	case kindCounter:
		if version < commandVersionCounter {
			return nil, fmt.Errorf("kind byte %d in a version %d entry", kind, version)
		}
		c.Kind = KindBatch
		c.Batch = &store.Batch{Counter: d.counterChange()}
	default:
		if d.err == nil {
			return nil, fmt.Errorf("kind byte %d", kind)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.s) > 0 {
		return nil, fmt.Errorf(errTrailingBytesFormat, len(d.s))
	}
	return c, nil
}

func (d *decoder) batch() *store.Batch {
	flags := d.byte()
	if flags&^knownBatchFlags != 0 {
		d.fail(fmt.Errorf("unknown batch flags %#x", flags))
	}
	b := &store.Batch{DeleteLimit: d.int(), AllowPartialDeletions: flags&batchAllowPartial != 0}
	if n := d.count(minPreconditionBytes); n > 0 {
		b.Preconditions = make([]store.Precondition, n)
		for i := range b.Preconditions {
			p := &b.Preconditions[i]
			p.Op = store.PreconditionOp(d.int())
			d.filter(&p.Filter)
		}
	}
	if n := d.count(minUpdateBytes); n > 0 {
		b.Updates = make([]store.Update, n)
		for i := range b.Updates {
			u := &b.Updates[i]
			r := &u.Relationship
			u.Op = store.Op(d.int())
			r.ResourceType = d.str()
			r.ResourceID = d.str()
			r.Relation = d.str()
			r.SubjectType = d.str()
			r.SubjectID = d.str()
			r.SubjectRelation = d.str()
			r.Caveat = d.str()
			if ctx := d.str(); ctx != "" {
				if err := json.Unmarshal([]byte(ctx), &r.CaveatContext); err != nil {
					d.fail(fmt.Errorf("caveat context of update %d: %w", i, err))
				}
				if len(r.CaveatContext) == 0 {
					r.CaveatContext = nil
				}
			}
			if secs, nanos := d.varint(), d.varint(); secs != 0 || nanos != 0 {
				r.Expiration = time.Unix(secs, nanos).UTC()
			}
		}
	}
	if flags&batchHasDeleteFilter != 0 {
		b.DeleteFilter = &store.Filter{}
		d.filter(b.DeleteFilter)
	}
	return b
}

func (d *decoder) counterChange() *store.CounterChange {
	cc := &store.CounterChange{Name: d.str()}
	switch flags := d.byte(); flags {
	case 0:
	case counterRegister:
		cc.Filter = &store.Filter{}
		d.filter(cc.Filter)
	default:
		d.fail(fmt.Errorf("unknown counter flags %#x", flags))
	}
	return cc
}

func (d *decoder) filter(f *store.Filter) {
	flags := d.byte()
	if flags&^knownFilterFlags != 0 || flags == filterSubjectRelSet {
		d.fail(fmt.Errorf("unknown filter flags %#x", flags))
	}
	f.ResourceType = d.str()
	f.ResourceID = d.str()
	f.ResourceIDPrefix = d.str()
	f.Relation = d.str()
	if flags&filterHasSubject != 0 {
		f.Subject = &store.SubjectFilter{Type: d.str(), ID: d.str(), Relation: d.str(), RelationSet: flags&filterSubjectRelSet != 0}
	}
}
