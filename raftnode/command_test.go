package raftnode

import (
	"errors"
	"io"
	"log/slog"
	"reflect"
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
	at := time.Date(2026, 11, 22, 9, 0, 0, 123, time.UTC)
	for _, c := range []*Command{
		{Kind: KindSchema, At: at, Schema: testSchema},
		{Kind: KindBatch, At: at, Batch: fullBatch()},
		{Kind: KindBatch, At: at, Batch: &store.Batch{DeleteFilter: &store.Filter{ResourceType: "doc", Subject: &store.SubjectFilter{Type: "user"}}, DeleteLimit: 10, AllowPartialDeletions: true}},
		{Kind: KindMember, At: at, Member: Member{ID: "n1", GRPCAddr: "10.0.0.1:50051"}},
	} {
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
	future := append([]byte{commandVersion + 1}, good[1:]...)
	for name, data := range map[string][]byte{
		"empty":          nil,
		"future version": future,
		"unknown kind":   append([]byte{commandVersion}, `{"kind":"drop_everything","at":0}`...),
		"batch-less":     append([]byte{commandVersion}, `{"kind":"batch","at":0}`...),
		"not json":       append([]byte{commandVersion}, `{`...),
	} {
		if _, err := DecodeCommand(data); !errors.Is(err, ErrUnknownCommand) {
			t.Errorf("%s: got %v, want ErrUnknownCommand", name, err)
		}
	}
	if _, err := (&Command{Kind: "other"}).Encode(); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("encoding an unknown kind: %v", err)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []*Command{{Kind: KindSchema, Schema: testSchema}, {Kind: KindBatch, Batch: fullBatch()}, {Kind: KindMember, Member: Member{ID: "a"}}} {
		data, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
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
	f := newFSM(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
	if r := apply(&raft.Log{Index: 8, Data: []byte{99}}); !errors.Is(r.err, ErrUnknownCommand) {
		t.Fatalf("unknown entry: %v", r.err)
	}
}
