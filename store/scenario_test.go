package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestScenarios runs the datadriven scripts in testdata/*.txt (github.com/cockroachdb/datadriven),
// each on a fresh in-memory store. A block is
//
//	command [key=value ...]
//	input lines
//	----
//	expected output
//
// and `#` starts a comment line; `go test ./store -run TestScenarios -rewrite` rewrites the
// expected output from what the store does. Commands:
//
//	schema                       input: schema text; output: `ok` or the error
//	write [at=T]                 input: `create|touch|delete <relationship>` and
//	                             `must-match|must-not-match <filter>`; output `rev N` or the error
//	delete [limit=N] [partial] [at=T]  input: `filter <filter>`, preconditions; output `rev N deleted D [partial]`
//	read [rev=N]                 input: filters (empty = everything); output the relationships
//	subjects-of-type|resources [rev=N]  input: `resType:resID#relation subjType[#subjRel]` or
//	                             `subjType:subjID[#subjRel] resType[#relation]`
//	(schema, write and delete take rev=N to force a revision)
//	gc now=T                     output: `horizon H removed N`
//	reader rev=N                 output: `ok` or the error
//
// Each write and schema takes the next revision; its time defaults to base + rev minutes.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true, GCInterval: -1, Retention: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			datadriven.RunTest(t, file, func(t *testing.T, td *datadriven.TestData) string {
				return runBlock(t, s, newBlock(td))
			})
		})
	}
}

var scenarioBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// block is one datadriven directive, in the form runBlock reads.
type block struct {
	pos   string
	cmd   string
	args  map[string]string
	input []string
}

func newBlock(td *datadriven.TestData) *block {
	b := &block{pos: td.Pos, cmd: td.Cmd, args: make(map[string]string, len(td.CmdArgs))}
	for _, a := range td.CmdArgs {
		b.args[a.Key] = strings.Join(a.Vals, ",")
	}
	if td.Input != "" {
		b.input = strings.Split(td.Input, "\n")
	}
	return b
}

func argTime(t *testing.T, b *block, key string, rev Revision) time.Time {
	v, ok := b.args[key]
	if !ok {
		return scenarioBase.Add(time.Duration(rev) * time.Minute)
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", b.pos, key, v, err)
	}
	return at
}

func argRev(t *testing.T, b *block) Revision {
	v, ok := b.args["rev"]
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s: rev=%q: %v", b.pos, v, err)
	}
	return Revision(n)
}

func runBlock(t *testing.T, s *Store, b *block) string {
	rev := s.Revision() + 1
	if b.cmd == "schema" || b.cmd == "write" || b.cmd == "delete" {
		if r := argRev(t, b); r != 0 {
			rev = r
		}
	}
	switch b.cmd {
	case "schema":
		if err := s.WriteSchema(Entry{Index: rev}, argTime(t, b, "at", rev), strings.Join(b.input, "\n")); err != nil {
			return err.Error()
		}
		return "ok"
	case "write", "delete":
		batch := &Batch{}
		for i, line := range b.input {
			verb, arg, _ := strings.Cut(line, " ")
			switch verb {
			case "create", "touch", "delete":
				rel, err := ParseRelationship(arg)
				if err != nil {
					t.Fatalf("%s: input line %d: %v", b.pos, i+1, err)
				}
				op := map[string]Op{"create": OpCreate, "touch": OpTouch, "delete": OpDelete}[verb]
				batch.Updates = append(batch.Updates, Update{Op: op, Relationship: rel})
			case "must-match", "must-not-match":
				op := MustMatch
				if verb == "must-not-match" {
					op = MustNotMatch
				}
				batch.Preconditions = append(batch.Preconditions, Precondition{Op: op, Filter: parseFilter(t, arg)})
			case "filter":
				f := parseFilter(t, arg)
				batch.DeleteFilter = &f
			default:
				t.Fatalf("%s: input line %d: unknown verb %q", b.pos, i+1, verb)
			}
		}
		if v, ok := b.args["limit"]; ok {
			batch.DeleteLimit, _ = strconv.Atoi(v)
		}
		_, batch.AllowPartialDeletions = b.args["partial"]
		res, err := s.Apply(Entry{Index: rev}, argTime(t, b, "at", rev), batch)
		if err != nil {
			if s.Revision() != rev && !errors.Is(err, ErrStaleRevision) {
				t.Errorf("%s: a refused batch left the revision at %d, want %d", b.pos, s.Revision(), rev)
			}
			return err.Error()
		}
		out := fmt.Sprintf("rev %d", res.Revision)
		if b.cmd == "delete" {
			out += fmt.Sprintf(" deleted %d", res.Deleted)
			if res.Partial {
				out += " partial"
			}
		}
		return out
	case "read", "subjects-of-type", "resources":
		r, err := s.Reader(argRev(t, b))
		if err != nil {
			return err.Error()
		}
		defer r.Close()
		var lines []string
		collect := func(rel *Relationship) bool { lines = append(lines, rel.String()); return true }
		inputs := b.input
		if len(inputs) == 0 {
			inputs = []string{""}
		}
		for _, in := range inputs {
			switch b.cmd {
			case "read":
				f := Filter{}
				if in != "" {
					f = parseFilter(t, in)
				}
				err = r.Query(f, nil, 0, collect)
			case "subjects-of-type":
				obj, subj, _ := strings.Cut(in, " ")
				f := parseFilter(t, obj)
				st, sr, _ := strings.Cut(subj, "#")
				err = r.SubjectsOfType(f.ResourceType, f.ResourceID, f.Relation, st, sr, collect)
			case "resources":
				subj, res, _ := strings.Cut(in, " ")
				sf := parseFilter(t, subj)
				rt, rr, _ := strings.Cut(res, "#")
				err = r.Resources(sf.ResourceType, sf.ResourceID, sf.Relation, rt, rr, collect)
			}
			if err != nil {
				return err.Error()
			}
		}
		if len(lines) == 0 {
			return "(none)"
		}
		return strings.Join(lines, "\n")
	case "reader":
		r, err := s.Reader(argRev(t, b))
		if err != nil {
			return err.Error()
		}
		r.Close()
		return "ok"
	case "gc":
		n, err := s.CollectGarbage(argTime(t, b, "now", rev))
		if err != nil {
			return err.Error()
		}
		return fmt.Sprintf("horizon %d removed %d", s.Stats().OldestRetained, n)
	}
	t.Fatalf("%s: unknown command %q", b.pos, b.cmd)
	return ""
}

// parseFilter reads `resType[:resID|:prefix*][#relation][@subjType[:subjID][#subjRel]]`.
func parseFilter(t *testing.T, s string) Filter {
	var f Filter
	res, subj, hasSubj := strings.Cut(s, "@")
	res, f.Relation, _ = strings.Cut(res, "#")
	f.ResourceType, f.ResourceID, _ = strings.Cut(res, ":")
	if strings.HasSuffix(f.ResourceID, "*") && f.ResourceID != "*" {
		f.ResourceIDPrefix, f.ResourceID = strings.TrimSuffix(f.ResourceID, "*"), ""
	}
	if hasSubj {
		sf := &SubjectFilter{}
		var rel string
		subj, rel, sf.RelationSet = strings.Cut(subj, "#")
		sf.Relation = rel
		sf.Type, sf.ID, _ = strings.Cut(subj, ":")
		f.Subject = sf
	}
	return f
}
