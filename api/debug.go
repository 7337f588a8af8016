package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/authzed/authzed-go/pkg/requestmeta"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/schema"
)

// wantsTrace reports whether a check should carry its debug trace: the request's
// with_tracing, or SpiceDB's older io.spicedb.requestdebuginfo request header, which zed
// still sends with --explain.
func wantsTrace(ctx context.Context, withTracing bool) bool {
	if withTracing {
		return true
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(string(requestmeta.RequestDebugInformation))) > 0
}

// traceSource is every trace node's source, as SpiceDB's is "spicedb:<node>": the part
// before the colon names the server kind (zed prints a cached node as "cached by kengen"),
// the rest this host.
var traceSource = sync.OnceValue(func() string {
	host, err := os.Hostname()
	if err != nil {
		host = ""
	}
	return "kengen:" + host
})

// debugInformation renders a check's explanation as the Authzed debug trace, in the shape
// SpiceDB gives it: one CheckDebugTrace per sub-problem (a relation or permission on one
// object), the sub-problems a permission's rewrite asked (its arrows' targets among them) as
// its sub-problems, caveat evaluations on the sub-problems that followed the caveated
// relationships, and the schema the check ran against. Each evaluated sub-problem carries how
// long it took; took, the whole check's duration, replaces the root's.
func debugInformation(sch *schema.Schema, req check.Request, res check.Result, took time.Duration) *v1.DebugInformation {
	b := traceBuilder{
		sch:    sch,
		reqCtx: req.Context,
		subject: &v1.SubjectReference{
			Object:           &v1.ObjectReference{ObjectType: req.SubjectType, ObjectId: req.SubjectID},
			OptionalRelation: req.SubjectRelation,
		},
	}
	node := res.Explanation.Trace(sch)
	if node == nil {
		node = &check.TraceNode{Membership: res.Membership, Missing: res.MissingParams}
	}
	if node.ResourceType == "" {
		node.ResourceType, node.ResourceID, node.Relation = req.ResourceType, req.ResourceID, req.Permission
		if r := sch.Namespace(req.ResourceType).Relation(req.Permission); r != nil {
			node.IsPermission = r.IsPermission
		}
	}
	root := b.trace(node)
	root.Duration = durationpb.New(took)
	info := &v1.DebugInformation{Check: root}
	if sch != nil {
		info.SchemaUsed = strings.TrimSpace(sch.Generate())
	}
	return info
}

type traceBuilder struct {
	sch     *schema.Schema
	reqCtx  map[string]any
	subject *v1.SubjectReference
}

func (b *traceBuilder) trace(n *check.TraceNode) *v1.CheckDebugTrace {
	t := &v1.CheckDebugTrace{
		TraceOperationId:     traceID(),
		Resource:             &v1.ObjectReference{ObjectType: n.ResourceType, ObjectId: n.ResourceID},
		Permission:           n.Relation,
		PermissionType:       v1.CheckDebugTrace_PERMISSION_TYPE_RELATION,
		Subject:              b.subject,
		Result:               traceResult(n.Membership),
		CaveatEvaluationInfo: b.caveatInfo(n),
		Source:               traceSource(),
	}
	if n.Duration > 0 {
		t.Duration = durationpb.New(n.Duration)
	}
	if n.IsPermission {
		t.PermissionType = v1.CheckDebugTrace_PERMISSION_TYPE_PERMISSION
	}
	if len(n.Children) == 0 {
		t.Resolution = &v1.CheckDebugTrace_WasCachedResult{WasCachedResult: n.Cached}
		return t
	}
	sub := &v1.CheckDebugTrace_SubProblems{Traces: make([]*v1.CheckDebugTrace, 0, len(n.Children))}
	for _, c := range n.Children {
		sub.Traces = append(sub.Traces, b.trace(c))
	}
	t.Resolution = &v1.CheckDebugTrace_SubProblems_{SubProblems: sub}
	return t
}

// caveatInfo is the caveat evaluation of a sub-problem: the caveat of the one caveated
// relationship it followed (name, expression, the context it was evaluated with, its
// answer), or for several their names joined with ||; a conditional answer without a caveat
// of its own (one of its sub-problems was conditional) carries the missing parameters.
// Clients (zed) read it on every conditional node, so such a node always has one.
func (b *traceBuilder) caveatInfo(n *check.TraceNode) *v1.CaveatEvalInfo {
	switch len(n.Caveats) {
	case 0:
		if n.Membership != check.ConditionalPermission {
			return nil
		}
		// Conditional through a sub-problem: the caveats that left it so, as SpiceDB carries a
		// caveat expression up to every node whose answer depends on it.
		info := &v1.CaveatEvalInfo{
			Result:            v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT,
			PartialCaveatInfo: &v1.PartialCaveatInfo{MissingRequiredContext: n.Missing},
			Context:           structOf(b.reqCtx),
		}
		uses := conditionalCaveats(n, nil)
		if len(uses) == 1 {
			info.CaveatName = uses[0].Relationship.Caveat
			info.Context = structOf(mergedContext(uses[0].Relationship.CaveatContext, b.reqCtx))
			if cv := b.sch.Caveat(info.CaveatName); cv != nil {
				info.Expression = cv.Expression
			}
		} else {
			names := make([]string, 0, len(uses))
			for _, u := range uses {
				names = append(names, u.Relationship.Caveat)
			}
			info.Expression = strings.Join(names, " || ")
		}
		return info
	case 1:
		u := n.Caveats[0]
		info := &v1.CaveatEvalInfo{
			CaveatName: u.Relationship.Caveat,
			Result:     caveatResult(u.Membership),
			Context:    structOf(mergedContext(u.Relationship.CaveatContext, b.reqCtx)),
		}
		if cv := b.sch.Caveat(u.Relationship.Caveat); cv != nil {
			info.Expression = cv.Expression
		}
		if u.Membership == check.ConditionalPermission {
			info.PartialCaveatInfo = &v1.PartialCaveatInfo{MissingRequiredContext: u.Missing}
		}
		return info
	}
	names := make([]string, 0, len(n.Caveats))
	for _, u := range n.Caveats {
		names = append(names, u.Relationship.Caveat)
	}
	info := &v1.CaveatEvalInfo{
		Expression: strings.Join(names, " || "),
		Result:     caveatResult(n.Membership),
		Context:    structOf(b.reqCtx),
	}
	if n.Membership == check.ConditionalPermission {
		info.PartialCaveatInfo = &v1.PartialCaveatInfo{MissingRequiredContext: n.Missing}
	}
	return info
}

// mergedContext is the context a relationship's caveat saw: the request's values, with the
// relationship's own taking precedence.
func mergedContext(rel, req map[string]any) map[string]any {
	out := make(map[string]any, len(rel)+len(req))
	for k, v := range req {
		out[k] = v
	}
	for k, v := range rel {
		out[k] = v
	}
	return out
}

// structOf is the context as a protobuf Struct, nil when empty or not representable.
func structOf(m map[string]any) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil
	}
	return s
}

func caveatResult(m check.Membership) v1.CaveatEvalInfo_Result {
	switch m {
	case check.HasPermission:
		return v1.CaveatEvalInfo_RESULT_TRUE
	case check.ConditionalPermission:
		return v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT
	default:
		return v1.CaveatEvalInfo_RESULT_FALSE
	}
}

// traceID names one node of a trace, unique within it.
func traceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return hex.EncodeToString(b[:])
}

func traceResult(m check.Membership) v1.CheckDebugTrace_Permissionship {
	switch m {
	case check.HasPermission:
		return v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION
	case check.ConditionalPermission:
		return v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	default:
		return v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION
	}
}

// conditionalCaveats appends the conditional caveat evaluations below n along its conditional
// sub-problems, one per caveat name.
func conditionalCaveats(n *check.TraceNode, out []check.CaveatUse) []check.CaveatUse {
	for _, u := range n.Caveats {
		if u.Membership == check.ConditionalPermission && !hasCaveat(out, u.Relationship.Caveat) {
			out = append(out, u)
		}
	}
	for _, c := range n.Children {
		if c.Membership == check.ConditionalPermission {
			out = conditionalCaveats(c, out)
		}
	}
	return out
}

func hasCaveat(uses []check.CaveatUse, name string) bool {
	for _, u := range uses {
		if u.Relationship.Caveat == name {
			return true
		}
	}
	return false
}
