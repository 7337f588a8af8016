package validation

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// conformanceDir returns ../shared/conformance/<sub> beside the module root, or skips the
// test saying where it looked.
func conformanceDir(t *testing.T, sub string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("conformance data: no go.mod above the test's directory")
		}
		dir = parent
	}
	want := filepath.Join(dir, "..", "shared", "conformance", sub)
	if _, err := os.Stat(want); err != nil {
		t.Skipf("conformance data not found at %s (it sits beside the module root)", want)
	}
	return want
}

// TestConformanceSpiceDB runs every SpiceDB integration-test file: each failing assertion is
// an error, and so is each expected-relation block whose membership set differs.
func TestConformanceSpiceDB(t *testing.T) {
	dir := conformanceDir(t, "spicedb")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files in %s: %v", dir, err)
	}
	total := &Report{}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				total.Failed++
				t.Fatalf("Load: %v", err)
			}
			rep, err := Run(context.Background(), f, RunOptions{})
			if err != nil {
				total.Failed++
				t.Fatalf("Run: %v", err)
			}
			total.Merge(rep)
			for _, fl := range rep.Failures {
				t.Errorf("%s", fl)
			}
			for _, p := range rep.Pendings {
				t.Logf("%s", p)
			}
		})
	}
	t.Log(total.TallyLine())
	// The tally shows in `go test` output without -v.
	fmt.Printf("conformance: %s\n", total.TallyLine())
}

// TestConformanceSpiceDBOneStore runs SpiceDB's files one after another on one store, as a
// user changing schemas over time would: delete every relationship the current schema lets
// them see, write the next schema, its relationships, and assert. Relationships an earlier
// file wrote that have since expired must not keep a later schema from dropping their
// definitions.
func TestConformanceSpiceDBOneStore(t *testing.T) {
	dir := conformanceDir(t, "spicedb")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files in %s: %v", dir, err)
	}
	st, err := store.Open("conformance", store.Options{InMemory: true, NoSync: true, SkipVerify: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := check.New(check.Options{})
	total := &Report{}
	docs := 0
	for _, path := range files {
		f, err := Load(path)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		for _, doc := range f.Docs {
			if err := clearVisible(st); err != nil {
				t.Fatalf("before %s: %v", filepath.Base(path), err)
			}
			rep := &Report{}
			if err := runDocumentOn(context.Background(), c, st, f.Path, doc, rep); err != nil {
				t.Fatalf("%s: %v", filepath.Base(path), err)
			}
			docs++
			total.Merge(rep)
			for _, fl := range rep.Failures {
				t.Errorf("after %d documents: %s", docs-1, fl)
			}
		}
	}
	if total.Passed == 0 {
		t.Fatalf("no assertion ran: %s", total.TallyLine())
	}
	t.Logf("%d documents on one store: %s", docs, total.TallyLine())
}

// TestConformanceValidationFile checks the validation-file format fixtures: the ones SpiceDB
// rejects must fail to load or run with a clear error, the others must load and run clean.
func TestConformanceValidationFile(t *testing.T) {
	dir := conformanceDir(t, "spicedb-validationfile")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files in %s: %v", dir, err)
	}
	// rejected maps the files SpiceDB's own loader tests reject (beyond invalid_* and
	// loader_using_{missing,non-local,invalid}_schemafile) to a substring of our error.
	rejected := map[string]string{
		"invalid_caveat.yaml":                    "some_caveat",
		"invalid_caveated_rel.yaml":              "some_caveat",
		"invalid_caveated_rel_syntax.yaml":       "expected ']' closing the caveat",
		"loader_using_invalid_schemafile.yaml":   "invalid_schemafile.zed",
		"loader_using_missing_schemafile.yaml":   "reading schemaFile",
		"loader_using_non-local_schemafile.yaml": "is not local",
		"legacy.yaml":                            "relationships must be specified in `relationships`",
		"repeated_relationship.yaml":             "found repeated relationship `resource:first#reader@user:tom`",
		"schema_and_schemafile.yaml":             "only one of schema or schemaFile",
		"just_rels.yaml":                         "no schema",
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			want, reject := rejected[name]
			if strings.HasPrefix(name, "invalid_") && !reject {
				t.Fatalf("%s is named invalid_ but the test does not say which error to expect", name)
			}
			msg := loadAndRun(path)
			switch {
			case reject && msg == "":
				t.Errorf("loaded and ran clean, want an error containing %q", want)
			case reject && !strings.Contains(msg, want):
				t.Errorf("error %q does not contain %q", msg, want)
			case !reject && msg != "":
				t.Errorf("want a clean run, got %s", msg)
			}
		})
	}
}

// loadAndRun returns the load error, or the run's failures, or "" for a clean run.
func loadAndRun(path string) string {
	f, err := Load(path)
	if err != nil {
		return err.Error()
	}
	rep, err := Run(context.Background(), f, RunOptions{})
	if err != nil {
		return err.Error()
	}
	var msgs []string
	for _, fl := range rep.Failures {
		msgs = append(msgs, fl.String())
	}
	return strings.Join(msgs, "\n")
}
