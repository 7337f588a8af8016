package api

import (
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/check"
)

// debugInformation renders a check's explanation as the Authzed debug trace. Each node of the
// explanation becomes a CheckDebugTrace: resource and permission from the node's userset,
// the node's kind (and the relationship it followed, if any) in Source as
// "kengen:<kind>[ <relationship>]", children as sub-problems.
func debugInformation(req check.Request, res check.Result) *v1.DebugInformation {
	subject := &v1.SubjectReference{
		Object:           &v1.ObjectReference{ObjectType: req.SubjectType, ObjectId: req.SubjectID},
		OptionalRelation: req.SubjectRelation,
	}
	var root *v1.CheckDebugTrace
	if res.Explanation != nil {
		root = traceOf(res.Explanation, subject)
	} else {
		root = &v1.CheckDebugTrace{
			Resource:   &v1.ObjectReference{ObjectType: req.ResourceType, ObjectId: req.ResourceID},
			Permission: req.Permission,
			Subject:    subject,
			Result:     traceResult(res.Membership),
			Source:     "kengen:",
		}
	}
	return &v1.DebugInformation{Check: root}
}

func traceOf(e *check.Explanation, subject *v1.SubjectReference) *v1.CheckDebugTrace {
	t := &v1.CheckDebugTrace{Subject: subject, Result: traceResult(e.Membership), Source: "kengen:" + e.Kind}
	if e.Relationship != "" {
		t.Source += " " + e.Relationship
	}
	if typ, rest, ok := strings.Cut(e.Object, ":"); ok {
		id, perm, _ := strings.Cut(rest, "#")
		t.Resource = &v1.ObjectReference{ObjectType: typ, ObjectId: id}
		t.Permission = perm
	}
	switch e.Kind {
	case "relation", "direct", "relationship", "wildcard":
		t.PermissionType = v1.CheckDebugTrace_PERMISSION_TYPE_RELATION
	default:
		t.PermissionType = v1.CheckDebugTrace_PERMISSION_TYPE_PERMISSION
	}
	if len(e.Missing) > 0 {
		t.CaveatEvaluationInfo = &v1.CaveatEvalInfo{
			Result:            v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT,
			PartialCaveatInfo: &v1.PartialCaveatInfo{MissingRequiredContext: e.Missing},
		}
	}
	if e.Kind == "cached" {
		t.Resolution = &v1.CheckDebugTrace_WasCachedResult{WasCachedResult: true}
	} else if len(e.Children) > 0 {
		sub := &v1.CheckDebugTrace_SubProblems{}
		for _, c := range e.Children {
			sub.Traces = append(sub.Traces, traceOf(c, subject))
		}
		t.Resolution = &v1.CheckDebugTrace_SubProblems_{SubProblems: sub}
	}
	return t
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
