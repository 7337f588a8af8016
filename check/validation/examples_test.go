package validation_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kengen/kengen/check/validation"
)

// examplesDir holds the CRM permission models users copy to start their own schemas.
const examplesDir = "../../schema/examples"

// minExampleAssertions is how many assertions each example must pass: enough to show both
// what a model grants and what it withholds.
const minExampleAssertions = 12

// TestExamples runs every validation file in schema/examples: each must load, and every
// assertion in it must hold.
func TestExamples(t *testing.T) {
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatalf("reading %s: %v", examplesDir, err)
	}
	ran := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		ran++
		path := filepath.Join(examplesDir, e.Name())
		t.Run(strings.TrimSuffix(e.Name(), ".yaml"), func(t *testing.T) {
			f, err := validation.Load(path)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			rep, err := validation.Run(context.Background(), f, validation.RunOptions{})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			for _, fail := range rep.Failures {
				t.Errorf("%s (want %s)", fail, fail.Want)
			}
			for _, p := range rep.Pendings {
				t.Errorf("an example must be fully evaluable: %s", p)
			}
			if rep.Passed < minExampleAssertions {
				t.Errorf("%s: %d assertions passed, want at least %d", path, rep.Passed, minExampleAssertions)
			}
			t.Logf("%s: %s", path, rep.TallyLine())
		})
	}
	if ran == 0 {
		t.Fatalf("no examples found in %s", examplesDir)
	}
}
