package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// zedBinary is SpiceDB's CLI, from $KENGEN_ZED or the PATH; the test skips without it.
func zedBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KENGEN_ZED"); p != "" {
		return p
	}
	p, err := exec.LookPath("zed")
	if err != nil {
		t.Skip("zed is not installed; build it (go build github.com/authzed/zed/cmd/zed) and put it on the PATH or in KENGEN_ZED")
	}
	return p
}

// TestZed: SpiceDB's CLI against a real `kengen serve`: `zed schema write` replaces a schema
// that has a relation limit (zed parses the current schema with SpiceDB's parser first),
// `zed permission check --explain` prints the trace, and `zed version` shows the server's
// version without warning that it is no SpiceDB release.
func TestZed(t *testing.T) {
	zed := zedBinary(t)
	const key = "zed-test-key"
	p := startProc(t, "zed", key)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	runZed := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, zed, append([]string{"--endpoint", p.grpcAddr, "--token", key, "--insecure", "--no-verify-ca"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zed %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("zed %s:\n%s", strings.Join(args, " "), out)
		if strings.Contains(string(out), "not calling a released version") || strings.Contains(string(out), "panic") {
			t.Errorf("zed %s:\n%s", strings.Join(args, " "), out)
		}
		return string(out)
	}

	// A schema with a limit in kengen's short form, written with kengen's client.
	if _, err := p.client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: `definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation viewer: user | group#member limit 5
	relation editor: user
	permission view = viewer + editor
}`}); err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(t.TempDir(), "schema.zed")
	if err := os.WriteFile(next, []byte(`caveat within(amount int, max int) {
	amount <= max
}

definition user {}

definition group {
	relation member: user | group#member
}

definition doc {
	/** kengen:limit 5 */
	relation viewer: user | group#member
	relation editor: user
	relation banned: user
	relation approver: user with within
	permission view = (viewer + editor) - banned
	permission approve = approver
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	runZed("schema", "write", next)
	if got := runZed("schema", "read"); !strings.Contains(got, "permission view = (viewer + editor) - banned") || !strings.Contains(got, "kengen:limit 5") {
		t.Errorf("zed schema read after zed schema write:\n%s", got)
	}

	for _, r := range []string{"doc:1#viewer@group:eng#member", "group:eng#member@user:ann", "doc:1#editor@user:bob"} {
		// `zed relationship touch doc:1 viewer group:eng#member`
		runZed(append([]string{"relationship", "touch"}, strings.Fields(strings.Replace(strings.Replace(r, "#", " ", 1), "@", " ", 1))...)...)
	}
	out := runZed("permission", "check", "doc:1", "view", "user:ann", "--explain", "--consistency-full")
	for _, want := range []string{"true", "doc:1 view", "doc:1 viewer", "group:eng member", "doc:1 banned"} {
		if !strings.Contains(out, want) {
			t.Errorf("zed permission check --explain does not print %q:\n%s", want, out)
		}
	}
	// A caveat: conditional without its context (zed reads the caveat evaluation of every
	// conditional node), then true and false with it.
	runZed("relationship", "touch", "doc:1", "approver", "user:cat", "--caveat", `within:{"max":10}`)
	out = runZed("permission", "check", "doc:1", "approve", "user:cat", "--explain", "--consistency-full")
	for _, want := range []string{"caveated", "amount <= max", "missing context: amount"} {
		if !strings.Contains(out, want) {
			t.Errorf("conditional check --explain does not print %q:\n%s", want, out)
		}
	}
	if out := runZed("permission", "check", "doc:1", "approve", "user:cat", "--explain", "--consistency-full", "--caveat-context", `{"amount":5}`); !strings.HasPrefix(strings.TrimSpace(lastLines(out)), "true") {
		t.Errorf("check with the caveat's context:\n%s", out)
	}
	if out := runZed("permission", "check", "doc:1", "approve", "user:cat", "--explain", "--consistency-full", "--caveat-context", `{"amount":50}`); !strings.HasPrefix(strings.TrimSpace(lastLines(out)), "false") {
		t.Errorf("check with a context the caveat refuses:\n%s", out)
	}
	if out := runZed("version"); !strings.Contains(out, "+kengen") {
		t.Errorf("zed version does not show kengen's version:\n%s", out)
	}
}

// lastLines is zed's output without its leading JSON log lines.
func lastLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "{") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
