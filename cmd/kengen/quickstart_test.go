package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestQuickstart runs the README quick start word for word: every `./kengen ...` line of its sh
// blocks, in order, in-process, from the repository root (the `go build` line that makes the
// binary is this test's own build). `serve` starts a node on a random port with its data in a
// temporary directory; the client commands find it and its key as a user's would in the same
// directory. A `# → text` line after a command is its expected output; `# exit N: text` its
// expected exit code and error. A line that is a shell `if` runs the command inside it. Then
// the README's Go program runs twice against the quick start's data.
func TestQuickstart(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir("../..")
	dataDir := filepath.Join(t.TempDir(), "kengen-data")

	const prefix = "./kengen "
	var (
		n       *node
		inBlock bool
		last    struct {
			line     string
			code     int
			out, err string
		}
		ran int
	)
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "```sh":
			inBlock = true
			continue
		case strings.HasPrefix(line, "```"):
			inBlock = false
			continue
		case !inBlock:
			continue
		}
		if want, ok := strings.CutPrefix(line, "# → "); ok {
			if strings.TrimSpace(last.out) != want {
				t.Errorf("%s: printed %q, the quick start says %q", last.line, last.out, want)
			}
			continue
		}
		if want, ok := strings.CutPrefix(line, "# exit "); ok {
			codeText, msg, _ := strings.Cut(want, ": ")
			code, _ := strconv.Atoi(codeText)
			if last.code != code || !strings.Contains(last.err, msg) {
				t.Errorf("%s: exit %d, %q; the quick start says exit %d, %q", last.line, last.code, last.err, code, msg)
			}
			continue
		}
		cmdLine := line
		if inner, ok := strings.CutPrefix(line, "if "); ok {
			cmdLine, _, _ = strings.Cut(inner, ";")
		}
		args, ok := strings.CutPrefix(cmdLine, prefix)
		if !ok {
			continue
		}
		ran++
		fields := strings.Fields(args)
		if fields[0] == "serve" {
			n = startNode(t, dataDir, fields[1:]...)
			continue
		}
		if n == nil {
			t.Fatalf("%s: runs before the quick start starts a node", line)
		}
		last.line = line
		last.code, last.out, last.err = n.kengen(t, nil, append([]string{"--data-dir", dataDir}, fields...)...)
		if last.code == exitError && !strings.Contains(string(doc), line+"\n# exit 1") {
			t.Errorf("%s: failed:\n%s", line, last.err)
		}
	}
	if ran < 10 {
		t.Fatalf("ran only %d commands from the quick start", ran)
	}
	if !strings.Contains(string(doc), "```sh\ngo build -o kengen ./cmd/kengen\n./kengen serve\n") {
		t.Error("the quick start no longer builds the binary it then runs")
	}
	t.Run("GoExample", func(t *testing.T) { runReadmeGoExample(t, string(doc), n, dataDir) })
}
