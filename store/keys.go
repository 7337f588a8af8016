package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// The key space. Every key starts with a one-byte prefix:
//
//	m<name>                                                      metadata (format, applied, horizon)
//	f resType\0 resID\0 relation\0 subjRel\0 subjType\0 subjID\0 ^createdRev  forward index
//	r subjType\0 subjID\0 subjRel\0 resType\0 relation\0 resID\0 ^createdRev  reverse index
//	n resType\0 relation\0 subjType\0 subjRel\0 wildcard exp caveat          live counts
//	c rev                                                        change log (time + changes)
//	s rev                                                        schema history (source text)
//
// Revisions are 8-byte big-endian so that byte order is numeric order; ^createdRev is
// inverted (MaxUint64 - createdRev) so that the versions of one relationship sort newest first. A version of a
// relationship is visible at revision R when createdRev <= R < deletedRev; the value of both
// index entries starts with deletedRev (live = math.MaxUint64) followed by the payload.
const (
	prefixMeta    = 'm'
	prefixForward = 'f'
	prefixReverse = 'r'
	prefixCount   = 'n'
	prefixChange  = 'c'
	prefixSchema  = 's'
)

var (
	keyFormat  = []byte("mformat")
	keyApplied = []byte("mapplied")
	keyHorizon = []byte("mhorizon")
)

// formatVersion is written at creation; Open refuses any other.
const formatVersion = "kengen-store-1"

const live = Revision(math.MaxUint64)

func appendRev(b []byte, r Revision) []byte { return binary.BigEndian.AppendUint64(b, uint64(r)) }

func appendField(b []byte, s string) []byte { return append(append(b, s...), 0) }

// forwardPrefix is the forward key of rel without its createdRev.
func forwardPrefix(b []byte, rel *Relationship) []byte {
	b = append(b, prefixForward)
	b = appendField(b, rel.ResourceType)
	b = appendField(b, rel.ResourceID)
	b = appendField(b, rel.Relation)
	b = appendField(b, rel.SubjectRelation)
	b = appendField(b, rel.SubjectType)
	return appendField(b, rel.SubjectID)
}

// reversePrefix is the reverse key of rel without its createdRev.
func reversePrefix(b []byte, rel *Relationship) []byte {
	b = append(b, prefixReverse)
	b = appendField(b, rel.SubjectType)
	b = appendField(b, rel.SubjectID)
	b = appendField(b, rel.SubjectRelation)
	b = appendField(b, rel.ResourceType)
	b = appendField(b, rel.Relation)
	return appendField(b, rel.ResourceID)
}

func revKey(prefix byte, r Revision) []byte { return appendRev([]byte{prefix}, r) }

// countKey is the key of the live count of rel's shape, the unit the stranding check works on.
func countKey(rel *Relationship) []byte {
	b := []byte{prefixCount}
	b = appendField(b, rel.ResourceType)
	b = appendField(b, rel.Relation)
	b = appendField(b, rel.SubjectType)
	b = appendField(b, rel.SubjectRelation)
	b = append(b, boolByte(rel.SubjectID == Wildcard), boolByte(!rel.Expiration.IsZero()))
	return append(b, rel.Caveat...)
}

// shape is a decoded count key.
type shape struct {
	resType, relation, subjType, subjRel, caveat string
	wildcard, expiring                           bool
}

func decodeCountKey(k []byte) (shape, error) {
	fields, rest, err := splitFields(k[1:], 4)
	if err != nil || len(rest) < 2 {
		return shape{}, fmt.Errorf("%w: malformed count key %q", ErrCorrupt, k)
	}
	return shape{
		resType: fields[0], relation: fields[1], subjType: fields[2], subjRel: fields[3],
		wildcard: rest[0] == 1, expiring: rest[1] == 1, caveat: string(rest[2:]),
	}, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// upperBound returns the smallest key greater than every key with the given prefix.
func upperBound(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // prefix is all 0xff: no upper bound
}

// splitFields splits n \0-terminated fields off the front of b.
func splitFields(b []byte, n int) ([]string, []byte, error) {
	out := make([]string, n)
	for i := range n {
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			return nil, nil, fmt.Errorf("%w: malformed key", ErrCorrupt)
		}
		out[i] = string(b[:j])
		b = b[j+1:]
	}
	return out, b, nil
}

// keyRev returns the revision at the end of a change log or schema key.
func keyRev(k []byte) Revision { return Revision(binary.BigEndian.Uint64(k[len(k)-8:])) }

// appendCreated appends the createdRev suffix of an index key. It is stored inverted
// (MaxUint64 - rev) so that the versions of a relationship sort newest first: the live
// version and the version visible at a revision are both found with one SeekGE.
func appendCreated(b []byte, r Revision) []byte {
	return binary.BigEndian.AppendUint64(b, math.MaxUint64-uint64(r))
}

// createdRev returns the createdRev at the end of an index key.
func createdRev(k []byte) Revision {
	return Revision(math.MaxUint64 - binary.BigEndian.Uint64(k[len(k)-8:]))
}

// decodeForwardKey fills the identity fields of rel from a forward key.
func decodeForwardKey(k []byte, rel *Relationship) error {
	if len(k) < 9 {
		return fmt.Errorf("%w: malformed forward key %q", ErrCorrupt, k)
	}
	var d fieldDecoder
	d.b = k[1 : len(k)-8]
	rel.ResourceType, rel.ResourceID, rel.Relation = d.name(), d.id(), d.name()
	rel.SubjectRelation, rel.SubjectType, rel.SubjectID = d.name(), d.name(), d.id()
	return d.err
}

// decodeReverseKey fills the identity fields of rel from a reverse key.
func decodeReverseKey(k []byte, rel *Relationship) error {
	if len(k) < 9 {
		return fmt.Errorf("%w: malformed reverse key %q", ErrCorrupt, k)
	}
	var d fieldDecoder
	d.b = k[1 : len(k)-8]
	rel.SubjectType, rel.SubjectID, rel.SubjectRelation = d.name(), d.id(), d.name()
	rel.ResourceType, rel.Relation, rel.ResourceID = d.name(), d.name(), d.id()
	return d.err
}

// fieldDecoder takes \0-terminated fields off the front of b, recording the first error.
type fieldDecoder struct {
	b   []byte
	err error
}

func (d *fieldDecoder) next() []byte {
	j := bytes.IndexByte(d.b, 0)
	if j < 0 {
		if d.err == nil {
			d.err = fmt.Errorf("%w: malformed key", ErrCorrupt)
		}
		return nil
	}
	f := d.b[:j]
	d.b = d.b[j+1:]
	return f
}

// id is an object id: new memory each time.
func (d *fieldDecoder) id() string { return string(d.next()) }

// name is a type or relation name: one of few, so shared (names.go).
func (d *fieldDecoder) name() string { return names.intern(d.next()) }

// Payload flags.
const (
	flagExpiration = 1 << iota
	flagCaveat
	flagContext
)

// appendPayload encodes the caveat, context and expiration of rel:
// flags byte, [expiration: unix seconds 8B + nanoseconds 4B], [uvarint len + caveat], [uvarint len + JSON context].
func appendPayload(b []byte, rel *Relationship) ([]byte, error) {
	var flags byte
	if !rel.Expiration.IsZero() {
		flags |= flagExpiration
	}
	if rel.Caveat != "" {
		flags |= flagCaveat
	}
	var ctx []byte
	if len(rel.CaveatContext) > 0 {
		var err error
		if ctx, err = json.Marshal(rel.CaveatContext); err != nil {
			return nil, fmt.Errorf("%w: caveat context of %s: %w", ErrInvalid, relText(rel), err)
		}
		flags |= flagContext
	}
	b = append(b, flags)
	if flags&flagExpiration != 0 {
		b = appendTime(b, rel.Expiration)
	}
	if flags&flagCaveat != 0 {
		b = binary.AppendUvarint(b, uint64(len(rel.Caveat)))
		b = append(b, rel.Caveat...)
	}
	if flags&flagContext != 0 {
		b = binary.AppendUvarint(b, uint64(len(ctx)))
		b = append(b, ctx...)
	}
	return b, nil
}

// decodePayload fills the caveat, context and expiration of rel and returns the rest of b.
func decodePayload(b []byte, rel *Relationship) ([]byte, error) {
	bad := func() ([]byte, error) { return nil, fmt.Errorf("%w: malformed relationship value", ErrCorrupt) }
	if len(b) < 1 {
		return bad()
	}
	flags := b[0]
	b = b[1:]
	if flags&flagExpiration != 0 {
		if len(b) < timeLen {
			return bad()
		}
		rel.Expiration = decodeTime(b).UTC()
		b = b[timeLen:]
	}
	if flags&flagCaveat != 0 {
		s, rest, ok := readBytes(b)
		if !ok {
			return bad()
		}
		rel.Caveat, b = string(s), rest
	}
	if flags&flagContext != 0 {
		s, rest, ok := readBytes(b)
		if !ok {
			return bad()
		}
		if err := json.Unmarshal(s, &rel.CaveatContext); err != nil {
			return bad()
		}
		b = rest
	}
	return b, nil
}

func readBytes(b []byte) ([]byte, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// indexValue is the value of both index entries of a version.
func indexValue(deleted Revision, rel *Relationship) ([]byte, error) {
	return appendPayload(appendRev(make([]byte, 0, 16), deleted), rel)
}

// valueDeleted returns the deletedRev of an index value.
func valueDeleted(v []byte) Revision { return Revision(binary.BigEndian.Uint64(v)) }

// valueExpiration returns the expiration of an index value without decoding the rest.
func valueExpiration(v []byte) (time.Time, bool) {
	if v[8]&flagExpiration == 0 {
		return time.Time{}, false
	}
	return decodeTime(v[9:]), true
}

// timeLen is the size of an encoded time: Unix seconds and nanoseconds, so that any year a
// relationship may name (not only those before 2262, as Unix nanoseconds would) survives.
const timeLen = 12

func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func decodeTime(b []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint32(b[8:12])))
}

// Change log entries.
const (
	changeWrite    byte = 1 // a batch of relationship updates
	changeSchema   byte = 2 // a schema write
	changeRejected byte = 3 // an entry refused by Apply or WriteSchema: the revision advanced, nothing changed
)

// appendRelationship encodes the identity and payload of rel (for the change log).
func appendRelationship(b []byte, rel *Relationship) ([]byte, error) {
	for _, s := range [...]string{rel.ResourceType, rel.ResourceID, rel.Relation, rel.SubjectType, rel.SubjectID, rel.SubjectRelation} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return appendPayload(b, rel)
}

func decodeRelationship(b []byte, rel *Relationship) ([]byte, error) {
	var f [6]string
	for i := range f {
		s, rest, ok := readBytes(b)
		if !ok {
			return nil, fmt.Errorf("%w: malformed change log entry", ErrCorrupt)
		}
		f[i], b = string(s), rest
	}
	rel.ResourceType, rel.ResourceID, rel.Relation = f[0], f[1], f[2]
	rel.SubjectType, rel.SubjectID, rel.SubjectRelation = f[3], f[4], f[5]
	return decodePayload(b, rel)
}

// changeEntry is one revision of the change log.
type changeEntry struct {
	at      time.Time
	kind    byte
	updates []Update
}

func encodeChange(e *changeEntry) ([]byte, error) {
	b := binary.BigEndian.AppendUint64(nil, uint64(e.at.UnixNano()))
	b = append(b, e.kind)
	b = binary.AppendUvarint(b, uint64(len(e.updates)))
	for i := range e.updates {
		b = append(b, byte(e.updates[i].Op))
		var err error
		if b, err = appendRelationship(b, &e.updates[i].Relationship); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// decodeChangeTime decodes only the time of a change log value.
func decodeChangeTime(v []byte) (time.Time, error) {
	if len(v) < 9 {
		return time.Time{}, fmt.Errorf("%w: malformed change log entry", ErrCorrupt)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), nil
}

func decodeChange(v []byte) (*changeEntry, error) {
	at, err := decodeChangeTime(v)
	if err != nil {
		return nil, err
	}
	e := &changeEntry{at: at, kind: v[8]}
	b := v[9:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: malformed change log entry", ErrCorrupt)
	}
	b = b[k:]
	e.updates = make([]Update, n)
	for i := range e.updates {
		if len(b) < 1 {
			return nil, fmt.Errorf("%w: malformed change log entry", ErrCorrupt)
		}
		e.updates[i].Op = Op(b[0])
		if b, err = decodeRelationship(b[1:], &e.updates[i].Relationship); err != nil {
			return nil, err
		}
	}
	return e, nil
}
