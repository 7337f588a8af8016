package check_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kengen/kengen/bench/datagen"
	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// fixture is an in-memory store holding a schema and relationships.
type fixture struct {
	t  testing.TB
	st *store.Store
}

func newFixture(t testing.TB, schemaText string, rels ...string) *fixture {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st}
	if err := st.WriteSchema(store.Entry{Index: st.Revision() + 1}, time.Now(), schemaText); err != nil {
		t.Fatal(err)
	}
	var updates []store.Update
	for _, s := range rels {
		r, err := store.ParseRelationship(s)
		if err != nil {
			t.Fatal(err)
		}
		updates = append(updates, store.Update{Op: store.OpTouch, Relationship: r})
	}
	f.write(updates)
	return f
}

func (f *fixture) write(updates []store.Update) {
	f.t.Helper()
	for len(updates) > 0 {
		n := min(len(updates), 1000)
		if _, err := f.st.Apply(store.Entry{Index: f.st.Revision() + 1}, time.Now(), &store.Batch{Updates: updates[:n]}); err != nil {
			f.t.Fatal(err)
		}
		updates = updates[n:]
	}
}

func (f *fixture) writeTuples(gen func(emit func(datagen.Tuple))) {
	var updates []store.Update
	gen(func(t datagen.Tuple) {
		updates = append(updates, store.Update{Op: store.OpTouch, Relationship: store.Relationship{
			ResourceType: t.ResourceType, ResourceID: t.ResourceID, Relation: t.Relation,
			SubjectType: t.SubjectType, SubjectID: t.SubjectID, SubjectRelation: t.SubjectRelation,
		}})
	})
	f.write(updates)
}

func (f *fixture) reader() *store.Reader {
	f.t.Helper()
	r, err := f.st.Reader(0)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(r.Close)
	return r
}

// request parses `resource:id#permission@subject:id[#relation]`.
func request(t testing.TB, s string) check.Request {
	t.Helper()
	rel, err := store.ParseRelationship(s)
	if err != nil {
		t.Fatal(err)
	}
	return check.Request{
		ResourceType: rel.ResourceType, ResourceID: rel.ResourceID, Permission: rel.Relation,
		SubjectType: rel.SubjectType, SubjectID: rel.SubjectID, SubjectRelation: rel.SubjectRelation,
	}
}

func (f *fixture) check(c *check.Checker, s string) (check.Result, error) {
	f.t.Helper()
	return c.Check(context.Background(), f.reader(), request(f.t, s))
}

func (f *fixture) expect(c *check.Checker, s string, want check.Membership) {
	f.t.Helper()
	res, err := f.check(c, s)
	if err != nil {
		f.t.Fatalf("%s: %v", s, err)
	}
	if res.Membership != want {
		f.t.Errorf("%s: got %v, want %v", s, res.Membership, want)
	}
}

const docSchema = `
definition user {}
definition group {
	relation member: user | group#member
}
definition folder {
	relation parent: folder
	relation viewer: user | group#member
	permission view = viewer + parent->view
}
definition document {
	relation folder: folder
	relation owner: user
	relation viewer: user | user:* | group#member
	relation banned: user
	permission edit = owner
	permission view = (viewer + edit + folder->view) - banned
}
`

func TestDeepChainAnswers(t *testing.T) {
	f := newFixture(t, datagen.ChainSchema)
	f.writeTuples(func(emit func(datagen.Tuple)) { datagen.Chain(10_000, emit) })
	c := check.New(check.Options{})
	f.expect(c, "role:chain-9999#see@user:boss", check.HasPermission)
	f.expect(c, "role:chain-9999#see@user:stranger", check.NoPermission)
}

func TestDepthLimitNamesThePath(t *testing.T) {
	f := newFixture(t, datagen.ChainSchema)
	f.writeTuples(func(emit func(datagen.Tuple)) { datagen.Chain(200, emit) })
	c := check.New(check.Options{MaxDepth: 100, NoIndex: true})
	_, err := f.check(c, "role:chain-199#see@user:boss")
	if !errors.Is(err, check.ErrMaxDepth) {
		t.Fatalf("got %v, want ErrMaxDepth", err)
	}
	for _, want := range []string{"role:chain-199#see", "role:chain-98", "limit is 100"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Within the limit the same checker answers.
	f.expect(c, "role:chain-50#see@user:boss", check.HasPermission)
}

func TestExplanation(t *testing.T) {
	f := newFixture(t, docSchema,
		"document:1#folder@folder:f1",
		"folder:f1#viewer@user:ann",
	)
	c := check.New(check.Options{})
	req := request(t, "document:1#view@user:ann")
	req.Explain = true
	res, err := c.Check(context.Background(), f.reader(), req)
	if err != nil {
		t.Fatal(err)
	}
	text := res.Explanation.String()
	for _, want := range []string{"✓ permission document:1#view", "folder:f1#viewer@user:ann", "arrow document:1#folder->view"} {
		if !strings.Contains(text, want) {
			t.Errorf("explanation lacks %q:\n%s", want, text)
		}
	}
}

func TestCancellation(t *testing.T) {
	f := newFixture(t, datagen.ChainSchema)
	f.writeTuples(func(emit func(datagen.Tuple)) { datagen.Chain(1000, emit) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := check.New(check.Options{}).Check(ctx, f.reader(), request(t, "role:chain-999#see@user:boss"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// Fan-out goroutines end with the request that started them.
func TestNoGoroutineLeak(t *testing.T) {
	f := newFixture(t, datagen.CRMSchema)
	f.writeTuples(func(emit func(datagen.Tuple)) { datagen.CRM(datagen.CRMConfig{Scale: 0.02, Seed: 1}, emit) })
	before := runtime.NumGoroutine()
	c := check.New(check.Options{Concurrency: 8, FanOut: 8})
	r := f.reader()
	var reqs []check.Request
	for d := range 200 {
		reqs = append(reqs, request(t, fmt.Sprintf("deal:%s#view@user:%s", datagen.DealID(d), datagen.UserID(d))))
	}
	for _, res := range c.CheckBulk(context.Background(), r, reqs) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the checks, %d before", n, before)
	}
}

// Concurrent and sequential evaluation agree on every item.
func TestConcurrencyAgrees(t *testing.T) {
	f := newFixture(t, datagen.CRMSchema)
	f.writeTuples(func(emit func(datagen.Tuple)) { datagen.CRM(datagen.CRMConfig{Scale: 0.02, Seed: 2}, emit) })
	r := f.reader()
	var reqs []check.Request
	for d := range 300 {
		reqs = append(reqs, request(t, fmt.Sprintf("deal:%s#view@user:%s", datagen.DealID(d), datagen.UserID(d%37))))
		reqs = append(reqs, request(t, fmt.Sprintf("account:%s#edit@user:%s", datagen.AccountID(d), datagen.UserID(d%53))))
	}
	seq := check.New(check.Options{Concurrency: 1, FanOut: 1}).CheckBulk(context.Background(), r, reqs)
	par := check.New(check.Options{Concurrency: 8, FanOut: 8}).CheckBulk(context.Background(), r, reqs)
	allowed := 0
	for i := range reqs {
		if seq[i].Err != nil || par[i].Err != nil {
			t.Fatalf("item %d: %v / %v", i, seq[i].Err, par[i].Err)
		}
		if seq[i].Result.Membership != par[i].Result.Membership {
			t.Errorf("item %d %+v: sequential %v, concurrent %v", i, reqs[i], seq[i].Result.Membership, par[i].Result.Membership)
		}
		if seq[i].Result.Membership == check.HasPermission {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(reqs) {
		t.Errorf("%d of %d allowed: the data should give both answers", allowed, len(reqs))
	}
}

func TestObserve(t *testing.T) {
	f := newFixture(t, datagen.ChainSchema)
	f.writeTuples(func(emit func(datagen.Tuple)) { datagen.Chain(50, emit) })
	var mu sync.Mutex
	var got []check.Observation
	c := check.New(check.Options{NoIndex: true, Observe: func(o check.Observation) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, o)
	}})
	c.CheckBulk(context.Background(), f.reader(), []check.Request{
		request(t, "role:chain-49#see@user:boss"),
		request(t, "role:chain-49#nosuch@user:boss"),
	})
	f.expect(c, "role:chain-49#see@user:boss", check.HasPermission)
	if len(got) != 2 {
		t.Fatalf("%d observations, want 2 (the invalid item is refused before evaluation, one per evaluated check)", len(got))
	}
	first := got[0]
	if first.ResourceType != "role" || first.Permission != "see" || first.Membership != check.HasPermission {
		t.Errorf("observation %+v", first)
	}
	if first.Depth != 49 || first.Subproblems < 50 {
		t.Errorf("depth %d, subproblems %d: want depth 49 and at least 50 sub-problems down a 50-role chain", first.Depth, first.Subproblems)
	}
}

// With the index on, a check down a chain is one index answer, not a walk of every level.
func TestObserveIndex(t *testing.T) {
	f := newFixture(t, datagen.ChainSchema)
	f.writeTuples(func(emit func(datagen.Tuple)) { datagen.Chain(50, emit) })
	var got check.Observation
	c := check.New(check.Options{Observe: func(o check.Observation) { got = o }})
	f.expect(c, "role:chain-49#see@user:boss", check.HasPermission)
	if got.IndexHits != 1 || got.IndexFallbacks != 0 || got.Subproblems != 1 {
		t.Errorf("observation %+v: want one sub-problem answered by the index", got)
	}
}
