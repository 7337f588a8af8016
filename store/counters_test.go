package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// queryCount is the ground truth a counter must agree with: the relationships a Reader at rev
// sees that f matches.
func queryCount(t *testing.T, s *Store, rev Revision, f Filter) int64 {
	t.Helper()
	r, err := s.Reader(rev)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int64
	if err := r.Query(f, nil, 0, func(*Relationship) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

func counted(t *testing.T, s *Store, rev Revision, name string) (int64, error) {
	t.Helper()
	r, err := s.Reader(rev)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.CountRelationships(name)
}

func register(name string, f Filter) *Batch {
	return &Batch{Counter: &CounterChange{Name: name, Filter: &f}}
}

// TestCounterErrors: SpiceDB's refusals — a name taken, a name not registered, a batch that
// mixes a registration with writes, a filter without a resource type or of an undefined one —
// each refused at its own revision with nothing written.
func TestCounterErrors(t *testing.T) {
	s := openExpiry(t, vfs.NewMem())
	f := Filter{ResourceType: "document", Relation: "viewer"}
	mustApply(t, s, 2, t0, register("viewers", f))
	cases := []struct {
		b    *Batch
		want error
		text string
	}{
		{register("viewers", Filter{ResourceType: "document"}), ErrCounterAlreadyRegistered, `"viewers" already counts document#viewer`},
		{&Batch{Counter: &CounterChange{Name: "nobody"}}, ErrCounterNotRegistered, `"nobody"`},
		{&Batch{Counter: &CounterChange{Name: "x", Filter: &f}, Updates: creates(t, "document:1#viewer@user:a").Updates}, ErrInvalid, "carries nothing else"},
		{register("x", Filter{Relation: "viewer"}), ErrInvalid, "resource type"},
		{register("x", Filter{ResourceType: "invoice"}), ErrInvalid, `"invoice" is not defined`},
		{register("", f), ErrInvalid, "needs a name"},
	}
	rev := Revision(3)
	for _, c := range cases {
		_, err := s.Apply(Entry{Index: rev}, t0, c.b)
		if !errors.Is(err, c.want) || !contains(err, c.text) {
			t.Errorf("revision %d: %v, want %v with %q", rev, err, c.want, c.text)
		}
		rev++
	}
	if _, err := counted(t, s, 0, "x"); !errors.Is(err, ErrCounterNotRegistered) {
		t.Errorf("a refused registration counts: %v", err)
	}
	if _, err := counted(t, s, 1, "viewers"); !errors.Is(err, ErrCounterNotRegistered) {
		t.Errorf("count before the registration's revision: %v, want not registered", err)
	}
	mustApply(t, s, rev, t0, &Batch{Counter: &CounterChange{Name: "viewers"}})
	if _, err := counted(t, s, rev, "viewers"); !errors.Is(err, ErrCounterNotRegistered) {
		t.Errorf("count after unregistering: %v", err)
	}
	if n, err := counted(t, s, rev-1, "viewers"); err != nil || n != 0 {
		t.Errorf("count at the revision before unregistering: %d, %v; want 0", n, err)
	}
	// The name is free again.
	mustApply(t, s, rev+1, t0, register("viewers", Filter{ResourceType: "document"}))
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// TestCountersAgreeWithReads: under a random history of creates, touches, deletes, deletes by
// filter, relationships that expire (collected late, expireLimit at a time), refused batches,
// schema writes, registrations and unregistrations, every counter's count at every revision
// (read again at the end, at every past revision) equals what a Reader there sees through
// its filter; and the counts survive a reopen.
func TestCountersAgreeWithReads(t *testing.T) {
	fs := vfs.NewMem()
	s := openExpiry(t, fs)
	rng := rand.New(rand.NewPCG(7, 13))
	filters := map[string]Filter{
		"viewers":  {ResourceType: "document", Relation: "viewer"},
		"doc1":     {ResourceType: "document", ResourceID: "1"},
		"prefix1":  {ResourceType: "document", ResourceIDPrefix: "1"},
		"user_a":   {ResourceType: "document", Subject: &SubjectFilter{Type: "user", ID: "a"}},
		"helpers":  {ResourceType: "document", Relation: "helper"},
		"everyone": {ResourceType: "document"},
	}
	names := []string{"viewers", "doc1", "prefix1", "user_a", "helpers", "everyone"}
	registered := map[string]bool{}
	type point struct {
		rev  Revision
		name string
		want int64
	}
	var history []point
	at := t0
	rev := Revision(2)
	randomRel := func() string {
		relation := []string{"viewer", "viewer", "helper"}[rng.IntN(3)]
		r := fmt.Sprintf("document:%d#%s@user:%c", rng.IntN(14), relation, 'a'+rng.IntN(4))
		if relation == "helper" || rng.IntN(2) == 0 {
			r += "[expiration:" + at.Add(time.Duration(1+rng.IntN(60))*time.Second).Format(time.RFC3339Nano) + "]"
		}
		return r
	}
	for step := 0; step < 400; step++ {
		at = at.Add(time.Duration(rng.IntN(20)) * time.Second)
		var b *Batch
		switch k := rng.IntN(20); {
		case k < 2:
			name := names[rng.IntN(len(names))]
			if registered[name] && rng.IntN(2) == 0 {
				b = &Batch{Counter: &CounterChange{Name: name}}
			} else {
				b = register(name, filters[name])
			}
		case k < 3:
			if err := s.WriteSchema(Entry{Index: rev}, at, expirySchema); err != nil {
				t.Fatal(err)
			}
		case k < 4:
			b = &Batch{DeleteFilter: &Filter{ResourceType: "document", ResourceIDPrefix: fmt.Sprint(rng.IntN(10))}}
		case k < 5:
			b = &Batch{} // a clock entry
		default:
			b = &Batch{}
			seen := map[string]bool{}
			for range 1 + rng.IntN(6) {
				r := rel(t, randomRel())
				key := r.ResourceID + r.Relation + r.SubjectID
				if seen[key] {
					continue
				}
				seen[key] = true
				op := []Op{OpTouch, OpTouch, OpCreate, OpDelete}[rng.IntN(4)]
				b.Updates = append(b.Updates, Update{Op: op, Relationship: r})
			}
		}
		if b != nil {
			// Refusals (a create of a present one, a helper limit) are part of the history.
			_, err := s.Apply(Entry{Index: rev}, at, b)
			if err == nil && b.Counter != nil {
				registered[b.Counter.Name] = b.Counter.Filter != nil
			}
		}
		for _, name := range names {
			n, err := counted(t, s, rev, name)
			if !registered[name] {
				if !errors.Is(err, ErrCounterNotRegistered) {
					t.Fatalf("revision %d: counter %s, not registered, answers %d, %v", rev, name, n, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("revision %d: counter %s: %v", rev, name, err)
			}
			if want := queryCount(t, s, rev, filters[name]); n != want {
				t.Fatalf("revision %d (step %d): counter %s counts %d, a read sees %d", rev, step, name, n, want)
			}
			history = append(history, point{rev, name, n})
		}
		rev++
	}
	if len(history) < 300 {
		t.Fatalf("only %d counts checked: the history registered too little", len(history))
	}
	check := func(s *Store) {
		t.Helper()
		for _, p := range history {
			if n, err := counted(t, s, p.rev, p.name); err != nil || n != p.want {
				t.Fatalf("revision %d read later: counter %s counts %d (%v), it counted %d then", p.rev, p.name, n, err, p.want)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openExpiry(t, fs)
	check(s)
}

// TestCounterVersionsCollected: garbage collection removes the counter versions no retained
// revision reads, keeps the one in force at the horizon, and drops an unregistered counter.
func TestCounterVersionsCollected(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true, GCInterval: -1, Retention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WriteSchema(Entry{Index: 1}, t0, expirySchema); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 2, t0, register("viewers", Filter{ResourceType: "document", Relation: "viewer"}))
	mustApply(t, s, 3, t0, register("gone", Filter{ResourceType: "document"}))
	for i := range 20 {
		mustApply(t, s, Revision(4+i), t0.Add(time.Duration(i)*time.Second), creates(t, fmt.Sprintf("document:%d#viewer@user:a", i)))
	}
	mustApply(t, s, 24, t0.Add(20*time.Second), &Batch{Counter: &CounterChange{Name: "gone"}})
	versions := func() int {
		n := 0
		if err := scanPrefix(s.db, []byte{prefixCounter}, func(_, _ []byte) (bool, error) { n++; return true, nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := versions(); got != 1+1+20+20+1 {
		t.Fatalf("%d counter versions before collection", got)
	}
	mustApply(t, s, 25, t0.Add(2*time.Minute), &Batch{})
	if _, err := s.CollectGarbage(t0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := versions(); got != 1 {
		t.Errorf("%d counter versions after collecting to the latest revision, want 1 (viewers' latest)", got)
	}
	if n, err := counted(t, s, 0, "viewers"); err != nil || n != 20 {
		t.Errorf("viewers counts %d, %v after collection; want 20", n, err)
	}
}
