package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runReadmeGoExample builds the README's Go program inside the module (so go.mod resolves its
// imports, and it keeps compiling as the API moves) and runs it twice against the quick
// start's node: it must print true both times, as the README says.
func runReadmeGoExample(t *testing.T, readme string, n *node, dataDir string) {
	if testing.Short() {
		t.Skip("builds a program with the go command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	start := strings.Index(readme, "```go\n")
	if start < 0 {
		t.Fatal("README.md has no ```go block")
	}
	program, _, _ := strings.Cut(readme[start+len("```go\n"):], "```")
	if !strings.HasPrefix(program, "package main\n") {
		t.Fatalf("the README's Go example is not a whole program:\n%s", program)
	}
	// testdata is outside ./..., so the program is not part of the module's packages.
	dir, err := os.MkdirTemp("cmd/kengen/testdata", "readme-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "./"+filepath.ToSlash(dir)).CombinedOutput(); err != nil {
		t.Fatalf("the README's Go example does not compile: %v\n%s\n%s", err, out, program)
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "preshared-key"))
	if err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "KENGEN_ENDPOINT="+n.grpcAddr, "KENGEN_TOKEN="+strings.TrimSpace(string(key)))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "true" {
			t.Fatalf("run %d of the README's Go example: %v, printed %q; the README says it prints true", run, err, out)
		}
	}
}
