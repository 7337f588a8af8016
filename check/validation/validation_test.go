package validation

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// directives returns the values of `# name: value` comment lines in a testdata file.
func directives(t *testing.T, path, name string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "# "+name+": "); ok {
			out = append(out, v)
		}
	}
	return out
}

func yamlFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata in %s: %v", dir, err)
	}
	return files
}

// TestLoadInvalid walks testdata/invalid: each file must fail to load with an error that
// contains every `# want-error:` line, file:line included.
func TestLoadInvalid(t *testing.T) {
	for _, path := range yamlFiles(t, "testdata/invalid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			wants := directives(t, path, "want-error")
			if len(wants) == 0 {
				t.Fatal("file has no `# want-error:` line")
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestRun walks testdata/valid: each file must load, run to the `# want:` tally, and report
// exactly the `# want-failure:` lines (each a prefix of one failure's text).
func TestRun(t *testing.T) {
	for _, path := range yamlFiles(t, "testdata/valid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			tally := directives(t, path, "want")
			if len(tally) != 1 {
				t.Fatal("file needs exactly one `# want:` line")
			}
			f, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			rep, err := Run(context.Background(), f, RunOptions{})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			var got []string
			for _, fl := range rep.Failures {
				got = append(got, fl.String())
			}
			if rep.TallyLine() != tally[0] {
				t.Errorf("tally = %q, want %q; failures:\n%s", rep.TallyLine(), tally[0], strings.Join(got, "\n"))
			}
			wantFailures := directives(t, path, "want-failure")
			if len(wantFailures) != len(got) {
				t.Errorf("got %d failures, want %d:\n%s", len(got), len(wantFailures), strings.Join(got, "\n"))
			}
			for _, w := range wantFailures {
				found := false
				for _, g := range got {
					// got starts with the path as given to Load.
					if strings.HasPrefix(g, filepath.Join(filepath.Dir(path), w)) {
						found = true
					}
				}
				if !found {
					t.Errorf("no failure starts with %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

// TestParseBasic checks the parsed form of testdata/valid/basic.yaml in detail.
func TestParseBasic(t *testing.T) {
	f, err := Load("testdata/valid/basic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Docs) != 2 {
		t.Fatalf("got %d documents, want 2", len(f.Docs))
	}
	d := f.Docs[0]
	if d.SchemaPos != 4 || !strings.HasPrefix(d.Schema, "use expiration\n\ndefinition user {}\n\ncaveat only_on_tuesday") {
		t.Errorf("schema at line %d = %q", d.SchemaPos, d.Schema)
	}
	if len(d.Relationships) != 7 {
		t.Fatalf("got %d relationships, want 7", len(d.Relationships))
	}
	first := d.Relationships[0]
	if first.Line != 24 || first.Text != "group:eng#member@user:tom" {
		t.Errorf("first relationship = line %d %q, want line 24", first.Line, first.Text)
	}
	if r := d.Relationships[3].Value; r.SubjectID != "fred" || r.SubjectRelation != "" {
		t.Errorf("`#...` subject = %+v, want plain user:fred", r)
	}
	if last := d.Relationships[6]; last.Line != 30 || last.Value.Expiration.Year() != 2099 {
		t.Errorf("last relationship = line %d %+v", last.Line, last.Value)
	}

	if len(d.Assertions) != 8 {
		t.Fatalf("got %d assertions, want 8", len(d.Assertions))
	}
	a := d.Assertions[1]
	wantReq := check.Request{ResourceType: "document", ResourceID: "1", Permission: "view", SubjectType: "user", SubjectID: "sarah",
		Context: map[string]any{"day": "tuesday"}}
	if a.Kind != AssertTrue || a.Line != 34 || !reflect.DeepEqual(a.Request, wantReq) {
		t.Errorf("assertion = %+v, want assertTrue at line 34 with %+v", a, wantReq)
	}
	if c := d.Assertions[7]; c.Kind != AssertCaveated || c.Text != "document:1#view@user:sarah" {
		t.Errorf("last assertion = %+v", c)
	}

	if len(d.ExpectedRelations) != 2 {
		t.Fatalf("got %d expected relations, want 2", len(d.ExpectedRelations))
	}
	er := d.ExpectedRelations[0]
	if er.Resource != (ObjectRef{"document", "1", "view"}) || er.Line != 44 || len(er.Subjects) != 4 {
		t.Errorf("expected relation = %+v", er)
	}
	if s := er.Subjects[1]; s.Subject != (ObjectRef{Type: "user", ID: "sarah"}) || !s.Caveated ||
		!reflect.DeepEqual(s.Via, []ObjectRef{{"document", "1", "viewer"}}) {
		t.Errorf("caveated subject = %+v", s)
	}
	pub := d.ExpectedRelations[1].Subjects[0]
	if pub.Subject.ID != store.Wildcard || len(pub.Excluded) != 0 {
		t.Errorf("wildcard subject = %+v", pub)
	}

	d2 := f.Docs[1]
	if d2.Line != 53 || d2.SchemaPos != 54 || len(d2.Relationships) != 1 || d2.Relationships[0].Line != 60 {
		t.Errorf("second document: line %d, schema at %d, relationships %+v", d2.Line, d2.SchemaPos, d2.Relationships)
	}
}

func TestParseExpectedSubject(t *testing.T) {
	tests := []struct {
		in   string
		want ExpectedSubject
		err  string
	}{
		{in: "[user:tom] is <document:1#viewer>/<document:1#editor>", want: ExpectedSubject{
			Subject: ObjectRef{Type: "user", ID: "tom"}, Via: []ObjectRef{{"document", "1", "viewer"}, {"document", "1", "editor"}}}},
		{in: "[group:eng#member] is <document:1#viewer>", want: ExpectedSubject{
			Subject: ObjectRef{"group", "eng", "member"}, Via: []ObjectRef{{"document", "1", "viewer"}}}},
		{in: "[user:tom#...]", want: ExpectedSubject{Subject: ObjectRef{Type: "user", ID: "tom"}}},
		{in: "[user:* - {user:fred[c]}] is <document:1#viewer>", want: ExpectedSubject{
			Subject: ObjectRef{Type: "user", ID: "*"}, Excluded: []ObjectRef{{Type: "user", ID: "fred"}}, Via: []ObjectRef{{"document", "1", "viewer"}}}},
		{in: "user:tom is <document:1#viewer>", err: "expected `[subject] is"},
		{in: "[user:tom is <document:1#viewer>", err: "not closed"},
		{in: "[user:tom] was <document:1#viewer>", err: "expected `is <resource:id#relation>`"},
		{in: "[user:tom] is <document:1>", err: "needs a relation"},
		{in: "[user:* - user:fred] is <document:1#viewer>", err: "must be written `{type:id, ...}`"},
		{in: "[tom] is <document:1#viewer>", err: "is not `type:id`"},
	}
	for _, tt := range tests {
		got, err := parseExpectedSubject(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseExpectedSubject(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		tt.want.Text = tt.in
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseExpectedSubject(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseAssertion(t *testing.T) {
	tests := []struct {
		in   string
		want check.Request
		err  string
	}{
		{in: "document:1#view@group:eng#member", want: check.Request{ResourceType: "document", ResourceID: "1", Permission: "view",
			SubjectType: "group", SubjectID: "eng", SubjectRelation: "member"}},
		{in: ` doc:1#view@user:tom#... with {"a": [1, "x"]} `, want: check.Request{ResourceType: "doc", ResourceID: "1", Permission: "view",
			SubjectType: "user", SubjectID: "tom", Context: map[string]any{"a": []any{float64(1), "x"}}}},
		{in: "doc:1#view@user:tom[c]", err: "an assertion takes no caveat"},
		{in: "doc:1#view@user:tom extra", err: `unexpected " extra"`},
		{in: `doc:1#view@user:tom with {"a": 1} {}`, err: "unexpected text after the caveat context"},
		{in: `doc:1#view@user:tom with null`, err: "not a JSON object"},
		{in: `doc:1#view@user:tom with [1]`, err: "not a JSON object"},
	}
	for _, tt := range tests {
		got, err := parseAssertion(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseAssertion(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseAssertion(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestTallyLine(t *testing.T) {
	r := &Report{Passed: 3, Failed: 1, Pending: 2}
	r.Merge(&Report{Passed: 1, Failures: []Failure{{File: "a.yaml", Line: 7, Text: "assertTrue document:1#view@user:tom", Got: "no permission"}}})
	if got, want := r.TallyLine(), "4 passed, 1 failed, 2 skipped"; got != want {
		t.Errorf("TallyLine() = %q, want %q", got, want)
	}
	if got, want := r.Failures[0].String(), "a.yaml:7: assertTrue document:1#view@user:tom: got no permission"; got != want {
		t.Errorf("Failure.String() = %q, want %q", got, want)
	}
}
