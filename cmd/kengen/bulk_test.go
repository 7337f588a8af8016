package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestValidate runs validation files in-process: a clean one exits 0 with the tally, a failing
// one exits 1 and names the failing line.
func TestValidate(t *testing.T) {
	var out, errb strings.Builder
	code := run(context.Background(), []string{"validate", "../../check/validation/testdata/valid/basic.yaml"}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	if code != exitOK || out.String() != "12 passed, 0 failed, 0 skipped\n" {
		t.Errorf("validate basic.yaml: exit %d, %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	code = run(context.Background(), []string{"validate", "../../check/validation/testdata/valid/expected_relations.yaml"}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	if code != exitError || !strings.Contains(out.String(), "expected_relations.yaml:51: validation document:2#view: got unexpected [user:amy]") ||
		!strings.HasSuffix(out.String(), "5 passed, 1 failed, 0 skipped\n") {
		t.Errorf("validate expected_relations.yaml: exit %d, %q", code, out.String())
	}
	code = run(context.Background(), []string{"validate", "no-such-file.yaml"}, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	if code != exitError || !strings.Contains(errb.String(), "no-such-file.yaml") {
		t.Errorf("validate a missing file: exit %d, %q", code, errb.String())
	}
}

// TestImportExportLookup imports a file, exports it back identically, and lists with lookup.
func TestImportExportLookup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kengen-data")
	n := startNode(t, dir)
	n.must(t, dir, "schema", "write", "testdata/crm.zed")

	var lines []string
	for i := range 2500 {
		lines = append(lines, fmt.Sprintf("deal:d%04d#follower@group:eng#member", i))
	}
	lines = append(lines, "deal:x#follower@user:*", "group:eng#member@user:ito")
	file := filepath.Join(t.TempDir(), "rels.txt")
	if err := os.WriteFile(file, []byte("// a comment\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := n.must(t, dir, "import", file); out != "imported 2502 relationships\n" {
		t.Errorf("import: %q", out)
	}
	code, _, errs := n.kengen(t, nil, "--data-dir", dir, "import", file)
	if code != exitError || !strings.Contains(errs, "AlreadyExists") || !strings.Contains(errs, "nothing imported") {
		t.Errorf("import twice: exit %d, %q", code, errs)
	}
	// Streams of 1,000: the second stream meets an existing relationship, so the first
	// stays written and nothing of the second is.
	var more []string
	for i := range 1500 {
		more = append(more, fmt.Sprintf("deal:m%04d#follower@group:eng#member", i))
	}
	more = append(more, lines[0])
	moreFile := filepath.Join(t.TempDir(), "more.txt")
	if err := os.WriteFile(moreFile, []byte(strings.Join(more, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = n.kengen(t, nil, "--data-dir", dir, "import", "--per-stream", "1000", moreFile)
	if code != exitError || !strings.Contains(errs, "1000 relationships imported, up to line 1000; the stream of lines 1001 to 1501 failed and wrote nothing") {
		t.Errorf("import meeting an existing relationship in its second stream: exit %d, %q", code, errs)
	}
	lines = append(lines, more[:1000]...)
	slices.Sort(lines)
	exported := strings.Split(strings.TrimSuffix(n.must(t, dir, "export"), "\n"), "\n")
	if len(exported) != len(lines) || exported[0] != lines[0] || exported[len(exported)-1] != "group:eng#member@user:ito" {
		t.Errorf("export: %d lines, first %q", len(exported), exported[0])
	}

	got := strings.Split(strings.TrimSuffix(n.must(t, dir, "lookup", "resources", "deal", "view", "user:ito"), "\n"), "\n")
	if len(got) != 3501 || got[0] != "deal:d0000" || got[3500] != "deal:x" {
		t.Errorf("lookup resources: %d lines, first %q", len(got), got[0])
	}
	if out := n.must(t, dir, "lookup", "subjects", "deal:d0001", "view", "user"); out != "user:ito\n" {
		t.Errorf("lookup subjects: %q", out)
	}
	if out := n.must(t, dir, "lookup", "subjects", "deal:x", "view", "user"); out != "user:*\n" {
		t.Errorf("lookup subjects with a wildcard: %q", out)
	}
}
