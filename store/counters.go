package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Relationship counters (SpiceDB's ExperimentalRegisterRelationshipCounter and
// ExperimentalCountRelationships): a named filter whose count of matching relationships the
// store keeps at every revision, so that reading it costs one seek. Each version of a
// counter is one key,
//
//	q name\0 ^rev                                                counter version
//
// ^rev inverted like the relationship versions' (the newest first), the value a flag byte
// (1 registered, 0 unregistered), the count at rev as 8 bytes big-endian, and for a
// registered counter its filter as JSON. The version in force at revision R is the first key
// at or after `q name\0 ^R`. A batch writes a new version of every counter whose count it
// changes, in the same Pebble batch as the relationships, so a count is exact at every
// revision:
//
//   - registering (a Batch with Counter) counts the relationships visible at the batch's
//     revision and time;
//   - a version created counts +1 and a version ended -1 if it was visible at the batch's
//     time (an expired one stopped counting when it expired);
//   - every revision, whatever wrote it (a batch, a refused batch, a schema), takes -1 for
//     each live version matching a counter whose expiration falls after the previous
//     revision's time and at or before its own: that is where it stops being visible, even if
//     its collection (expiry.go) comes later.
//
// Garbage collection keeps, of each counter, the versions a retained revision can read.
const prefixCounter = 'q'

// maxCounterName bounds a counter's name.
const maxCounterName = 128

// CounterChange registers a relationship counter under Name, counting the relationships
// Filter matches, or with a nil Filter unregisters it. A Batch with a CounterChange carries
// nothing else.
type CounterChange struct {
	Name   string
	Filter *Filter
}

// counterState is one counter's version in force at a revision.
type counterState struct {
	name       string
	registered bool
	count      int64
	filter     Filter
}

func counterPrefix(name string) []byte { return appendField([]byte{prefixCounter}, name) }

func counterKey(name string, rev Revision) []byte {
	return binary.BigEndian.AppendUint64(counterPrefix(name), math.MaxUint64-uint64(rev))
}

func encodeCounter(c *counterState) ([]byte, error) {
	v := []byte{0}
	if c.registered {
		v[0] = 1
	}
	v = binary.BigEndian.AppendUint64(v, uint64(c.count))
	if !c.registered {
		return v, nil
	}
	f, err := json.Marshal(wireCounterFilter(c.filter))
	if err != nil {
		return nil, fmt.Errorf("store: encoding counter %q: %w", c.name, err)
	}
	return append(v, f...), nil
}

func decodeCounter(name string, v []byte) (counterState, error) {
	c := counterState{name: name}
	if len(v) < 9 || v[0] > 1 {
		return c, fmt.Errorf("%w: malformed version of relationship counter %q", ErrCorrupt, name)
	}
	c.registered = v[0] == 1
	c.count = int64(binary.BigEndian.Uint64(v[1:9]))
	if c.registered {
		var w counterFilterJSON
		if err := json.Unmarshal(v[9:], &w); err != nil {
			return c, fmt.Errorf("%w: filter of relationship counter %q: %w", ErrCorrupt, name, err)
		}
		c.filter = w.filter()
	}
	return c, nil
}

// counterFilterJSON is a Filter as a counter version stores it.
type counterFilterJSON struct {
	ResourceType     string `json:"t,omitempty"`
	ResourceID       string `json:"i,omitempty"`
	ResourceIDPrefix string `json:"p,omitempty"`
	Relation         string `json:"r,omitempty"`
	Subject          *struct {
		Type        string `json:"t"`
		ID          string `json:"i,omitempty"`
		Relation    string `json:"r,omitempty"`
		RelationSet bool   `json:"s,omitempty"`
	} `json:"s,omitempty"`
}

func wireCounterFilter(f Filter) counterFilterJSON {
	w := counterFilterJSON{ResourceType: f.ResourceType, ResourceID: f.ResourceID, ResourceIDPrefix: f.ResourceIDPrefix, Relation: f.Relation}
	if s := f.Subject; s != nil {
		w.Subject = &struct {
			Type        string `json:"t"`
			ID          string `json:"i,omitempty"`
			Relation    string `json:"r,omitempty"`
			RelationSet bool   `json:"s,omitempty"`
		}{s.Type, s.ID, s.Relation, s.RelationSet}
	}
	return w
}

func (w counterFilterJSON) filter() Filter {
	f := Filter{ResourceType: w.ResourceType, ResourceID: w.ResourceID, ResourceIDPrefix: w.ResourceIDPrefix, Relation: w.Relation}
	if s := w.Subject; s != nil {
		f.Subject = &SubjectFilter{Type: s.Type, ID: s.ID, Relation: s.Relation, RelationSet: s.RelationSet}
	}
	return f
}

// counterAt is the version of counter name in force at rev; ok is false when the counter was
// never written at or before rev.
func counterAt(src pebble.Reader, name string, rev Revision) (counterState, bool, error) {
	p := counterPrefix(name)
	it, err := src.NewIter(&pebble.IterOptions{LowerBound: counterKey(name, rev), UpperBound: upperBound(p)})
	if err != nil {
		return counterState{}, false, err
	}
	defer it.Close()
	if !it.First() {
		return counterState{}, false, it.Error()
	}
	c, err := decodeCounter(name, it.Value())
	return c, err == nil, err
}

// countersAt lists the counters registered at rev, in name order.
func countersAt(src pebble.Reader, rev Revision) ([]counterState, error) {
	it, err := src.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCounter}, UpperBound: []byte{prefixCounter + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []counterState
	for ok := it.First(); ok; {
		k := it.Key()
		end := bytes.IndexByte(k[1:], 0)
		if end < 0 {
			return nil, fmt.Errorf("%w: malformed relationship counter key %q", ErrCorrupt, k)
		}
		name := string(k[1 : 1+end])
		if ok = it.SeekGE(counterKey(name, rev)); ok && bytes.HasPrefix(it.Key(), counterPrefix(name)) {
			c, err := decodeCounter(name, it.Value())
			if err != nil {
				return nil, err
			}
			if c.registered {
				out = append(out, c)
			}
		}
		ok = it.SeekGE(upperBound(counterPrefix(name)))
	}
	return out, it.Error()
}

// loadCounters reads the counters registered before the writer's batch, once per batch.
func (w *writer) loadCounters() error {
	if w.countersLoaded {
		return nil
	}
	cs, err := countersAt(w.s.db, w.s.Revision())
	if err != nil {
		return err
	}
	w.counters, w.countersLoaded = cs, true
	return nil
}

// countRel adds d to every counter registered before the batch whose filter matches rel, if
// rel is visible at the batch's time.
func (w *writer) countRel(rel *Relationship, d int64) {
	if len(w.counters) == 0 || !rel.Expiration.IsZero() && !rel.Expiration.After(w.at) {
		return
	}
	for i := range w.counters {
		if w.counters[i].filter.matches(rel) {
			if w.counterDeltas == nil {
				w.counterDeltas = make(map[string]int64)
			}
			w.counterDeltas[w.counters[i].name] += d
		}
	}
}

// changeCounter registers or unregisters a counter; the batch carries nothing else.
func (w *writer) changeCounter(prev *view, b *Batch) error {
	c := b.Counter
	if len(b.Updates) > 0 || len(b.Preconditions) > 0 || b.DeleteFilter != nil {
		return fmt.Errorf("%w: a batch that registers or unregisters a relationship counter carries nothing else", ErrInvalid)
	}
	if err := validateCounterName(c.Name); err != nil {
		return err
	}
	cur, _, err := counterAt(w.s.db, c.Name, w.s.Revision())
	if err != nil {
		return err
	}
	if c.Filter == nil {
		if !cur.registered {
			return fmt.Errorf("%w: no counter is registered under the name %q", ErrCounterNotRegistered, c.Name)
		}
		w.counterWrites = append(w.counterWrites, counterState{name: c.Name})
		return nil
	}
	if cur.registered {
		return fmt.Errorf("%w: the name %q already counts %s; unregister it first or choose another name", ErrCounterAlreadyRegistered, c.Name, filterText(&cur.filter))
	}
	if err := validateFilter(c.Filter, "counter"); err != nil {
		return err
	}
	sch, _, _ := w.s.Schema()
	ns := sch.Namespace(c.Filter.ResourceType)
	switch {
	case ns == nil:
		return fmt.Errorf("%w: counter filter: resource type %q is not defined in the schema", ErrInvalid, c.Filter.ResourceType)
	case c.Filter.Relation != "" && ns.Relation(c.Filter.Relation) == nil:
		return fmt.Errorf("%w: counter filter: %s has no relation %q", ErrInvalid, c.Filter.ResourceType, c.Filter.Relation)
	case c.Filter.Subject != nil && sch.Namespace(c.Filter.Subject.Type) == nil:
		return fmt.Errorf("%w: counter filter: subject type %q is not defined in the schema", ErrInvalid, c.Filter.Subject.Type)
	}
	var n int64
	if err := prev.query(c.Filter, nil, 0, func(*Relationship) bool { n++; return true }); err != nil {
		return err
	}
	w.counterWrites = append(w.counterWrites, counterState{name: c.Name, registered: true, count: n, filter: *c.Filter})
	return nil
}

func validateCounterName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: a relationship counter needs a name", ErrInvalid)
	case len(name) > maxCounterName:
		return fmt.Errorf("%w: relationship counter name of %d bytes; at most %d", ErrInvalid, len(name), maxCounterName)
	case bytes.IndexByte([]byte(name), 0) >= 0:
		return fmt.Errorf("%w: relationship counter name %q contains a NUL byte", ErrInvalid, name)
	}
	return nil
}

// writeCounters adds to the writer's batch the new versions of the counters it changed:
// its own relationship changes, the expirations up to its time, and a registration.
func (w *writer) writeCounters() error {
	if err := w.loadCounters(); err != nil {
		return err
	}
	return w.s.advanceCounters(w.wb, w.rev, w.at, w.counters, w.counterDeltas, w.counterWrites)
}

// advanceCounters writes revision rev's counter versions into wb: each of counters (those
// registered before rev) changed by deltas or by the expirations after the previous
// revision's time up to at, and the registrations in writes. Every path that writes a
// revision calls it, so that no expiration is missed.
func (s *Store) advanceCounters(wb *pebble.Batch, rev Revision, at time.Time, counters []counterState, deltas map[string]int64, writes []counterState) error {
	if len(counters) > 0 {
		prevAt, err := s.revisionTime(s.Revision())
		if err != nil {
			return err
		}
		if at.After(prevAt) {
			lower := upperBound(appendExpiryTime([]byte{prefixExpiry}, prevAt))
			err := scanRange(s.db, lower, expiredBound(at), func(k, _ []byte) (bool, error) {
				var rel Relationship
				if len(k) < 1+expiryTimeLen+9 {
					return false, fmt.Errorf("%w: malformed expiration index key %q", ErrCorrupt, k)
				}
				if err := decodeForwardKey(k[1+expiryTimeLen:], &rel); err != nil {
					return false, err
				}
				for i := range counters {
					if counters[i].filter.matches(&rel) {
						if deltas == nil {
							deltas = make(map[string]int64)
						}
						deltas[counters[i].name]--
					}
				}
				return true, nil
			})
			if err != nil {
				return err
			}
		}
	}
	for i := range counters {
		c := counters[i]
		d := deltas[c.name]
		if d == 0 {
			continue
		}
		if c.count += d; c.count < 0 {
			return fmt.Errorf("%w: relationship counter %q would count %d at revision %d", ErrCorrupt, c.name, c.count, rev)
		}
		if err := putCounter(wb, rev, &c); err != nil {
			return err
		}
	}
	for i := range writes {
		if err := putCounter(wb, rev, &writes[i]); err != nil {
			return err
		}
	}
	return nil
}

func putCounter(wb *pebble.Batch, rev Revision, c *counterState) error {
	v, err := encodeCounter(c)
	if err != nil {
		return err
	}
	return wb.Set(counterKey(c.name, rev), v, nil)
}

// advanceCountersAlone is advanceCounters for a revision that changes no relationship of
// its own (a refused batch, a schema): only expirations move the counts.
func (s *Store) advanceCountersAlone(wb *pebble.Batch, rev Revision, at time.Time) error {
	cs, err := countersAt(s.db, s.Revision())
	if err != nil || len(cs) == 0 {
		return err
	}
	return s.advanceCounters(wb, rev, at, cs, nil, nil)
}

// CountRelationships returns how many relationships the counter registered under name counts
// at the reader's revision: those its filter matches that are visible there. It fails with
// ErrCounterNotRegistered when no counter of that name is registered at the revision.
func (r *Reader) CountRelationships(name string) (int64, error) {
	if err := r.enter(); err != nil {
		return 0, err
	}
	defer r.leave()
	if err := validateCounterName(name); err != nil {
		return 0, err
	}
	c, _, err := counterAt(r.v.src, name, r.v.rev)
	if err != nil {
		return 0, err
	}
	if !c.registered {
		return 0, fmt.Errorf("%w: no counter is registered under the name %q at revision %d", ErrCounterNotRegistered, name, r.v.rev)
	}
	return c.count, nil
}

// retireCounters deletes the counter versions no revision at or after horizon reads: of each
// counter, those older than its version in force at horizon, and that one too if it says
// unregistered.
func (s *Store) retireCounters(horizon Revision) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCounter}, UpperBound: []byte{prefixCounter + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	wb := s.db.NewBatch()
	defer wb.Close()
	removed := 0
	for ok := it.First(); ok; {
		k := it.Key()
		end := bytes.IndexByte(k[1:], 0)
		if end < 0 {
			return removed, fmt.Errorf("%w: malformed relationship counter key %q", ErrCorrupt, k)
		}
		name := string(k[1 : 1+end])
		upper := upperBound(counterPrefix(name))
		if it.SeekGE(counterKey(name, horizon)) && bytes.Compare(it.Key(), upper) < 0 {
			from := bytes.Clone(it.Key())
			if c, err := decodeCounter(name, it.Value()); err != nil {
				return removed, err
			} else if c.registered {
				from = upperBound(from) // keep the version in force at horizon
			}
			for ok := it.SeekGE(from); ok && bytes.Compare(it.Key(), upper) < 0; ok = it.Next() {
				if err := wb.Delete(it.Key(), nil); err != nil {
					return removed, err
				}
				removed++
			}
		}
		ok = it.SeekGE(upper)
	}
	if err := it.Error(); err != nil {
		return removed, err
	}
	if removed == 0 {
		return 0, nil
	}
	if err := wb.Commit(s.writeOpts); err != nil {
		return 0, fmt.Errorf("store: retiring relationship counter versions: %w", err)
	}
	return removed, nil
}
