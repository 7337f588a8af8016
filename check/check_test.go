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

func TestRewrites(t *testing.T) {
	f := newFixture(t, docSchema,
		"document:1#owner@user:owner",
		"document:1#viewer@group:eng#member",
		"document:1#folder@folder:f2",
		"document:1#banned@user:mallory",
		"group:eng#member@group:platform#member",
		"group:platform#member@user:pat",
		"group:platform#member@user:mallory",
		"folder:f2#parent@folder:f1",
		"folder:f1#viewer@user:ann",
		"document:public#viewer@user:*",
	)
	c := check.New(check.Options{})
	for _, tc := range []struct {
		q    string
		want check.Membership
	}{
		{"document:1#edit@user:owner", check.HasPermission},
		{"document:1#view@user:owner", check.HasPermission},
		{"document:1#view@user:pat", check.HasPermission},         // nested group
		{"document:1#view@user:ann", check.HasPermission},         // arrow up two folders
		{"document:1#view@user:mallory", check.NoPermission},      // exclusion beats the group
		{"document:1#edit@user:pat", check.NoPermission},          // view does not imply edit
		{"document:1#view@user:nobody", check.NoPermission},       // stranger
		{"document:public#view@user:anyone", check.HasPermission}, // wildcard
		{"document:1#viewer@group:eng#member", check.HasPermission},
		{"document:1#viewer@group:platform#member", check.HasPermission}, // userset subject, nested
		{"group:eng#member@group:eng#member", check.HasPermission},       // a userset contains itself
	} {
		f.expect(c, tc.q, tc.want)
	}
}

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

func TestCyclesTerminate(t *testing.T) {
	f := newFixture(t, docSchema,
		"folder:a#parent@folder:b",
		"folder:b#parent@folder:c",
		"folder:c#parent@folder:a",
		"folder:c#viewer@user:carol",
		"group:x#member@group:y#member",
		"group:y#member@group:x#member",
		"group:y#member@user:yuki",
	)
	c := check.New(check.Options{})
	f.expect(c, "folder:a#view@user:carol", check.HasPermission)
	f.expect(c, "folder:b#view@user:carol", check.HasPermission)
	f.expect(c, "folder:a#view@user:dave", check.NoPermission)
	f.expect(c, "group:x#member@user:yuki", check.HasPermission)
	f.expect(c, "group:x#member@user:zed", check.NoPermission)
}

// A "no" computed while a cycle was cut must not be remembered for a later item of the same
// bulk call, where it would be wrong.
func TestCycleCutIsNotMemoised(t *testing.T) {
	f := newFixture(t, docSchema,
		"folder:a#parent@folder:b",
		"folder:b#parent@folder:a",
		"folder:a#viewer@user:ann",
	)
	c := check.New(check.Options{Concurrency: 1, FanOut: 1})
	res := c.CheckBulk(context.Background(), f.reader(), []check.Request{
		request(t, "folder:a#view@user:ann"),
		request(t, "folder:b#view@user:ann"),
	})
	for i, r := range res {
		if r.Err != nil || r.Result.Membership != check.HasPermission {
			t.Errorf("item %d: got %v, %v; want has permission", i, r.Result.Membership, r.Err)
		}
	}
}

func TestBulkIsolatesErrors(t *testing.T) {
	f := newFixture(t, docSchema, "document:1#owner@user:owner")
	c := check.New(check.Options{})
	res := c.CheckBulk(context.Background(), f.reader(), []check.Request{
		request(t, "document:1#edit@user:owner"),
		request(t, "document:1#nosuch@user:owner"),
		request(t, "nosuch:1#view@user:owner"),
		request(t, "document:1#view@user:other"),
	})
	if res[0].Err != nil || res[0].Result.Membership != check.HasPermission {
		t.Errorf("item 0: %+v", res[0])
	}
	if !errors.Is(res[1].Err, check.ErrUnknownRelation) || !strings.Contains(res[1].Err.Error(), `"nosuch"`) {
		t.Errorf("item 1: got %v, want ErrUnknownRelation naming nosuch", res[1].Err)
	}
	if !errors.Is(res[2].Err, check.ErrUnknownDefinition) {
		t.Errorf("item 2: got %v, want ErrUnknownDefinition", res[2].Err)
	}
	if res[3].Err != nil || res[3].Result.Membership != check.NoPermission {
		t.Errorf("item 3: %+v", res[3])
	}
}

func TestInvalidRequests(t *testing.T) {
	f := newFixture(t, docSchema)
	c := check.New(check.Options{})
	for _, req := range []check.Request{
		{ResourceType: "document", ResourceID: "", Permission: "view", SubjectType: "user", SubjectID: "a"},
		{ResourceType: "document", ResourceID: "1", Permission: "view", SubjectType: "user", SubjectID: "*"},
		{ResourceType: "document", ResourceID: "1", Permission: "view", SubjectType: "group", SubjectID: "g", SubjectRelation: "nosuch"},
	} {
		_, err := c.Check(context.Background(), f.reader(), req)
		if err == nil {
			t.Errorf("%+v: no error", req)
		}
	}
}

func TestCaveats(t *testing.T) {
	f := newFixture(t, `
caveat on_weekday(day string, allowed list<string>) {
	day in allowed
}
caveat from_office(ip ipaddress, office string) {
	ip.in_cidr(office)
}
definition user {}
definition document {
	relation viewer: user with on_weekday | user with from_office | user
	permission view = viewer
}`,
		`document:1#viewer@user:wd[on_weekday:{"allowed":["mon","tue"]}]`,
		`document:1#viewer@user:ip[from_office:{"office":"10.0.0.0/8"}]`,
		`document:1#viewer@user:plain`,
	)
	c := check.New(check.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		q       string
		context map[string]any
		want    check.Membership
		missing []string
	}{
		{"document:1#view@user:plain", nil, check.HasPermission, nil},
		{"document:1#view@user:wd", nil, check.ConditionalPermission, []string{"day"}},
		{"document:1#view@user:wd", map[string]any{"day": "mon"}, check.HasPermission, nil},
		{"document:1#view@user:wd", map[string]any{"day": "sun"}, check.NoPermission, nil},
		// Relationship context wins over the request's.
		{"document:1#view@user:wd", map[string]any{"day": "sun", "allowed": []any{"sun"}}, check.NoPermission, nil},
		{"document:1#view@user:ip", map[string]any{"ip": "10.1.2.3"}, check.HasPermission, nil},
		{"document:1#view@user:ip", map[string]any{"ip": "192.168.0.1"}, check.NoPermission, nil},
	} {
		req := request(t, tc.q)
		req.Context = tc.context
		res, err := c.Check(ctx, f.reader(), req)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.q, tc.context, err)
		}
		if res.Membership != tc.want || fmt.Sprint(res.MissingParams) != fmt.Sprint(tc.missing) {
			t.Errorf("%s %v: got %v missing %v, want %v missing %v", tc.q, tc.context, res.Membership, res.MissingParams, tc.want, tc.missing)
		}
	}
	req := request(t, "document:1#view@user:ip")
	req.Context = map[string]any{"ip": "not-an-ip"}
	if _, err := c.Check(ctx, f.reader(), req); !errors.Is(err, check.ErrCaveat) {
		t.Errorf("bad ip: got %v, want ErrCaveat", err)
	}
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
