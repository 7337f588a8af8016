package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestScenarios walks testdata/*.txt. Each file is a script of blocks:
//
//	command [key=value ...]
//	input lines
//	----
//	expected output lines
//
// separated by blank lines; `#` starts a comment line. Commands:
//
//	schema                       input: schema text; output: `ok` or the error
//	write [at=T]                 input: `create|touch|delete <relationship>` and
//	                             `must-match|must-not-match <filter>`; output `rev N` or the error
//	delete [limit=N] [partial] [at=T]  input: one filter, preconditions; output `rev N deleted D [partial]`
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
			runScenario(t, file)
		})
	}
}

var scenarioBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type block struct {
	line     int
	cmd      string
	args     map[string]string
	input    []string
	expected []string
}

func readBlocks(t *testing.T, file string) []block {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []block
	var cur *block
	inExpected := false
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && (strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#")):
		case cur == nil:
			fields := strings.Fields(line)
			cur = &block{line: n, cmd: fields[0], args: map[string]string{}}
			for _, a := range fields[1:] {
				k, v, _ := strings.Cut(a, "=")
				cur.args[k] = v
			}
		case line == "----":
			inExpected = true
		case inExpected && strings.TrimSpace(line) == "":
			out = append(out, *cur)
			cur, inExpected = nil, false
		case inExpected:
			cur.expected = append(cur.expected, line)
		default:
			cur.input = append(cur.input, line)
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

func runScenario(t *testing.T, file string) {
	s, err := Open("db", Options{FS: vfs.NewMem(), NoSync: true, GCInterval: -1, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, b := range readBlocks(t, file) {
		got := runBlock(t, s, &b)
		if got != strings.Join(b.expected, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, b.line, b.cmd, got, strings.Join(b.expected, "\n"))
		}
	}
}

func argTime(t *testing.T, b *block, key string, rev Revision) time.Time {
	v, ok := b.args[key]
	if !ok {
		return scenarioBase.Add(time.Duration(rev) * time.Minute)
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t.Fatalf("line %d: %s=%q: %v", b.line, key, v, err)
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
		t.Fatalf("line %d: rev=%q: %v", b.line, v, err)
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
					t.Fatalf("line %d: %v", b.line+i+1, err)
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
				t.Fatalf("line %d: unknown verb %q", b.line+i+1, verb)
			}
		}
		if v, ok := b.args["limit"]; ok {
			batch.DeleteLimit, _ = strconv.Atoi(v)
		}
		_, batch.AllowPartialDeletions = b.args["partial"]
		res, err := s.Apply(Entry{Index: rev}, argTime(t, b, "at", rev), batch)
		if err != nil {
			if s.Revision() != rev && !errors.Is(err, ErrStaleRevision) {
				t.Errorf("line %d: a refused batch left the revision at %d, want %d", b.line, s.Revision(), rev)
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
	t.Fatalf("line %d: unknown command %q", b.line, b.cmd)
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
