package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeGoSnippetCompiles type-checks the README's Go example against the module's own
// dependencies, so the code a new user copies keeps compiling as the API moves.
func TestReadmeGoSnippetCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with the go command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "```go\n")
	if start < 0 {
		t.Fatal("README.md has no ```go block")
	}
	code := text[start+len("```go\n"):]
	code, _, _ = strings.Cut(code, "```")
	// The snippet shows a function and its imports; wrap it into a program.
	code = strings.Replace(code, "import (", "import (\n\t\"context\"\n\t\"fmt\"\n", 1)
	program := "package main\n\n" + code + "\nfunc main() { _ = example(context.Background(), \"key\") }\n"

	// Inside the module (testdata is outside ./...), so go.mod resolves the imports.
	dir, err := os.MkdirTemp("testdata", "readme-snippet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goCmd, "vet", "./"+filepath.ToSlash(dir))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go example does not compile: %v\n%s\n%s", err, out, program)
	}
}
