package check

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// checkBulk groups the requests by caveat context (sub-problems may only be shared between
// items that supply the same context), and evaluates each group with one memo, on up to
// Options.Concurrency goroutines.
// A failing item calls onErr, when set.
func (c *Checker) checkBulk(ctx context.Context, r *store.Reader, reqs []Request, onErr func()) []BulkResult {
	results := make([]BulkResult, len(reqs))
	sch := r.Schema()
	if sch == nil {
		for i := range results {
			results[i].Err = fmt.Errorf("%w: write a schema before checking permissions", ErrNoSchema)
		}
		return results
	}

	type group struct {
		ev    *evaluation
		items []int
	}
	groups := make(map[string]*group)
	var order []*group
	for i, req := range reqs {
		if err := validate(sch, &req); err != nil {
			results[i].Err = err
			continue
		}
		ck, err := contextKey(req.Context, req.Explain)
		if err != nil {
			results[i].Err = fmt.Errorf("%w: context: %w", ErrInvalidRequest, err)
			continue
		}
		g, ok := groups[ck]
		if !ok {
			g = &group{ev: c.newEvaluation(r, sch, req.Context, req.Explain)}
			groups[ck] = g
			order = append(order, g)
		}
		g.items = append(g.items, i)
	}

	run := func(g *group, i int) {
		req := reqs[i]
		start := time.Now()
		w := g.ev.newWalker(ctx)
		k := key{req.ResourceType, req.ResourceID, req.Permission,
			subjectRef{req.SubjectType, req.SubjectID, normaliseRelation(req.SubjectRelation)}}
		o, err := w.check(k, 0)
		if err == nil && o.m == unresolved {
			err = fmt.Errorf("%w: checking %s for %s: %s, which decides the answer (SpiceDB follows such a cycle to its depth limit and fails)",
				ErrMaxDepth, k.object(), k.subject, o.why)
			o = outcome{}
		}
		countOperations(ctx, w.stats)
		if c.observe != nil {
			c.observe(Observation{ResourceType: req.ResourceType, Permission: req.Permission, Membership: o.m, Err: err,
				Subproblems: int(w.stats.subproblems.Load()), MemoHits: int(w.stats.memoHits.Load()),
				CacheHits: int(w.stats.cacheHits.Load()),
				Depth:     int(w.stats.depth.Load()), IndexHits: int(w.stats.indexHits.Load()),
				IndexFallbacks: int(w.stats.indexFallbacks.Load()), Duration: time.Since(start)})
		}
		if err != nil {
			results[i].Err = err
			if onErr != nil {
				onErr()
			}
			return
		}
		results[i].Result = Result{Membership: o.m, MissingParams: o.missing, Explanation: o.exp}
	}

	type job struct {
		g *group
		i int
	}
	var jobs []job
	for _, g := range order {
		for _, i := range g.items {
			jobs = append(jobs, job{g, i})
		}
	}
	workers := min(c.concurrency, len(jobs))
	if workers <= 1 {
		for _, j := range jobs {
			run(j.g, j.i)
		}
		return results
	}
	next := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				run(j.g, j.i)
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	return results
}

func normaliseRelation(rel string) string {
	if rel == "..." {
		return ""
	}
	return rel
}

func contextKey(ctx map[string]any, explain bool) (string, error) {
	b, err := json.Marshal(ctx) // maps marshal with sorted keys
	if err != nil {
		return "", err
	}
	if explain {
		return "explain:" + string(b), nil
	}
	return string(b), nil
}

// validate checks a request against the schema before any evaluation, so a typo in a
// permission name is an error rather than a quiet "no".
func validate(sch *schema.Schema, req *Request) error {
	switch {
	case req.ResourceType == "":
		return fmt.Errorf("%w: resource type is empty", ErrInvalidRequest)
	case req.ResourceID == "":
		return fmt.Errorf("%w: resource id is empty", ErrInvalidRequest)
	case req.Permission == "":
		return fmt.Errorf("%w: permission is empty", ErrInvalidRequest)
	case req.SubjectType == "":
		return fmt.Errorf("%w: subject type is empty", ErrInvalidRequest)
	case req.SubjectID == "":
		return fmt.Errorf("%w: subject id is empty", ErrInvalidRequest)
	case req.SubjectID == store.Wildcard:
		return fmt.Errorf("%w: subject %s:* is a wildcard; check a concrete subject", ErrInvalidRequest, req.SubjectType)
	case req.ResourceID == store.Wildcard:
		return fmt.Errorf("%w: resource id * is a wildcard; check a concrete resource", ErrInvalidRequest)
	}
	ns := sch.Namespace(req.ResourceType)
	if ns == nil {
		return fmt.Errorf("%w: resource type %q is not defined in the schema", ErrUnknownDefinition, req.ResourceType)
	}
	if ns.Relation(req.Permission) == nil {
		return fmt.Errorf("%w: %s has no relation or permission %q", ErrUnknownRelation, req.ResourceType, req.Permission)
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
