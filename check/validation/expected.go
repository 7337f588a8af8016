package validation

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// expectRelation compares an expected-relation block with the membership set LookupSubjects
// finds: every subject, of any type and usersets included, that a relationship on the way
// names, with wildcards and their exclusions, and `[caveat]` marking conditional members.
// The `<...>` paths after `is` are not compared. It returns nil when they agree.
func expectRelation(ctx context.Context, c *check.Checker, rd *store.Reader, path string, er ExpectedRelation) *Failure {
	text := "validation " + er.Resource.String()
	found, err := c.LookupSubjects(ctx, rd, check.SubjectsRequest{
		ResourceType: er.Resource.Type, ResourceID: er.Resource.ID, Permission: er.Resource.Relation})
	if err != nil {
		return &Failure{File: path, Line: er.Line, Text: text, Got: "error: " + err.Error()}
	}
	got := make(map[string]bool, len(found))
	for _, s := range found {
		got[foundText(s)] = true
	}
	want := make(map[string]int, len(er.Subjects))
	for _, es := range er.Subjects {
		want[expectedText(es)] = es.Line
	}
	var missing, unexpected []string
	line := er.Line
	for w, l := range want {
		if !got[w] {
			missing = append(missing, w)
			if line == er.Line || l < line {
				line = l
			}
		}
	}
	for g := range got {
		if _, ok := want[g]; !ok {
			unexpected = append(unexpected, g)
		}
	}
	if len(missing) == 0 && len(unexpected) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	if len(unexpected) > 0 {
		parts = append(parts, "unexpected "+strings.Join(unexpected, ", "))
	}
	all := make([]string, 0, len(found))
	for _, s := range found {
		all = append(all, foundText(s))
	}
	return &Failure{File: path, Line: line, Text: text, Got: strings.Join(parts, "; "), Want: strings.Join(all, ", ")}
}

// foundText and expectedText write a subject alike: `[type:id#rel[caveated] - {type:id, ...}]`.
func foundText(s check.FoundSubject) string {
	ref := ObjectRef{Type: s.Type, ID: s.ID, Relation: s.Relation}
	var excl []string
	for _, id := range s.Excluded {
		excl = append(excl, s.Type+":"+id)
	}
	return subjectText(ref, s.Membership == check.ConditionalPermission, excl)
}

func expectedText(es ExpectedSubject) string {
	var excl []string
	for _, x := range es.Excluded {
		excl = append(excl, x.String())
	}
	sort.Strings(excl)
	return subjectText(es.Subject, es.Caveated, excl)
}

func subjectText(ref ObjectRef, caveated bool, excluded []string) string {
	var b strings.Builder
	b.WriteString("[" + ref.String())
	if caveated {
		b.WriteString("[...]")
	}
	if len(excluded) > 0 {
		fmt.Fprintf(&b, " - {%s}", strings.Join(excluded, ", "))
	}
	b.WriteString("]")
	return b.String()
}
