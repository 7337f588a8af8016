package check

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// Lookups in both directions work in two steps. A walk over the relationships gathers
// candidates, a superset of the answer: forwards from the resource through every branch of
// the rewrites for LookupSubjects, backwards from the subject through the reverse index for
// LookupResources. Then CheckBulk decides each candidate, so that a lookup agrees with Check by
// construction on intersections, exclusions, caveats, expiration and cycles; the walk only has
// to be sure never to miss a subject or resource that Check would admit (see decide).

// node is one userset on the walk: typ:id#relation, relation "" for a plain object.
type node struct {
	typ, id, relation string
}

// lookupSubjects answers LookupSubjects; see the front door.
func (c *Checker) lookupSubjects(ctx context.Context, r *store.Reader, req SubjectsRequest) ([]FoundSubject, error) {
	sch := r.Schema()
	if sch == nil {
		return nil, fmt.Errorf("%w: write a schema before looking up subjects", ErrNoSchema)
	}
	if err := validateSubjectsRequest(sch, &req); err != nil {
		return nil, err
	}
	wantRel := normaliseRelation(req.SubjectRelation)
	everyType := req.SubjectType == ""

	// Walk forwards from the resource, collecting the subjects of relationships (the candidate
	// subjects) and the types whose wildcard was met.
	seen := make(map[node]bool)
	candidates := make(map[node]bool)
	wildcards := make(map[string]bool)
	stack := []node{{req.ResourceType, req.ResourceID, req.Permission}}
	seen[stack[0]] = true
	push := func(n node) {
		if !seen[n] {
			seen[n] = true
			stack = append(stack, n)
		}
	}
	for steps := 0; len(stack) > 0; steps++ {
		if steps%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !everyType && n.relation != "" && n.typ == req.SubjectType && n.relation == wantRel {
			// A userset is a member of itself, so every userset on the walk is a candidate.
			candidates[n] = true
		}
		rel := sch.Namespace(n.typ).Relation(n.relation)
		if rel == nil {
			continue
		}
		if !rel.IsPermission {
			err := r.Subjects(n.typ, n.id, n.relation, func(t *store.Relationship) bool {
				s := node{t.SubjectType, t.SubjectID, normaliseRelation(t.SubjectRelation)}
				switch {
				case s.id == store.Wildcard:
					wildcards[s.typ] = true
				case s.relation == "":
					candidates[s] = true
				default:
					candidates[s] = true
					push(s)
				}
				return true
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		var walkErr error
		eachRewrite(rel.Rewrite, true, func(rw *schema.Rewrite) {
			switch rw.Kind {
			case schema.RewriteSelf:
				candidates[selfSubject(n)] = true // self.go
			case schema.RewriteComputedUserset:
				push(node{n.typ, n.id, rw.Relation})
			case schema.RewriteTupleToUserset:
				err := r.Subjects(n.typ, n.id, rw.Tupleset, func(t *store.Relationship) bool {
					if t.SubjectID != store.Wildcard && sch.Namespace(t.SubjectType).Relation(rw.Relation) != nil {
						push(node{t.SubjectType, t.SubjectID, rw.Relation})
					}
					return true
				})
				if err != nil && walkErr == nil {
					walkErr = err
				}
			}
		})
		if walkErr != nil {
			return nil, walkErr
		}
	}

	// Keep the candidates of the requested kind, and add one probe per wildcard type: an id
	// that no relationship on the walk names stands for every such id.
	var subjects []node
	byType := make(map[string]map[string]bool)
	for s := range candidates {
		if !everyType && (s.typ != req.SubjectType || s.relation != wantRel) {
			continue
		}
		subjects = append(subjects, s)
		if s.relation == "" {
			if byType[s.typ] == nil {
				byType[s.typ] = make(map[string]bool)
			}
			byType[s.typ][s.id] = true
		}
	}
	sortNodes(subjects)
	var wildTypes []string
	for typ := range wildcards {
		if everyType || (typ == req.SubjectType && wantRel == "") {
			wildTypes = append(wildTypes, typ)
		}
	}
	sort.Strings(wildTypes)
	probes := make(map[string]string, len(wildTypes))
	for _, typ := range wildTypes {
		probes[typ] = probeID(byType[typ])
	}

	reqs := make([]Request, 0, len(subjects)+len(wildTypes))
	for _, s := range subjects {
		reqs = append(reqs, Request{ResourceType: req.ResourceType, ResourceID: req.ResourceID, Permission: req.Permission,
			SubjectType: s.typ, SubjectID: s.id, SubjectRelation: s.relation, Context: req.Context})
	}
	for _, typ := range wildTypes {
		reqs = append(reqs, Request{ResourceType: req.ResourceType, ResourceID: req.ResourceID, Permission: req.Permission,
			SubjectType: typ, SubjectID: probes[typ], Context: req.Context})
	}
	results, err := c.decide(ctx, r, reqs)
	if err != nil {
		return nil, err
	}

	var out []FoundSubject
	membership := make(map[node]Result, len(subjects))
	for i, s := range subjects {
		res := results[i].Result
		membership[s] = res
		if res.Membership != NoPermission {
			out = append(out, FoundSubject{Type: s.typ, ID: s.id, Relation: s.relation, Membership: res.Membership, MissingParams: res.MissingParams})
		}
	}
	for j, typ := range wildTypes {
		res := results[len(subjects)+j].Result
		if res.Membership == NoPermission {
			continue
		}
		// The wildcard covers every id of its type but those whose answer differs from it
		// downwards: no permission, or conditional where the wildcard is unconditional.
		var excluded []string
		for id := range byType[typ] {
			m := membership[node{typ, id, ""}].Membership
			if m == NoPermission || (m == ConditionalPermission && res.Membership == HasPermission) {
				excluded = append(excluded, id)
			}
		}
		sort.Strings(excluded)
		out = append(out, FoundSubject{Type: typ, ID: store.Wildcard, Membership: res.Membership, MissingParams: res.MissingParams, Excluded: excluded})
	}
	sort.Slice(out, func(i, j int) bool { return lessSubject(out[i], out[j]) })
	return out, nil
}

func lessSubject(a, b FoundSubject) bool {
	if a.Type != b.Type {
		return a.Type < b.Type
	}
	if a.Relation != b.Relation {
		return a.Relation < b.Relation
	}
	return a.ID < b.ID
}

func sortNodes(ns []node) {
	sort.Slice(ns, func(i, j int) bool {
		a, b := ns[i], ns[j]
		if a.typ != b.typ {
			return a.typ < b.typ
		}
		if a.relation != b.relation {
			return a.relation < b.relation
		}
		return a.id < b.id
	})
}

// probeID returns an id that is not in taken.
func probeID(taken map[string]bool) string {
	for i := 0; ; i++ {
		id := "kengen_wildcard_probe"
		if i > 0 {
			id += "_" + strconv.Itoa(i)
		}
		if !taken[id] {
			return id
		}
	}
}

// eachRewrite calls fn on every node of rw. With subtracted false it skips the subtracted
// side of exclusions, which can never make a subject a member.
func eachRewrite(rw *schema.Rewrite, subtracted bool, fn func(*schema.Rewrite)) {
	if rw == nil {
		return
	}
	fn(rw)
	for i, ch := range rw.Children {
		if rw.Kind == schema.RewriteExclusion && i > 0 && !subtracted {
			break
		}
		eachRewrite(ch, subtracted, fn)
	}
}

func validateSubjectsRequest(sch *schema.Schema, req *SubjectsRequest) error {
	switch {
	case req.ResourceType == "":
		return fmt.Errorf("%w: resource type is empty", ErrInvalidRequest)
	case req.ResourceID == "" || req.ResourceID == store.Wildcard:
		return fmt.Errorf("%w: resource id %q: name one concrete resource", ErrInvalidRequest, req.ResourceID)
	case req.Permission == "":
		return fmt.Errorf("%w: permission is empty", ErrInvalidRequest)
	case req.SubjectType == "" && req.SubjectRelation != "":
		return fmt.Errorf("%w: subject relation %q without a subject type", ErrInvalidRequest, req.SubjectRelation)
	}
	ns := sch.Namespace(req.ResourceType)
	if ns == nil {
		return fmt.Errorf("%w: resource type %q is not defined in the schema", ErrUnknownDefinition, req.ResourceType)
	}
	if ns.Relation(req.Permission) == nil {
		return fmt.Errorf("%w: %s has no relation or permission %q", ErrUnknownRelation, req.ResourceType, req.Permission)
	}
	if req.SubjectType == "" {
		return nil
	}
	sns := sch.Namespace(req.SubjectType)
	if sns == nil {
		return fmt.Errorf("%w: subject type %q is not defined in the schema", ErrUnknownDefinition, req.SubjectType)
	}
	if rel := normaliseRelation(req.SubjectRelation); rel != "" && sns.Relation(rel) == nil {
		return fmt.Errorf("%w: subject type %s has no relation or permission %q", ErrUnknownRelation, req.SubjectType, rel)
	}
	return nil
}

// lookupResources answers LookupResources; see the front door.
func (c *Checker) lookupResources(ctx context.Context, r *store.Reader, req ResourcesRequest) ([]FoundResource, error) {
	sch := r.Schema()
	if sch == nil {
		return nil, fmt.Errorf("%w: write a schema before looking up resources", ErrNoSchema)
	}
	probe := Request{ResourceType: req.ResourceType, ResourceID: "x", Permission: req.Permission,
		SubjectType: req.SubjectType, SubjectID: req.SubjectID, SubjectRelation: req.SubjectRelation}
	if err := validate(sch, &probe); err != nil {
		return nil, err
	}
	ck := candidateKey{sch: sch, rev: r.Revision(), resType: req.ResourceType, permission: req.Permission,
		subject: node{req.SubjectType, req.SubjectID, normaliseRelation(req.SubjectRelation)}}
	cands, ok := c.candidates.get(ck)
	if !ok {
		var err error
		if cands, err = resourceCandidates(ctx, r, sch, req, c.maxDepth); err != nil {
			return nil, err
		}
		c.candidates.put(ck, cands)
	}
	if req.After != "" {
		cands = cands[sort.Search(len(cands), func(i int) bool { return cands[i].id > req.After }):]
	}

	// Candidates reached only through unions of uncaveated relationships are members; the
	// others are confirmed with Check, in id order, a chunk at a time, until the limit. The
	// first chunk is what the page still needs and each later one twice the one before, so a
	// small page checks few candidates beyond its last result (a client paging one result at
	// a time pays one check a page, not a fixed batch) and a run of refusals costs a
	// logarithmic number of rounds.
	var out []FoundResource
	full := func() bool { return req.Limit > 0 && len(out) >= req.Limit }
	chunk := 0
	for len(cands) > 0 && !full() {
		n := len(cands)
		if req.Limit > 0 {
			chunk = max(req.Limit-len(out), 2*chunk)
			n = min(n, chunk)
		}
		var reqs []Request
		for _, cd := range cands[:n] {
			if !cd.certain {
				reqs = append(reqs, Request{ResourceType: req.ResourceType, ResourceID: cd.id, Permission: req.Permission,
					SubjectType: req.SubjectType, SubjectID: req.SubjectID, SubjectRelation: req.SubjectRelation, Context: req.Context})
			}
		}
		results, err := c.decide(ctx, r, reqs)
		if err != nil {
			return nil, err
		}
		j := 0
		for _, cd := range cands[:n] {
			if full() {
				break
			}
			if cd.certain {
				out = append(out, FoundResource{ID: cd.id, Membership: HasPermission})
				continue
			}
			res := results[j]
			j++
			if res.Err != nil {
				return nil, res.Err
			}
			if res.Result.Membership != NoPermission {
				out = append(out, FoundResource{ID: cd.id, Membership: res.Result.Membership, MissingParams: res.Result.MissingParams})
			}
		}
		cands = cands[n:]
	}
	return out, nil
}

// candidate is a resource the reverse walk reached. certain says it was reached through
// uncaveated relationships and union positions of rewrites only, so it is a member for sure.
type candidate struct {
	id      string
	certain bool
}

// resourceCandidates walks backwards from the subject (and its type's wildcard) to every
// userset that may contain it, and returns those of the requested type and permission,
// sorted by id.
//
// The depth rule is Check's: hops count the objects a path traverses through arrows and
// usersets. A candidate is certain only if the walk reached it within maxDepth hops; one
// reached further is confirmed by Check, which answers from the index when the closure is
// complete and otherwise refuses (ErrMaxDepth) as it would for the same question, so that a
// lookup never lists a resource Check refuses.
func resourceCandidates(ctx context.Context, r *store.Reader, sch *schema.Schema, req ResourcesRequest, maxDepth int) ([]candidate, error) {
	g := sch.Reverse()
	subjRel := normaliseRelation(req.SubjectRelation)
	// certain[type, relation][id].sure is false for a node reached only through an
	// intersection, an exclusion, an all-arrow or a caveat; a node first reached uncertain and
	// later certain is walked again, so certainty spreads (each node is walked at most twice).
	// hops is the length of the path it was first reached on (at least the shortest). Keyed
	// by (type, relation) first, so that the large inner maps hash only ids.
	certain := make(map[typeRelation]map[string]reach)
	type item struct {
		n       node
		certain bool
		hops    int
	}
	var stack []item
	push := func(n node, sure bool, hops int) {
		tr := typeRelation{n.typ, n.relation}
		ids := certain[tr]
		if ids == nil {
			ids = make(map[string]reach)
			certain[tr] = ids
		}
		was, seen := ids[n.id]
		if !seen || (sure && !was.sure) {
			if seen {
				hops = min(hops, int(was.hops))
			}
			ids[n.id] = reach{sure, int32(min(hops, math.MaxInt32))}
			stack = append(stack, item{n, sure, hops})
		}
	}
	// shared holds the results of tupleset scans that several arrows make (account->edit and
	// account->view both read deal#account of one account): each is read once, and dropped
	// once every arrow sharing it has used it.
	type sharedScan struct {
		hits []arrowHit
		left int
	}
	shared := make(map[scanKey]*sharedScan)
	scan := func(k scanKey) ([]arrowHit, error) {
		users := g.SharedScans[schema.TuplesetScan{SubjectType: k.subjType, SubjectRelation: k.subjRel, ResourceType: k.resType, Tupleset: k.tupleset}]
		if s, ok := shared[k]; ok {
			if s.left--; s.left == 0 {
				delete(shared, k)
			}
			return s.hits, nil
		}
		var hits []arrowHit
		err := r.Resources(k.subjType, k.subjID, k.subjRel, k.resType, k.tupleset, func(t *store.Relationship) bool {
			hits = append(hits, arrowHit{t.ResourceID, t.Caveat != ""})
			return true
		})
		if err == nil && users > 1 {
			shared[k] = &sharedScan{hits: hits, left: users - 1}
		}
		return hits, err
	}
	push(node{req.SubjectType, req.SubjectID, subjRel}, true, 0)
	if subjRel == "" {
		push(node{req.SubjectType, store.Wildcard, ""}, true, 0)
	}
	for steps := 0; len(stack) > 0; steps++ {
		if steps%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n, sure := it.n, it.certain
		// Relationships whose subject is n: one hop further when n is a userset, as in Check.
		hops := it.hops
		if n.relation != "" {
			hops++
		}
		for _, d := range g.Direct[schema.SubjectKind{Type: n.typ, Relation: n.relation, Wildcard: n.id == store.Wildcard}] {
			err := r.Resources(n.typ, n.id, n.relation, d.Type, d.Relation, func(t *store.Relationship) bool {
				push(node{t.ResourceType, t.ResourceID, t.Relation}, sure && t.Caveat == "", hops)
				return true
			})
			if err != nil {
				return nil, err
			}
		}
		selfResources(g, n, func(p node, union bool) { push(p, sure && union, it.hops) }) // self.go
		if n.relation == "" || n.id == store.Wildcard {
			continue
		}
		// Permissions on the same object that name n's relation.
		for _, p := range g.Computed[schema.RelationRef{Type: n.typ, Relation: n.relation}] {
			push(node{n.typ, n.id, p.Permission}, sure && p.Union, it.hops)
		}
		// Arrows whose tupleset holds n's object and whose target is n's relation.
		for _, a := range g.Arrows[n.relation] {
			for _, subjRel := range a.SubjectRelations[n.typ] {
				hits, err := scan(scanKey{n.typ, n.id, subjRel, a.ResourceType, a.Tupleset})
				if err != nil {
					return nil, err
				}
				for _, h := range hits {
					push(node{a.ResourceType, h.id, a.Permission}, sure && a.Union && !h.caveated, it.hops+1)
				}
			}
		}
	}
	found := certain[typeRelation{req.ResourceType, req.Permission}]
	out := make([]candidate, 0, len(found))
	for id, rc := range found {
		if id != store.Wildcard {
			out = append(out, candidate{id, rc.sure && int(rc.hops) <= maxDepth})
		}
	}
	slices.SortFunc(out, func(a, b candidate) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

type typeRelation struct{ typ, relation string }

// reach is how the reverse walk reached a node: for sure or not, and in how many hops.
type reach struct {
	sure bool
	hops int32
}

// scanKey is one read of a tupleset backwards: the relationships resType:?#tupleset whose
// subject is subjType:subjID#subjRel.
type scanKey struct {
	subjType, subjID, subjRel, resType, tupleset string
}

// arrowHit is a resource a tupleset scan found, and whether its relationship has a caveat.
type arrowHit struct {
	id       string
	caveated bool
}

// candidateKey identifies one reverse walk: the store (through its compiled schema, which
// no two stores share), the revision, and what was asked.
type candidateKey struct {
	sch                 *schema.Schema
	rev                 store.Revision
	resType, permission string
	subject             node
}

// candidateCache keeps the candidates of the last few reverse walks, so that the pages of
// one listing, fetched at the same revision, walk once: a page then costs a search and the
// checks of its own candidates. It holds at most maxCachedCandidates ids in all.
type candidateCache struct {
	mu struct {
		sync.Mutex
		entries map[candidateKey][]candidate
		order   []candidateKey // oldest first
		size    int
	}
}

const maxCachedCandidates = 2_000_000

func newCandidateCache() *candidateCache {
	cc := &candidateCache{}
	cc.mu.entries = make(map[candidateKey][]candidate)
	return cc
}

func (cc *candidateCache) get(k candidateKey) ([]candidate, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	v, ok := cc.mu.entries[k]
	return v, ok
}

func (cc *candidateCache) put(k candidateKey, v []candidate) {
	if len(v) > maxCachedCandidates/4 {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.mu.entries[k]; ok {
		return
	}
	for cc.mu.size+len(v) > maxCachedCandidates || len(cc.mu.order) >= 64 {
		old := cc.mu.order[0]
		cc.mu.order = cc.mu.order[1:]
		cc.mu.size -= len(cc.mu.entries[old])
		delete(cc.mu.entries, old)
	}
	cc.mu.entries[k] = v
	cc.mu.order = append(cc.mu.order, k)
	cc.mu.size += len(v)
}

// decide answers the candidates' checks as one CheckBulk, sharing sub-problems between
// them: the answers do not depend on the order in which items meet shared sub-problems
// (eval.go, "Cycles"), so each is what Check alone would say. The first check that fails
// stops the others (a lookup fails with it, so the rest would be spent for nothing: on a chain
// past the depth limit each costs a walk of MaxDepth objects); err is the failure of the
// lowest-numbered request that failed on its own.
func (c *Checker) decide(ctx context.Context, r *store.Reader, reqs []Request) ([]BulkResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	results := c.checkBulk(stop, r, reqs, cancel)
	if err := ctx.Err(); err != nil {
		return results, err
	}
	for _, res := range results {
		if res.Err != nil && !errors.Is(res.Err, context.Canceled) {
			return results, res.Err
		}
	}
	return results, nil
}
