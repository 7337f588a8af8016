package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/authzed/authzed-go/pkg/requestmeta"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

const traceSchema = `caveat within(amount int, max int) {
	amount <= max
}

definition user {}

definition group {
	relation member: user | group#member
}

definition folder {
	relation viewer: user
	permission view = viewer
}

definition doc {
	relation parent: folder
	relation viewer: user | user:* | group#member | user with within
	relation editor: user
	relation banned: user
	permission edit = editor & viewer
	permission view = viewer + editor + parent->view
	permission view_unbanned = view - banned
	permission twice = editor + editor
}
`

// renderTrace writes a trace one node a line, indented by depth: the mark zed prints (✓, ⨉,
// ? for missing context), the resource, the permission, its type, "cached" for a cached
// node and the caveat evaluation. It fails t on a node a SpiceDB client could not print:
// no resource or subject, no source of kengen's kind, no operation id, a conditional node
// without its caveat evaluation.
func renderTrace(t *testing.T, n *v1.CheckDebugTrace, depth int, b *strings.Builder) {
	t.Helper()
	if n.GetResource() == nil || n.GetSubject().GetObject() == nil {
		t.Fatalf("trace node without resource or subject: %v", n)
	}
	if !strings.HasPrefix(n.GetSource(), "kengen:") || n.GetTraceOperationId() == "" {
		t.Errorf("trace node %v: source %q, operation id %q", n.GetResource(), n.GetSource(), n.GetTraceOperationId())
	}
	mark := "⨉"
	switch n.GetResult() {
	case v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION:
		mark = "✓"
	case v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		if n.GetCaveatEvaluationInfo() == nil {
			t.Fatalf("conditional trace node %v without caveat evaluation", n.GetResource())
		}
		mark = "?"
	}
	kind := map[v1.CheckDebugTrace_PermissionType]string{
		v1.CheckDebugTrace_PERMISSION_TYPE_PERMISSION: "permission",
		v1.CheckDebugTrace_PERMISSION_TYPE_RELATION:   "relation",
	}[n.GetPermissionType()]
	fmt.Fprintf(b, "%s%s %s:%s %s %s", strings.Repeat("  ", depth), mark, n.GetResource().GetObjectType(), n.GetResource().GetObjectId(), n.GetPermission(), kind)
	if n.GetWasCachedResult() {
		b.WriteString(" cached")
	}
	if ci := n.GetCaveatEvaluationInfo(); ci != nil {
		fmt.Fprintf(b, " {%s %q %s", ci.GetCaveatName(), ci.GetExpression(), strings.TrimPrefix(ci.GetResult().String(), "RESULT_"))
		if ci.GetResult() == v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT {
			fmt.Fprintf(b, " missing %s", strings.Join(ci.GetPartialCaveatInfo().GetMissingRequiredContext(), ","))
		}
		if c := ci.GetContext(); c != nil {
			fmt.Fprintf(b, " %v", c.AsMap())
		}
		b.WriteString("}")
	}
	b.WriteString("\n")
	for _, c := range n.GetSubProblems().GetTraces() {
		renderTrace(t, c, depth+1, b)
	}
}

// TestCheckDebugTrace: the trace of unions, intersections, exclusions, arrows, caveats,
// wildcards, nested groups and a cached sub-problem has SpiceDB's shape, node by node: one
// node per relation or permission on one object, with the schema's own names, set
// operations and arrows folded into their permission's sub-problems.
func TestCheckDebugTrace(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(traceSchema)
	env.touch(
		"doc:1#editor@user:ann", "doc:1#banned@user:ann",
		"doc:1#parent@folder:f", "folder:f#viewer@user:bob",
		"doc:1#viewer@group:eng#member", "group:eng#member@group:core#member", "group:core#member@user:cat",
		"doc:2#viewer@user:*",
		`doc:3#viewer@user:dan[within:{"max":10}]`,
	)
	cases := []struct {
		name, resource, permission, subject string
		context                             map[string]any
		want                                string
	}{
		{"union stops at the first yes", "doc:1", "view", "user:ann", nil, `
✓ doc:1 view permission
  ⨉ doc:1 viewer relation
    ⨉ group:eng member relation
      ⨉ group:core member relation
  ✓ doc:1 editor relation
`},
		{"arrow", "doc:1", "view", "user:bob", nil, `
✓ doc:1 view permission
  ⨉ doc:1 viewer relation
    ⨉ group:eng member relation
      ⨉ group:core member relation
  ⨉ doc:1 editor relation
  ✓ folder:f view permission
    ✓ folder:f viewer relation
`},
		{"nested groups", "doc:1", "view", "user:cat", nil, `
✓ doc:1 view permission
  ✓ doc:1 viewer relation
    ✓ group:eng member relation
      ✓ group:core member relation
`},
		{"intersection", "doc:1", "edit", "user:ann", nil, `
⨉ doc:1 edit permission
  ✓ doc:1 editor relation
  ⨉ doc:1 viewer relation
    ⨉ group:eng member relation
      ⨉ group:core member relation
`},
		{"exclusion", "doc:1", "view_unbanned", "user:ann", nil, `
⨉ doc:1 view_unbanned permission
  ✓ doc:1 view permission
    ⨉ doc:1 viewer relation
      ⨉ group:eng member relation
        ⨉ group:core member relation
    ✓ doc:1 editor relation
  ✓ doc:1 banned relation
`},
		{"wildcard", "doc:2", "view", "user:zoe", nil, `
✓ doc:2 view permission
  ✓ doc:2 viewer relation
`},
		{"cached sub-problem", "doc:2", "twice", "user:zoe", nil, `
⨉ doc:2 twice permission
  ⨉ doc:2 editor relation
  ⨉ doc:2 editor relation cached
`},
		{"caveat true", "doc:3", "view", "user:dan", map[string]any{"amount": 5}, `
✓ doc:3 view permission
  ✓ doc:3 viewer relation {within "amount <= max" TRUE map[amount:5 max:10]}
`},
		{"caveat false", "doc:3", "view", "user:dan", map[string]any{"amount": 50}, `
⨉ doc:3 view permission
  ⨉ doc:3 viewer relation {within "amount <= max" FALSE map[amount:50 max:10]}
  ⨉ doc:3 editor relation
`},
		{"caveat missing context", "doc:3", "view", "user:dan", nil, `
? doc:3 view permission {within "amount <= max" MISSING_SOME_CONTEXT missing amount map[max:10]}
  ? doc:3 viewer relation {within "amount <= max" MISSING_SOME_CONTEXT missing amount map[max:10]}
  ⨉ doc:3 editor relation
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := checkReq(t, tc.resource, tc.permission, tc.subject)
			req.Consistency, req.WithTracing = full(), true
			if tc.context != nil {
				c, err := structpb.NewStruct(tc.context)
				if err != nil {
					t.Fatal(err)
				}
				req.Context = c
			}
			resp, err := env.client.CheckPermission(ctxT(t), req)
			if err != nil {
				t.Fatal(err)
			}
			info := resp.GetDebugTrace()
			if !strings.Contains(info.GetSchemaUsed(), "permission view_unbanned = view - banned") {
				t.Errorf("schema_used %q", info.GetSchemaUsed())
			}
			root := info.GetCheck()
			if root.GetDuration() == nil || root.GetSubject().GetObject().GetObjectId() != strings.TrimPrefix(tc.subject, "user:") {
				t.Errorf("root duration %v, subject %v", root.GetDuration(), root.GetSubject())
			}
			checkTraceDurations(t, root)
			var b strings.Builder
			renderTrace(t, root, 0, &b)
			if got, want := b.String(), strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("trace:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// checkTraceDurations: every sub-problem that was evaluated (it has sub-problems of its own)
// says how long it took, and no sub-problem took longer than the one that asked it.
func checkTraceDurations(t *testing.T, n *v1.CheckDebugTrace) {
	t.Helper()
	subs := n.GetSubProblems().GetTraces()
	if len(subs) > 0 && n.GetDuration() == nil {
		t.Errorf("%s:%s %s has sub-problems but no duration", n.GetResource().GetObjectType(), n.GetResource().GetObjectId(), n.GetPermission())
	}
	for _, c := range subs {
		if c.GetDuration().AsDuration() > n.GetDuration().AsDuration() {
			t.Errorf("%s:%s %s took %v, longer than %s:%s %s, which asked it (%v)",
				c.GetResource().GetObjectType(), c.GetResource().GetObjectId(), c.GetPermission(), c.GetDuration().AsDuration(),
				n.GetResource().GetObjectType(), n.GetResource().GetObjectId(), n.GetPermission(), n.GetDuration().AsDuration())
		}
		checkTraceDurations(t, c)
	}
}

// TestCheckDebugTraceOnRequest: zed asks for the trace with SpiceDB's request header as well
// as with_tracing; the header alone is enough, and without either there is no trace. Bulk
// checks carry a trace per item.
func TestCheckDebugTraceOnRequest(t *testing.T) {
	env := startServer(t, Options{})
	env.writeSchema(traceSchema)
	env.touch("doc:1#editor@user:ann")
	req := checkReq(t, "doc:1", "view", "user:ann")
	req.Consistency = full()
	resp, err := env.client.CheckPermission(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDebugTrace() != nil {
		t.Errorf("a trace nobody asked for: %v", resp.GetDebugTrace())
	}
	ctx := requestmeta.AddRequestHeaders(ctxT(t), requestmeta.RequestDebugInformation)
	resp, err = env.client.CheckPermission(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetDebugTrace().GetCheck().GetPermission(); got != "view" {
		t.Errorf("trace on the debug header: root permission %q, want view", got)
	}
	bulk, err := env.client.CheckBulkPermissions(ctxT(t), &v1.CheckBulkPermissionsRequest{
		Consistency: full(), WithTracing: true,
		Items: []*v1.CheckBulkPermissionsRequestItem{
			{Resource: req.Resource, Permission: "view", Subject: req.Subject},
			{Resource: req.Resource, Permission: "edit", Subject: req.Subject},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"view", "edit"} {
		tr := bulk.GetPairs()[i].GetItem().GetDebugTrace().GetCheck()
		if tr.GetPermission() != want || tr.GetResource().GetObjectId() != "1" || len(tr.GetSubProblems().GetTraces()) == 0 {
			t.Errorf("bulk item %d trace %v", i, tr)
		}
	}
}
