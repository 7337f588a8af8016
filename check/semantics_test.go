package check_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// TestSemantics runs the fixtures in testdata/*.txt (github.com/cockroachdb/datadriven), each
// on a fresh in-memory store: what the check engine answers, written as a reader would ask it.
// `go test ./check -run TestSemantics -rewrite` rewrites the expected output from what the
// engine answers (read the diff before committing it). Directives:
//
//	schema                   input: the schema; output `ok` or the error
//	write                    input: relationships to touch, one a line; output `ok` or the error
//	check [options]          input: `res:id#perm@subj:id[#rel] [with {json context}]`, one a
//	                         line, each a Check of its own; output each line with its answer
//	bulk [options]           the same input as one CheckBulk call, in order
//	expand                   input: `res:id#perm`; output the userset tree, or the error
//	lookup-subjects          input: `res:id#perm [subjType[#rel]]` (no type: every type);
//	                         output the subjects, one a line (`user:* - [fred]` for a wildcard
//	                         with exclusions), or the error
//	lookup-resources         input: `resType#perm subj:id[#rel]`; output the ids, or the error
//
// Options (every directive gets a new Checker): noindex, concurrency=N, fanout=N, maxdepth=N.
func TestSemantics(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		st, err := store.Open("", store.Options{InMemory: true, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return runDirective(t, st, td)
		})
	})
}

func runDirective(t *testing.T, st *store.Store, td *datadriven.TestData) string {
	switch td.Cmd {
	case "schema":
		if err := st.WriteSchema(store.Entry{Index: st.Revision() + 1}, time.Now(), td.Input); err != nil {
			return "error: " + err.Error() + "\n"
		}
		return "ok\n"
	case "write":
		var updates []store.Update
		for _, line := range inputLines(td) {
			r, err := store.ParseRelationship(line)
			if err != nil {
				td.Fatalf(t, "%s: %v", line, err)
			}
			updates = append(updates, store.Update{Op: store.OpTouch, Relationship: r})
		}
		if _, err := st.Apply(store.Entry{Index: st.Revision() + 1}, time.Now(), &store.Batch{Updates: updates}); err != nil {
			return "error: " + err.Error() + "\n"
		}
		return "ok\n"
	}

	c := check.New(checkerOptions(t, td))
	r, err := st.Reader(0)
	if err != nil {
		td.Fatalf(t, "%v", err)
	}
	defer r.Close()
	ctx := context.Background()
	var out strings.Builder
	switch td.Cmd {
	case "check", "bulk":
		lines := inputLines(td)
		reqs := make([]check.Request, len(lines))
		for i, line := range lines {
			reqs[i] = parseCheckLine(t, td, line)
		}
		var results []check.BulkResult
		if td.Cmd == "bulk" {
			results = c.CheckBulk(ctx, r, reqs)
		} else {
			for _, req := range reqs {
				res, err := c.Check(ctx, r, req)
				results = append(results, check.BulkResult{Result: res, Err: err})
			}
		}
		for i, res := range results {
			fmt.Fprintf(&out, "%s: %s\n", lines[i], answerText(res))
		}
	case "expand":
		for _, line := range inputLines(td) {
			obj, perm, _ := strings.Cut(line, "#")
			typ, id, _ := strings.Cut(obj, ":")
			tree, err := c.Expand(ctx, r, typ, id, perm)
			if err != nil {
				fmt.Fprintf(&out, "%s: error: %v\n", line, err)
				continue
			}
			out.WriteString(renderTree(tree, ""))
		}
	case "lookup-subjects":
		for _, line := range inputLines(td) {
			target, kind, _ := strings.Cut(line, " ")
			obj, perm, _ := strings.Cut(target, "#")
			typ, id, _ := strings.Cut(obj, ":")
			subjType, subjRel, _ := strings.Cut(kind, "#")
			found, err := c.LookupSubjects(ctx, r, check.SubjectsRequest{ResourceType: typ, ResourceID: id, Permission: perm, SubjectType: subjType, SubjectRelation: subjRel})
			fmt.Fprintf(&out, "%s:\n", line)
			if err != nil {
				fmt.Fprintf(&out, "  error: %v\n", err)
				continue
			}
			for _, s := range subjectStrings(found) {
				fmt.Fprintf(&out, "  %s\n", s)
			}
		}
	case "lookup-resources":
		for _, line := range inputLines(td) {
			target, subj, _ := strings.Cut(line, " ")
			typ, perm, _ := strings.Cut(target, "#")
			subjObj, subjRel, _ := strings.Cut(subj, "#")
			subjType, subjID, _ := strings.Cut(subjObj, ":")
			found, err := c.LookupResources(ctx, r, check.ResourcesRequest{ResourceType: typ, Permission: perm, SubjectType: subjType, SubjectID: subjID, SubjectRelation: subjRel})
			fmt.Fprintf(&out, "%s:\n", line)
			if err != nil {
				fmt.Fprintf(&out, "  error: %v\n", err)
				continue
			}
			for _, fr := range found {
				fmt.Fprintf(&out, "  %s %s", fr.ID, fr.Membership)
				if len(fr.MissingParams) > 0 {
					fmt.Fprintf(&out, " %v", fr.MissingParams)
				}
				out.WriteString("\n")
			}
		}
	default:
		td.Fatalf(t, "unknown directive %q", td.Cmd)
	}
	return out.String()
}

func inputLines(td *datadriven.TestData) []string {
	var out []string
	for _, line := range strings.Split(td.Input, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func checkerOptions(t *testing.T, td *datadriven.TestData) check.Options {
	var opts check.Options
	for _, a := range td.CmdArgs {
		var n int
		if len(a.Vals) == 1 {
			if _, err := fmt.Sscan(a.Vals[0], &n); err != nil {
				td.Fatalf(t, "%s: %v", a.Key, err)
			}
		}
		switch a.Key {
		case "noindex":
			opts.NoIndex = true
		case "concurrency":
			opts.Concurrency = n
		case "fanout":
			opts.FanOut = n
		case "maxdepth":
			opts.MaxDepth = n
		default:
			td.Fatalf(t, "unknown option %q", a.Key)
		}
	}
	return opts
}

// parseCheckLine reads `res:id#perm@subj:id[#rel] [with {json}]`, leaving any part empty
// when it is missing, so that a fixture can ask malformed questions too.
func parseCheckLine(t *testing.T, td *datadriven.TestData, line string) check.Request {
	q, ctxJSON, hasCtx := strings.Cut(line, " with ")
	res, subj, _ := strings.Cut(q, "@")
	resObj, perm, _ := strings.Cut(res, "#")
	subjObj, subjRel, _ := strings.Cut(subj, "#")
	req := check.Request{Permission: perm, SubjectRelation: subjRel}
	req.ResourceType, req.ResourceID, _ = strings.Cut(resObj, ":")
	req.SubjectType, req.SubjectID, _ = strings.Cut(subjObj, ":")
	if hasCtx {
		if err := json.Unmarshal([]byte(ctxJSON), &req.Context); err != nil {
			td.Fatalf(t, "%s: context: %v", line, err)
		}
	}
	return req
}

func answerText(res check.BulkResult) string {
	if res.Err != nil {
		return "error: " + res.Err.Error()
	}
	text := res.Result.Membership.String()
	if len(res.Result.MissingParams) > 0 {
		text += fmt.Sprintf(" %v", res.Result.MissingParams)
	}
	return text
}
