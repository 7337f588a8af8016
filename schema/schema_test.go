package schema

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// stripPositions zeroes every Pos in s, in place, so that schemas parsed from different text
// can be compared with reflect.DeepEqual. KeywordLimits too: it says how the source spelled
// its limits, which generated text always spells as doc comment lines.
func stripPositions(s *Schema) *Schema {
	s.KeywordLimits = false
	for _, c := range s.Caveats {
		c.Pos = Position{}
	}
	for _, ns := range s.Namespaces {
		ns.Pos = Position{}
		for _, r := range ns.Relations {
			r.Pos = Position{}
			for _, a := range r.AllowedSubjects {
				a.Pos = Position{}
			}
			stripRewrite(r.Rewrite)
		}
	}
	return s
}

func stripRewrite(rw *Rewrite) {
	if rw == nil {
		return
	}
	rw.Pos = Position{}
	for _, c := range rw.Children {
		stripRewrite(c)
	}
}

// assertRoundTrip checks that s generates text that parses back to s and that generation is
// a fixed point. It strips the positions of s.
func assertRoundTrip(t testing.TB, s *Schema) {
	t.Helper()
	text := s.Generate()
	again, err := Parse(text)
	if err != nil {
		t.Fatalf("generated schema does not parse: %v\n%s", err, text)
	}
	if text2 := again.Generate(); text2 != text {
		t.Fatalf("Generate is not a fixed point:\nfirst:\n%s\nsecond:\n%s", text, text2)
	}
	if !reflect.DeepEqual(stripPositions(s), stripPositions(again)) {
		t.Fatalf("round trip changed the schema; generated text:\n%s", text)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/valid/*.golden and testdata/invalid/*.errors")

// TestValid walks testdata/valid: each *.zed must parse, round-trip through Generate, and
// generate exactly its sibling *.golden.
func TestValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.zed")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/valid/*.zed files (%v)", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(string(src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkGolden(t, strings.TrimSuffix(path, ".zed")+".golden", s.Generate())
			assertRoundTrip(t, s)
		})
	}
}

// TestInvalid walks testdata/invalid: each *.zed must fail to parse with exactly the errors,
// one "line:column: message" per line, in its sibling *.errors file.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.zed")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/invalid/*.zed files (%v)", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(string(src))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors; generated:\n%s", s.Generate())
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse error %T is not an ErrorList: %v", err, err)
			}
			var got strings.Builder
			for _, e := range list {
				got.WriteString(e.Error() + "\n")
			}
			checkGolden(t, strings.TrimSuffix(path, ".zed")+".errors", got.String())
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch:\n--- got\n%s--- want\n%s", path, got, want)
	}
}
