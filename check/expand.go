package check

import (
	"context"
	"fmt"

	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

// expander builds the userset tree of one Expand call. It follows computed usersets and
// arrows, as the rewrite does, and stops at the subjects of relations: a userset subject
// (`group:eng#member`) is a leaf subject, which the caller may expand in turn.
type expander struct {
	c   *Checker
	ctx context.Context
	r   *store.Reader
	sch *schema.Schema
	// onPath holds the usersets being expanded, each with how many intersections,
	// exclusions and .all() arrows the path had entered when it reached them.
	onPath map[node]int
}

func (c *Checker) expand(ctx context.Context, r *store.Reader, resType, resID, permission string) (*ExpandNode, error) {
	sch := r.Schema()
	if sch == nil {
		return nil, fmt.Errorf("%w: write a schema before expanding permissions", ErrNoSchema)
	}
	switch {
	case resType == "":
		return nil, fmt.Errorf("%w: resource type is empty", ErrInvalidRequest)
	case resID == "" || resID == store.Wildcard:
		return nil, fmt.Errorf("%w: resource id %q: name one concrete resource", ErrInvalidRequest, resID)
	}
	ns := sch.Namespace(resType)
	if ns == nil {
		return nil, fmt.Errorf("%w: resource type %q is not defined in the schema", ErrUnknownDefinition, resType)
	}
	if ns.Relation(permission) == nil {
		return nil, fmt.Errorf("%w: %s has no relation or permission %q", ErrUnknownRelation, resType, permission)
	}
	e := &expander{c: c, ctx: ctx, r: r, sch: sch, onPath: make(map[node]int)}
	return e.relation(node{resType, resID, permission}, 0, 0)
}

// relation expands n's relation or permission on n's object. hops counts the objects the
// path has traversed through arrows, as Check counts them (Expand stops at usersets), and is
// bounded by the same MaxDepth. through counts the intersections, exclusions and .all()
// arrows the path has entered.
func (e *expander) relation(n node, hops, through int) (*ExpandNode, error) {
	if err := e.ctx.Err(); err != nil {
		return nil, err
	}
	if at, ok := e.onPath[n]; ok {
		// A cycle in the data: the object's userset is already being expanded above. Through
		// unions only it adds nothing and ends in an empty leaf; through an intersection or
		// an exclusion it leaves the tree without a meaning, and Expand refuses it as Check
		// refuses an answer such a cycle decides (eval.go, "Cycles").
		if through > at {
			return nil, fmt.Errorf("%w: expanding %s:%s#%s: a cycle in the data passes through an intersection or exclusion (SpiceDB follows such a cycle to its depth limit and fails)",
				ErrMaxDepth, n.typ, n.id, n.relation)
		}
		return &ExpandNode{Operation: ExpandLeaf, ResourceType: n.typ, ResourceID: n.id, Relation: n.relation}, nil
	}
	if hops > e.c.maxDepth {
		return nil, fmt.Errorf("%w: expanding %s:%s#%s passed %d objects, the limit is %d", ErrMaxDepth, n.typ, n.id, n.relation, hops, e.c.maxDepth)
	}
	rel := e.sch.Namespace(n.typ).Relation(n.relation)
	if rel == nil {
		return nil, fmt.Errorf("%w: %s has no relation or permission %q", ErrUnknownRelation, n.typ, n.relation)
	}
	e.onPath[n] = through
	defer delete(e.onPath, n)
	if !rel.IsPermission {
		leaf := &ExpandNode{Operation: ExpandLeaf, ResourceType: n.typ, ResourceID: n.id, Relation: n.relation}
		err := e.r.Subjects(n.typ, n.id, n.relation, func(t *store.Relationship) bool {
			leaf.Subjects = append(leaf.Subjects, ExpandSubject{Type: t.SubjectType, ID: t.SubjectID,
				Relation: normaliseRelation(t.SubjectRelation), Caveat: t.Caveat})
			return true
		})
		if err != nil {
			return nil, err
		}
		return leaf, nil
	}
	return e.rewrite(n, rel.Rewrite, hops, through)
}

// rewrite expands one node of a permission's rewrite on n's object.
func (e *expander) rewrite(n node, rw *schema.Rewrite, hops, through int) (*ExpandNode, error) {
	set := func(op ExpandOperation) *ExpandNode {
		return &ExpandNode{Operation: op, ResourceType: n.typ, ResourceID: n.id, Relation: n.relation}
	}
	switch rw.Kind {
	case schema.RewriteNil:
		return set(ExpandLeaf), nil
	case schema.RewriteSelf:
		return selfExpand(n), nil // self.go
	case schema.RewriteComputedUserset:
		return e.relation(node{n.typ, n.id, rw.Relation}, hops, through)
	case schema.RewriteUnion, schema.RewriteIntersection, schema.RewriteExclusion:
		op := map[schema.RewriteKind]ExpandOperation{schema.RewriteUnion: ExpandUnion,
			schema.RewriteIntersection: ExpandIntersection, schema.RewriteExclusion: ExpandExclusion}[rw.Kind]
		out := set(op)
		inner := through
		if rw.Kind != schema.RewriteUnion {
			inner++
		}
		for _, ch := range rw.Children {
			child, err := e.rewrite(n, ch, hops, inner)
			if err != nil {
				return nil, err
			}
			out.Children = append(out.Children, child)
		}
		return out, nil
	case schema.RewriteTupleToUserset:
		out := set(ExpandUnion)
		inner := through
		if rw.Func == schema.ArrowAll {
			out.Operation = ExpandIntersection
			inner++
		}
		var targets []node
		err := e.r.Subjects(n.typ, n.id, rw.Tupleset, func(t *store.Relationship) bool {
			if t.SubjectID != store.Wildcard && e.sch.Namespace(t.SubjectType).Relation(rw.Relation) != nil {
				targets = append(targets, node{t.SubjectType, t.SubjectID, rw.Relation})
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		for _, tn := range targets {
			child, err := e.relation(tn, hops+1, inner)
			if err != nil {
				return nil, err
			}
			out.Children = append(out.Children, child)
		}
		return out, nil
	}
	return nil, fmt.Errorf("check: unknown rewrite kind %d", rw.Kind)
}
