package raftnode

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/kengen/kengen/store"
)

// TestCounterCommandRoundTrip: a relationship counter's registration and unregistration
// travel as version 3 entries (so a node that cannot apply them stops instead of skipping
// them) and decode to the batch they came from; every other command stays version 2.
func TestCounterCommandRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	for _, cc := range []*store.CounterChange{
		{Name: "viewers", Filter: &store.Filter{ResourceType: "document", Relation: "viewer"}},
		{Name: "sato", Filter: &store.Filter{ResourceType: "deal", ResourceIDPrefix: "2026-", Subject: &store.SubjectFilter{Type: "user", ID: "sato", RelationSet: true}}},
		{Name: "viewers"},
	} {
		c := &Command{Kind: KindBatch, At: at, Batch: &store.Batch{Counter: cc}}
		data, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if data[0] != commandVersionCounter || data[1] != kindCounter {
			t.Errorf("%s: version %d kind %d, want %d %d", cc.Name, data[0], data[1], commandVersionCounter, kindCounter)
		}
		got, err := DecodeCommand(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip\n got %#v %#v\nwant %#v %#v", got, got.Batch.Counter, c, c.Batch.Counter)
		}
		// Cut short anywhere, or with a byte more, it is refused.
		for n := 1; n < len(data); n++ {
			if _, err := DecodeCommand(data[:n]); !errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("%s cut at %d of %d bytes: %v", cc.Name, n, len(data), err)
			}
		}
		if _, err := DecodeCommand(append(data, 0)); !errors.Is(err, ErrUnknownCommand) {
			t.Errorf("%s with a trailing byte: %v", cc.Name, err)
		}
	}
	// The counter kind is not valid in a version 2 entry.
	data, err := (&Command{Kind: KindBatch, At: at, Batch: &store.Batch{Counter: &store.CounterChange{Name: "x"}}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	data[0] = commandVersion
	if _, err := DecodeCommand(data); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("a counter in a version 2 entry: %v", err)
	}
	// A counter batch that carries anything else is refused before it reaches the log.
	bad := &Command{Kind: KindBatch, Batch: &store.Batch{Counter: &store.CounterChange{Name: "x"}, DeleteFilter: &store.Filter{ResourceType: "doc"}}}
	if _, err := bad.Encode(); err == nil {
		t.Error("a counter batch with a delete filter was encoded")
	}
	// Other batches stay version 2.
	plain, err := (&Command{Kind: KindBatch, At: at, Batch: &store.Batch{}}).Encode()
	if err != nil || plain[0] != commandVersion {
		t.Errorf("a plain batch: version %d, %v", plain[0], err)
	}
}
