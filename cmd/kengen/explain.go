package main

import (
	"fmt"
	"io"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// writeTrace prints a check's debug trace (SpiceDB's shape: one node per relation or
// permission on one object) as an indented tree, as zed's --explain does: ✓ has permission, ✗
// no permission, ? conditional; each node's kind, "cached" for an answer reused within the
// request, the caveat a node evaluated with its answer, and under a node that holds by its
// own relationships the subject.
func writeTrace(w io.Writer, t *v1.CheckDebugTrace, depth int) {
	if t == nil {
		return
	}
	mark := "✗"
	switch t.GetResult() {
	case v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION:
		mark = "✓"
	case v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		mark = "?"
	}
	line := strings.Repeat("  ", depth) + mark
	if t.GetResource() != nil {
		line += " " + formatObject(t.GetResource()) + "#" + t.GetPermission()
	}
	switch t.GetPermissionType() {
	case v1.CheckDebugTrace_PERMISSION_TYPE_PERMISSION:
		line += " (permission)"
	case v1.CheckDebugTrace_PERMISSION_TYPE_RELATION:
		line += " (relation)"
	}
	if t.GetWasCachedResult() {
		line += " cached"
	}
	if ci := t.GetCaveatEvaluationInfo(); ci != nil {
		if ci.GetCaveatName() != "" {
			line += fmt.Sprintf(" [caveat %s: %s]", ci.GetCaveatName(), strings.ToLower(strings.TrimPrefix(ci.GetResult().String(), "RESULT_")))
		}
		if missing := ci.GetPartialCaveatInfo().GetMissingRequiredContext(); len(missing) > 0 {
			line += " (missing " + strings.Join(missing, ", ") + ")"
		}
	}
	fmt.Fprintln(w, line)
	subs := t.GetSubProblems().GetTraces()
	for _, sub := range subs {
		writeTrace(w, sub, depth+1)
	}
	if len(subs) == 0 && !t.GetWasCachedResult() && t.GetResult() == v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION {
		s := formatObject(t.GetSubject().GetObject())
		if r := t.GetSubject().GetOptionalRelation(); r != "" {
			s += "#" + r
		}
		fmt.Fprintln(w, strings.Repeat("  ", depth+1)+s)
	}
}
