package schema

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// conformanceDir holds SpiceDB's own test data (see its NOTICE.md); tests skip without it.
const conformanceDir = "../../shared/conformance"

// conformanceSchemas returns every `schema:` block of the YAML files matching glob, keyed by
// "file#document".
func conformanceSchemas(t testing.TB, glob string) map[string]string {
	t.Helper()
	if _, err := os.Stat(conformanceDir); err != nil {
		t.Skipf("conformance data not found at %s: %v", conformanceDir, err)
	}
	files, err := filepath.Glob(filepath.Join(conformanceDir, glob))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		for i := 0; ; i++ {
			var doc struct {
				Schema string `yaml:"schema"`
			}
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", path, i, err)
			}
			if doc.Schema != "" {
				out[filepath.Base(path)+"#"+strconv.Itoa(i)] = doc.Schema
			}
		}
	}
	return out
}

// TestConformanceSchemas parses every schema in SpiceDB's integration test configurations:
// kengen must accept all of them, and round-trip each through Generate.
func TestConformanceSchemas(t *testing.T) {
	schemas := conformanceSchemas(t, "spicedb/*.yaml")
	if len(schemas) == 0 {
		t.Fatal("no schemas found in the conformance data")
	}
	for name, src := range schemas {
		t.Run(name, func(t *testing.T) {
			s, err := Parse(src)
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, src)
			}
			assertRoundTrip(t, s)
		})
	}
}

// TestConformanceValidationFiles parses the validation-file fixtures. Files named invalid_*
// are deliberately broken; of those, only the ones whose schema itself is wrong must fail.
func TestConformanceValidationFiles(t *testing.T) {
	schemas := conformanceSchemas(t, "spicedb-validationfile/*.yaml")
	zed, err := filepath.Glob(filepath.Join(conformanceDir, "spicedb-validationfile/*.zed"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range zed {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		schemas[filepath.Base(path)] = string(data)
	}
	// The schema errors these fixtures exist to show; the other invalid_* files are broken in
	// their relationships, not their schema.
	wantErr := map[string]string{
		"invalid_caveat.yaml#0":  `unknown caveat "some_caveat"`,
		"invalid_schemafile.zed": "expected `:` after the relation name",
	}
	for name, src := range schemas {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(src)
			want, bad := wantErr[name]
			switch {
			case bad && err == nil:
				t.Fatalf("Parse succeeded, want an error containing %q", want)
			case bad && !strings.Contains(err.Error(), want):
				t.Fatalf("Parse error %q does not contain %q", err, want)
			case !bad && err != nil:
				t.Fatalf("Parse: %v\n%s", err, src)
			}
		})
	}
	for name := range wantErr {
		if _, ok := schemas[name]; !ok {
			t.Errorf("fixture %s not found", name)
		}
	}
}
