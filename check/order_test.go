package check_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// answer is what Check says to one question: a membership, or that the answer is refused
// (ErrMaxDepth: a cycle through an intersection or exclusion decides it).
type answer struct {
	m       check.Membership
	refused bool
}

func (a answer) String() string {
	if a.refused {
		return "refused"
	}
	return a.m.String()
}

func answerOf(t *testing.T, res check.Result, err error) answer {
	t.Helper()
	if err != nil {
		if !errors.Is(err, check.ErrMaxDepth) {
			t.Fatalf("unexpected error: %v", err)
		}
		return answer{refused: true}
	}
	return answer{m: res.Membership}
}

// orderSeed is one random schema and data set with every question over it (every doc and
// permission, for every user and group userset) and the reference answer to each: a Check on
// its own, on a Checker without a cache, so nothing asked before can influence it.
type orderSeed struct {
	seed       int64
	schemaText string
	r          *store.Reader
	questions  []check.Request
	want       []answer
}

func newOrderSeed(t *testing.T, seed int64) *orderSeed {
	rng := rand.New(rand.NewSource(seed))
	schemaText := randomSchema(rng)
	f := newFixture(t, schemaText, randomRelationships(rng)...)
	os := &orderSeed{seed: seed, schemaText: schemaText, r: f.reader()}
	for _, perm := range []string{"perm0", "perm1", "perm2"} {
		for _, d := range universe("doc", 5) {
			for _, u := range append(universe("user", 5), "never_named") {
				os.questions = append(os.questions, check.Request{ResourceType: "doc", ResourceID: d, Permission: perm, SubjectType: "user", SubjectID: u})
			}
			for _, g := range universe("group", 3) {
				os.questions = append(os.questions, check.Request{ResourceType: "doc", ResourceID: d, Permission: perm, SubjectType: "group", SubjectID: g, SubjectRelation: "member"})
			}
		}
	}
	ref := check.New(check.Options{CacheBytes: -1})
	for _, q := range os.questions {
		res, err := ref.Check(context.Background(), os.r, q)
		os.want = append(os.want, answerOf(t, res, err))
	}
	return os
}

func (os *orderSeed) fail(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Fatalf("seed %d: %s\nschema:%s", os.seed, fmt.Sprintf(format, args...), os.schemaText)
}

func (os *orderSeed) refusals() int {
	n := 0
	for _, a := range os.want {
		if a.refused {
			n++
		}
	}
	return n
}

// TestAnswersDoNotDependOnOrder draws random schemas whose permissions recurse through every
// operator (unions, intersections, exclusions, arrows and .all() arrows over a parent
// relation, nested and cyclic groups) and data with cycles, and asks every question in
// several orders and ways: one CheckBulk in a shuffled order, on one goroutine and on four;
// Checks one after another on a Checker whose cache keeps earlier answers; with and without
// the Leopard index. Each must give the reference answer, refusals included; and Expand
// refuses every permission whose answer a cycle decides.
func TestAnswersDoNotDependOnOrder(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	refused, total := 0, 0
	for seed := range seeds {
		os := newOrderSeed(t, int64(seed))
		refused += os.refusals()
		total += len(os.questions)
		rng := rand.New(rand.NewSource(int64(seed)))
		for _, v := range []struct {
			name string
			opts check.Options
		}{
			{"bulk", check.Options{Concurrency: 1, FanOut: 1}},
			{"bulk-concurrent", check.Options{Concurrency: 4, FanOut: 4}},
			{"bulk-noindex", check.Options{Concurrency: 1, NoIndex: true}},
		} {
			perm := rng.Perm(len(os.questions))
			reqs := make([]check.Request, len(perm))
			for i, j := range perm {
				reqs[i] = os.questions[j]
			}
			res := check.New(v.opts).CheckBulk(context.Background(), os.r, reqs)
			for i, j := range perm {
				if got := answerOf(t, res[i].Result, res[i].Err); got != os.want[j] {
					os.fail(t, "%s: %v: got %v, Check alone says %v", v.name, reqs[i], got, os.want[j])
				}
			}
		}
		// Expand meets the cycles Check meets (this schema's only userset leaves are group
		// members, which lead back to no permission): where it builds a tree, no Check on
		// that permission is refused, and where a Check is refused, Expand refuses too.
		expandRefused := make(map[string]bool)
		for _, perm := range []string{"perm0", "perm1", "perm2"} {
			for _, d := range universe("doc", 5) {
				_, err := check.New(check.Options{}).Expand(context.Background(), os.r, "doc", d, perm)
				if err != nil && !errors.Is(err, check.ErrMaxDepth) {
					os.fail(t, "Expand(doc:%s#%s): %v", d, perm, err)
				}
				expandRefused["doc:"+d+"#"+perm] = err != nil
			}
		}
		for i, q := range os.questions {
			if os.want[i].refused && !expandRefused[q.ResourceType+":"+q.ResourceID+"#"+q.Permission] {
				os.fail(t, "%v is refused, but Expand(%s:%s#%s) builds a tree", q, q.ResourceType, q.ResourceID, q.Permission)
			}
		}
		shared := check.New(check.Options{})
		for _, j := range rng.Perm(len(os.questions)) {
			res, err := shared.Check(context.Background(), os.r, os.questions[j])
			if got := answerOf(t, res, err); got != os.want[j] {
				os.fail(t, "checks in a shuffled order with a cache: %v: got %v, Check alone says %v", os.questions[j], got, os.want[j])
			}
		}
	}
	t.Logf("%d questions over %d seeds, %d refused", total, seeds, refused)
	if refused == 0 {
		t.Fatal("no question was refused: the seeds hold no cycle that decides an answer")
	}
}

// TestLookupsAgreeWithCheck asks both lookups over the same random schemas and data, and
// checks that they return exactly what Check answers over every object: a refused answer is
// never listed, and a lookup fails only if a Check it depends on is refused.
func TestLookupsAgreeWithCheck(t *testing.T) {
	seeds := 150
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		os := newOrderSeed(t, int64(seed))
		want := make(map[string]answer, len(os.questions))
		for i, q := range os.questions {
			want[questionKey(q)] = os.want[i]
		}
		c := check.New(check.Options{Concurrency: 1})
		// anyRefused reports whether one of the questions for (doc, perm) or (perm, subject)
		// is refused: the only reason a lookup may fail.
		anyRefused := func(match func(q check.Request) bool) bool {
			for i, q := range os.questions {
				if match(q) && os.want[i].refused {
					return true
				}
			}
			return false
		}
		users := append(universe("user", 5), "never_named")
		docs, groups := universe("doc", 5), universe("group", 3)
		for _, perm := range []string{"perm0", "perm1", "perm2"} {
			for _, d := range docs {
				for _, kind := range []struct{ typ, rel string }{{"user", ""}, {"group", "member"}} {
					found, err := c.LookupSubjects(context.Background(), os.r, check.SubjectsRequest{ResourceType: "doc", ResourceID: d, Permission: perm, SubjectType: kind.typ, SubjectRelation: kind.rel})
					if err != nil {
						if !errors.Is(err, check.ErrMaxDepth) || !anyRefused(func(q check.Request) bool {
							return q.ResourceID == d && q.Permission == perm && q.SubjectType == kind.typ
						}) {
							os.fail(t, "LookupSubjects(doc:%s#%s, %s): %v, but no Check it needs is refused", d, perm, kind.typ, err)
						}
						continue
					}
					ids := users
					if kind.typ == "group" {
						ids = groups
					}
					for _, id := range ids {
						w := want[questionKey(check.Request{ResourceType: "doc", ResourceID: d, Permission: perm, SubjectType: kind.typ, SubjectID: id, SubjectRelation: kind.rel})]
						got := membershipIn(found, id)
						if (w.refused && got != check.NoPermission) || (!w.refused && got != w.m) {
							os.fail(t, "doc:%s#%s@%s:%s: lookup says %v, check says %v; lookup %q", d, perm, kind.typ, id, got, w, subjectStrings(found))
						}
					}
				}
			}
			type subj struct{ typ, id, rel string }
			var subjects []subj
			for _, u := range users {
				subjects = append(subjects, subj{"user", u, ""})
			}
			for _, g := range groups {
				subjects = append(subjects, subj{"group", g, "member"})
			}
			for _, s := range subjects {
				found, err := c.LookupResources(context.Background(), os.r, check.ResourcesRequest{ResourceType: "doc", Permission: perm, SubjectType: s.typ, SubjectID: s.id, SubjectRelation: s.rel})
				if err != nil {
					if !errors.Is(err, check.ErrMaxDepth) || !anyRefused(func(q check.Request) bool {
						return q.Permission == perm && q.SubjectType == s.typ && q.SubjectID == s.id
					}) {
						os.fail(t, "LookupResources(doc#%s, %v): %v, but no Check it needs is refused", perm, s, err)
					}
					continue
				}
				// Pages of two, resumed after the last id, concatenate to the whole answer.
				var paged []check.FoundResource
				for after := ""; ; {
					page, err := c.LookupResources(context.Background(), os.r, check.ResourcesRequest{ResourceType: "doc", Permission: perm,
						SubjectType: s.typ, SubjectID: s.id, SubjectRelation: s.rel, After: after, Limit: 2})
					if err != nil {
						os.fail(t, "LookupResources page after %q: %v", after, err)
					}
					paged = append(paged, page...)
					if len(page) < 2 {
						break
					}
					after = page[len(page)-1].ID
				}
				if !reflect.DeepEqual(paged, found) {
					os.fail(t, "LookupResources(doc#%s, %v) in pages of 2 = %+v, want %+v", perm, s, paged, found)
				}
				got := make(map[string]check.Membership)
				for _, fr := range found {
					got[fr.ID] = fr.Membership
				}
				for _, d := range docs {
					w := want[questionKey(check.Request{ResourceType: "doc", ResourceID: d, Permission: perm, SubjectType: s.typ, SubjectID: s.id, SubjectRelation: s.rel})]
					if (w.refused && got[d] != check.NoPermission) || (!w.refused && got[d] != w.m) {
						os.fail(t, "LookupResources(doc#%s, %v): doc:%s is %v, check says %v", perm, s, d, got[d], w)
					}
				}
			}
		}
	}
}

func questionKey(q check.Request) string {
	return fmt.Sprintf("%s:%s#%s@%s:%s#%s", q.ResourceType, q.ResourceID, q.Permission, q.SubjectType, q.SubjectID, q.SubjectRelation)
}
