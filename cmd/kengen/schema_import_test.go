package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kengen/kengen/schema"
)

// writeFiles writes files (path → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// composedSchema is a root file that imports from a subdirectory, with a partial, `self` and
// a type annotation.
var composedSchema = map[string]string{
	"root.zed": `use import
use partial
use typechecking

import "defs/people.zed"

definition document {
	relation owner: user
	...viewable
	permission owner_profile: user = owner->view_profile
}
`,
	"defs/people.zed": `use self
use partial

/** a person */
definition user {
	relation manager: user
	permission view_profile = self + manager
}

partial viewable {
	relation viewer: user
	permission view = viewer + owner
}
`,
}

// TestSchemaWriteComposesImports: `kengen schema write` of a file with imports sends the
// composed schema, which is what the server keeps and `schema read` returns; `self` and the
// partial's permission then answer through the server. A bad import fails on the client,
// naming the file, line and column, and writes nothing.
func TestSchemaWriteComposesImports(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, composedSchema)
	root := filepath.Join(src, "root.zed")
	want, err := schema.Compose(os.DirFS(src), "root.zed", composedSchema["root.zed"])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(want, "import") || !strings.Contains(want, "use self") {
		t.Fatalf("composed text:\n%s", want)
	}

	dir := filepath.Join(t.TempDir(), "kengen-data")
	n := startNode(t, dir)
	n.must(t, dir, "schema", "write", root)
	if got := n.must(t, dir, "schema", "read"); got != want {
		t.Errorf("schema read =\n%s\nwant the composed schema\n%s", got, want)
	}
	n.must(t, dir, "relationship", "touch", "user:bob", "manager", "user:alice")
	n.must(t, dir, "relationship", "touch", "document:d1", "owner", "user:bob")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "user:bob", "view_profile", "user:bob"}, "true"},
		{[]string{"check", "user:bob", "view_profile", "user:alice"}, "true"},
		{[]string{"check", "user:alice", "view_profile", "user:bob"}, "false"},
		{[]string{"check", "document:d1", "owner_profile", "user:bob"}, "true"},
		{[]string{"check", "document:d1", "view", "user:bob"}, "true"},
		{[]string{"check", "document:d1", "view", "user:alice"}, "false"},
	} {
		_, got, errs := n.kengen(t, nil, append([]string{"--data-dir", dir}, tt.args...)...)
		if strings.TrimSpace(got) != tt.want {
			t.Errorf("kengen %s = %q %q, want %s", strings.Join(tt.args, " "), got, errs, tt.want)
		}
	}

	writeFiles(t, src, map[string]string{"bad.zed": "use import\nimport \"defs/missing.zed\"\ndefinition thing {}\n"})
	code, out, errs := n.kengen(t, nil, "--data-dir", dir, "schema", "write", filepath.Join(src, "bad.zed"))
	if code == 0 || !strings.Contains(out+errs, `bad.zed:2:1: `+"`import \"defs/missing.zed\"`") {
		t.Errorf("schema write of a bad import: exit %d\n%s%s", code, out, errs)
	}
	if got := n.must(t, dir, "schema", "read"); got != want {
		t.Errorf("after a refused write, schema read =\n%s\nwant the earlier schema", got)
	}
}

// TestValidateComposesImports: `kengen validate` composes a schemaFile's imports relative to
// the schema file, and reports a broken import as a failure naming the imported file.
func TestValidateComposesImports(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"schema/ok.yaml": `schemaFile: "root.zed"
relationships: |-
  user:bob#manager@user:alice
  document:d1#owner@user:bob
assertions:
  assertTrue:
    - user:bob#view_profile@user:bob
    - user:bob#view_profile@user:alice
    - document:d1#owner_profile@user:bob
    - document:d1#view@user:bob
  assertFalse:
    - user:alice#view_profile@user:bob
`,
		"broken/broken.yaml": `schemaFile: "root.zed"
relationships: ""
`,
		"broken/root.zed":       "use import\nimport \"parts/user.zed\"\n",
		"broken/parts/user.zed": "definition user {\n\trelation friend: nosuch\n}\n",
	}
	for name, content := range composedSchema {
		files["schema/"+name] = content
	}
	writeFiles(t, dir, files)

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"validate", filepath.Join(dir, "schema/ok.yaml")}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	if code != 0 || !strings.Contains(out.String(), "5 passed, 0 failed") {
		t.Errorf("validate ok.yaml: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run(context.Background(), []string{"validate", filepath.Join(dir, "broken/broken.yaml")}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	wantLine := filepath.Join(dir, "broken", "parts/user.zed") + `:2:19: relation "user#friend": unknown definition "nosuch"`
	if code == 0 || !strings.Contains(out.String(), wantLine) || !strings.Contains(out.String(), "0 passed, 1 failed") {
		t.Errorf("validate broken.yaml: exit %d, want a line %q\n%s%s", code, wantLine, out.String(), errb.String())
	}
}
