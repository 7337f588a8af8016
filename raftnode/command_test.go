package raftnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kengen/kengen/store"
)

func fullBatch() *store.Batch {
	return &store.Batch{
		Preconditions: []store.Precondition{
			{Op: store.MustMatch, Filter: store.Filter{ResourceType: "doc", ResourceIDPrefix: "a", Relation: "viewer",
				Subject: &store.SubjectFilter{Type: "user", ID: "sato", Relation: "", RelationSet: true}}},
			{Op: store.MustNotMatch, Filter: store.Filter{ResourceType: "doc", ResourceID: "1"}},
		},
		Updates: []store.Update{
			{Op: store.OpTouch, Relationship: store.Relationship{ResourceType: "doc", ResourceID: "1", Relation: "viewer",
				SubjectType: "group", SubjectID: "eng", SubjectRelation: "member", Caveat: "ip",
				CaveatContext: map[string]any{"cidr": "10.0.0.0/8", "n": 3.5, "ok": true, "list": []any{"a", 1.0}, "nil": nil},
				Expiration:    time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)}},
			{Op: store.OpDelete, Relationship: store.Relationship{ResourceType: "doc", ResourceID: "2", Relation: "viewer", SubjectType: "user", SubjectID: "*"}},
		},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		data, err := c.Encode()
		if err != nil {
			t.Fatalf("%s: %v", c.Kind, err)
		}
		if data[0] != commandVersion {
			t.Errorf("%s: version byte %d", c.Kind, data[0])
		}
		got, err := DecodeCommand(data)
		if err != nil {
			t.Fatalf("%s: %v", c.Kind, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s: round trip\n got %#v\nwant %#v", c.Kind, got, c)
		}
	}
}

func TestDecodeRefusesUnknown(t *testing.T) {
	good, err := (&Command{Kind: KindSchema, Schema: "x"}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeCommand(append([]byte{commandVersionCounter + 1}, good[1:]...)); !errors.Is(err, ErrNewerCommand) {
		t.Errorf("future version: got %v, want ErrNewerCommand", err)
	}
	for name, data := range map[string][]byte{
		"empty":           nil,
		"v1 unknown kind": append([]byte{commandVersionJSON}, `{"kind":"drop_everything","at":0}`...),
		"v1 batch-less":   append([]byte{commandVersionJSON}, `{"kind":"batch","at":0}`...),
		"v1 not json":     append([]byte{commandVersionJSON}, `{`...),
		"unknown kind":    {commandVersion, 9, 0},
		"no kind":         {commandVersion},
		"truncated":       good[:len(good)-1],
		"trailing bytes":  append(append([]byte{}, good...), 0),
		"huge count":      {commandVersion, kindBatch, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad flags":       {commandVersion, kindBatch, 0, 0x80, 0, 0, 0},
		"bad context":     append([]byte{commandVersion, kindBatch, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 2}, "[]\x00"...),
	} {
		if _, err := DecodeCommand(data); !errors.Is(err, ErrUnknownCommand) {
			t.Errorf("%s: got %v, want ErrUnknownCommand", name, err)
		}
	}
	if _, err := (&Command{Kind: "other"}).Encode(); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("encoding an unknown kind: %v", err)
	}
}

// encodeJSON writes a version 1 entry, as builds before version 2 did.
func encodeJSON(t testing.TB, c *Command) []byte {
	w := wireCommand{Kind: c.Kind, At: c.At.UnixNano()}
	switch c.Kind {
	case KindSchema:
		w.Schema = c.Schema
	case KindBatch:
		w.Batch = toWireBatch(c.Batch)
	case KindMember:
		m := c.Member
		w.Member = &m
	}
	b, err := json.Marshal(&w)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{commandVersionJSON}, b...)
}

func sampleCommands() []*Command {
	at := time.Date(2026, 11, 22, 9, 0, 0, 123, time.UTC)
	return []*Command{
		{Kind: KindSchema, At: at, Schema: testSchema},
		{Kind: KindBatch, At: at, Batch: fullBatch()},
		{Kind: KindBatch, At: at, Batch: &store.Batch{DeleteFilter: &store.Filter{ResourceType: "doc", Subject: &store.SubjectFilter{Type: "user"}}, DeleteLimit: 10, AllowPartialDeletions: true}},
		{Kind: KindBatch, At: at, Batch: &store.Batch{DeleteFilter: &store.Filter{ResourceType: "doc", ResourceIDPrefix: "x",
			Subject: &store.SubjectFilter{Type: "group", ID: "g", Relation: "member", RelationSet: true}}, DeleteLimit: -3}},
		{Kind: KindBatch, At: at, Batch: &store.Batch{Updates: []store.Update{{Op: store.Op(-7), Relationship: store.Relationship{ResourceType: "ü"}}}}},
		{Kind: KindBatch, At: time.Unix(0, -5).UTC(), Batch: &store.Batch{}},
		{Kind: KindMember, At: at, Member: Member{ID: "n1", GRPCAddr: "10.0.0.1:50051"}},
	}
}

// Entries a build before version 2 wrote still decode to the same commands.
func TestDecodeVersion1(t *testing.T) {
	for _, c := range sampleCommands() {
		got, err := DecodeCommand(encodeJSON(t, c))
		if err != nil {
			t.Fatalf("%s: %v", c.Kind, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s: version 1\n got %#v\nwant %#v", c.Kind, got, c)
		}
	}
}

// The binary encoding is much smaller than the JSON for the common batch of plain CREATEs.
func TestEncodingSize(t *testing.T) {
	ups := make([]store.Update, 1000)
	for i := range ups {
		ups[i] = viewer(fmt.Sprint("b", i), "sato")
	}
	c := &Command{Kind: KindBatch, At: time.Now(), Batch: &store.Batch{Updates: ups}}
	bin, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if js := encodeJSON(t, c); 2*len(bin) > len(js) {
		t.Errorf("binary %d bytes, JSON %d: expected less than half", len(bin), len(js))
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		data, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(encodeJSON(f, c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			return
		}
		again, err := c.Encode()
		if err != nil {
			t.Fatalf("a decoded command does not encode: %v", err)
		}
		c2, err := DecodeCommand(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-encoding changed the command: %v\n%#v\n%#v", err, c, c2)
		}
	})
}

// The FSM applies an entry at its log index, skips an entry at or below the applied revision
// (a replay), and returns the store's own error for a refused entry.
func TestFSMIdempotentApply(t *testing.T) {
	st, err := store.Open("", store.Options{InMemory: true, NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFSM(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	entry := func(idx uint64, c *Command) *raft.Log {
		c.At = time.Unix(1_700_000_000, 0)
		data, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return &raft.Log{Index: idx, Type: raft.LogCommand, Data: data}
	}
	apply := func(l *raft.Log) applyResult {
		t.Helper()
		r, ok := f.Apply(l).(applyResult)
		if !ok {
			t.Fatalf("Apply returned %T", f.Apply(l))
		}
		return r
	}
	if r := apply(entry(3, &Command{Kind: KindSchema, Schema: testSchema})); r.err != nil {
		t.Fatal(r.err)
	}
	w := entry(5, &Command{Kind: KindBatch, Batch: &store.Batch{Updates: []store.Update{viewer("1", "sato")}}})
	if r := apply(w); r.err != nil || r.res.Revision != 5 {
		t.Fatalf("first apply: %+v", r)
	}
	// A replay of the same entry (OpCreate!) is skipped, not applied twice.
	if r := apply(w); r.err != nil {
		t.Fatalf("replay: %v", r.err)
	}
	if n := st.Stats().Relationships; n != 1 || st.Revision() != 5 {
		t.Fatalf("after a replay: %d relationships at %d", n, st.Revision())
	}
	// A CREATE of an existing relationship is refused by the store, and the refusal comes
	// back; the revision still advances so the entry is not applied again.
	dup := entry(6, &Command{Kind: KindBatch, Batch: &store.Batch{Updates: []store.Update{viewer("1", "sato")}}})
	if r := apply(dup); !errors.Is(r.err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate create: %v", r.err)
	}
	if st.Revision() != 6 {
		t.Fatalf("revision %d after a refused entry, want 6", st.Revision())
	}
	if r := apply(entry(7, &Command{Kind: KindMember, Member: Member{ID: "n9", GRPCAddr: "h:1"}})); r.err != nil || f.member("n9") != "h:1" {
		t.Fatalf("member entry: %v, %q", r.err, f.member("n9"))
	}
	if r := apply(&raft.Log{Index: 8, Data: []byte{0}}); !errors.Is(r.err, ErrUnknownCommand) {
		t.Fatalf("unknown entry: %v", r.err)
	}
	// An entry of a newer encoding stops the node instead of being skipped.
	func() {
		defer func() {
			if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "upgrade this node") {
				t.Errorf("a newer entry: recovered %v, want a panic asking for an upgrade", p)
			}
		}()
		f.Apply(&raft.Log{Index: 9, Data: []byte{99}})
	}()
}

// BenchmarkDecodeCommand decodes a batch of 1,000 CREATEs, as every node's FSM does for every
// entry, in each encoding.
//
//	go test ./raftnode -run '^$' -bench BenchmarkDecodeCommand
func BenchmarkDecodeCommand(b *testing.B) {
	ups := make([]store.Update, 1000)
	for i := range ups {
		ups[i] = viewer(fmt.Sprint("b", i), "sato")
	}
	c := &Command{Kind: KindBatch, At: time.Now(), Batch: &store.Batch{Updates: ups}}
	bin, err := c.Encode()
	if err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"v1-json": encodeJSON(b, c), "v2-binary": bin} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCommand(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An entry from a newer encoding is not a malformed one: the FSM must not skip it.
func TestNewerEncodingIsRecognised(t *testing.T) {
	_, err := DecodeCommand([]byte{commandVersionCounter + 1, 0, 0})
	if !errors.Is(err, ErrNewerCommand) {
		t.Fatalf("got %v, want ErrNewerCommand", err)
	}
	_, err = DecodeCommand([]byte{0})
	if errors.Is(err, ErrNewerCommand) || !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("version 0: got %v, want ErrUnknownCommand", err)
	}
}

// Expirations past 2262 (where Unix nanoseconds end) survive the log: SpiceDB's conformance
// data expires relationships in 2323.
func TestFarExpirationRoundTrip(t *testing.T) {
	far := time.Date(2323, 12, 1, 0, 0, 0, 7, time.UTC)
	c := &Command{Kind: KindBatch, At: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Batch: &store.Batch{Updates: []store.Update{
		{Op: store.OpTouch, Relationship: store.Relationship{ResourceType: "doc", ResourceID: "1", Relation: "viewer",
			SubjectType: "user", SubjectID: "tom", Expiration: far}},
	}}}
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(data)
	if err != nil {
		t.Fatal(err)
	}
	if exp := got.Batch.Updates[0].Relationship.Expiration; !exp.Equal(far) {
		t.Fatalf("expiration %v after the log, want %v", exp, far)
	}
}
