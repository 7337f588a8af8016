package main

import (
	"fmt"
	"io"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// writeTrace prints a check's debug trace as an indented tree: ✓ has permission, ✗ no
// permission, ? conditional. A kengen server names each node's kind (union, arrow,
// relationship, ...) in the trace's source as "kengen:<kind>[ <relationship>]".
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
	if kind, ok := strings.CutPrefix(t.GetSource(), "kengen:"); ok && kind != "" {
		line += " " + kind
	}
	if t.GetResource() != nil {
		line += " " + formatObject(t.GetResource()) + "#" + t.GetPermission()
	}
	if missing := t.GetCaveatEvaluationInfo().GetPartialCaveatInfo().GetMissingRequiredContext(); len(missing) > 0 {
		line += " (missing " + strings.Join(missing, ", ") + ")"
	}
	fmt.Fprintln(w, line)
	for _, sub := range t.GetSubProblems().GetTraces() {
		writeTrace(w, sub, depth+1)
	}
}
