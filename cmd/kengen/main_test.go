package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kengen/kengen/api"
	"github.com/kengen/kengen/schema"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is a `kengen serve` running in-process.
type node struct {
	grpcAddr, metricsAddr string
	out                   *syncBuffer
	stop                  func() int
}

func startNode(t *testing.T, dataDir string, extra ...string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{out: &syncBuffer{}}
	ready := make(chan struct{})
	c := &cli{stdin: strings.NewReader(""), stdout: n.out, stderr: n.out, getenv: func(string) string { return "" }}
	c.serveReady = func(g, m string) { n.grpcAddr, n.metricsAddr = g, m; close(ready) }
	root := newRootCmd(c)
	root.SetArgs(append([]string{"serve", "--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, extra...))
	done := make(chan int, 1)
	go func() {
		if err := root.ExecuteContext(ctx); err != nil {
			n.out.Write([]byte("serve: " + err.Error() + "\n"))
			done <- exitError
			return
		}
		done <- exitOK
	}()
	select {
	case <-ready:
	case code := <-done:
		cancel()
		t.Fatalf("serve exited with %d before serving:\n%s", code, n.out)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not start:\n%s", n.out)
	}
	var once sync.Once
	code := exitOK
	n.stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { n.stop() })
	return n
}

// kengen runs one client command line in-process against the node.
func (n *node) kengen(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"--endpoint", n.grpcAddr}, args...), strings.NewReader(env["STDIN"]), &out, &errb,
		func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func (n *node) must(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	code, out, errs := n.kengen(t, nil, append([]string{"--data-dir", dataDir}, args...)...)
	if code != 0 {
		t.Fatalf("kengen %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestServeAndClientVerbs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kengen-data")
	n := startNode(t, dir)

	// The generated key: stored with mode 0600 and printed once.
	keyPath := filepath.Join(dir, keyFile)
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	key, _ := os.ReadFile(keyPath)
	if strings.Count(n.out.String(), strings.TrimSpace(string(key))) != 1 {
		t.Errorf("the key is not printed exactly once:\n%s", n.out)
	}

	// Client verbs, finding the token in the data directory.
	if out := n.must(t, dir, "schema", "write", "testdata/crm.zed"); !strings.Contains(out, "schema written at") {
		t.Errorf("schema write: %q", out)
	}
	n.must(t, dir, "relationship", "create", "deal:1", "owner", "user:sato")
	n.must(t, dir, "relationship", "touch", "deal:1", "follower", "group:eng#member")
	n.must(t, dir, "relationship", "touch", "group:eng", "member", "user:ito")
	n.must(t, dir, "relationship", "touch", "deal:2", "follower", "user:*")
	n.must(t, dir, "relationship", "touch", "deal:3", "owner", "user:gone")
	n.must(t, dir, "relationship", "delete", "deal:3", "owner", "user:gone")

	if code, _, errs := n.kengen(t, nil, "--data-dir", dir, "relationship", "create", "deal:1", "owner", "user:sato"); code != exitError || !strings.Contains(errs, "AlreadyExists") {
		t.Errorf("create twice: exit %d, %q", code, errs)
	}
	if got, want := n.must(t, dir, "relationship", "read", "deal"), "deal:1#follower@group:eng#member\ndeal:1#owner@user:sato\ndeal:2#follower@user:*\n"; got != want {
		t.Errorf("relationship read deal:\n%s\nwant\n%s", got, want)
	}
	if got := n.must(t, dir, "relationship", "read", "deal", "user:sato"); got != "deal:1#owner@user:sato\n" {
		t.Errorf("relationship read deal user:sato: %q", got)
	}
	var line struct {
		Relationship struct {
			Relation string `json:"relation"`
		} `json:"relationship"`
		ReadAt struct{ Token string } `json:"read_at"`
	}
	if err := json.Unmarshal([]byte(n.must(t, dir, "--json", "relationship", "read", "deal:1#owner")), &line); err != nil || line.Relationship.Relation != "owner" || line.ReadAt.Token == "" {
		t.Errorf("relationship read --json: %+v %v", line, err)
	}
	// crm.zed spells its limits `limit N`, which SpiceDB's parser refuses: schema read gives
	// the generated text, where they are `kengen:limit N` doc comment lines.
	written, err := schema.Parse(readTestdata(t, "crm.zed"))
	if err != nil {
		t.Fatal(err)
	}
	if got := n.must(t, dir, "schema", "read"); got != written.Generate() || !strings.Contains(got, "/** kengen:limit 5 */") {
		t.Errorf("schema read:\n%s", got)
	}

	// check: exit codes, --json, --explain.
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"check", "deal:1", "view", "user:ito"}, exitOK, "true\n"},
		{[]string{"check", "deal:1", "edit", "user:ito"}, exitNoPermission, "false\n"},
		{[]string{"check", "deal:2", "view", "user:anyone"}, exitOK, "true\n"},
		{[]string{"check", "deal:1", "view", "group:eng#member"}, exitOK, "true\n"},
		{[]string{"--json", "check", "deal:1", "edit", "user:ito"}, exitNoPermission, `"permissionship":"PERMISSIONSHIP_NO_PERMISSION"`},
		{[]string{"check", "deal:1", "view", "user:ito", "--explain"}, exitOK, "    ✓ group:eng#member (relation)\n      user:ito\n"},
		{[]string{"check", "invoice:1", "view", "user:ito"}, exitError, ""},
		{[]string{"check", "deal:1", "view"}, exitError, ""},
	} {
		code, out, errs := n.kengen(t, nil, append([]string{"--data-dir", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("kengen %s: exit %d, %q %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, errs, tc.code, tc.out)
		}
	}

	// check --bulk from standard input.
	bulk := "// field mask of deal:1 for ito\ndeal:1#view@user:ito\ndeal:1 edit user:ito\n"
	code, out, errs := n.kengen(t, map[string]string{"STDIN": bulk}, "--data-dir", dir, "check", "--bulk", "-")
	if code != exitNoPermission || out != "deal:1#view@user:ito\ttrue\ndeal:1 edit user:ito\tfalse\n" {
		t.Errorf("check --bulk: exit %d, %q %q", code, out, errs)
	}
	code, out, _ = n.kengen(t, map[string]string{"STDIN": "deal:1 view user:ito\n"}, "--data-dir", dir, "--json", "check", "--bulk", "-")
	if code != exitOK || !strings.Contains(out, "PERMISSIONSHIP_HAS_PERMISSION") {
		t.Errorf("check --bulk --json: exit %d, %q", code, out)
	}

	// The token from the environment wins over the data directory's key.
	code, _, errs = n.kengen(t, map[string]string{"KENGEN_TOKEN": "wrong"}, "--data-dir", dir, "schema", "read")
	if code != exitError || !strings.Contains(errs, "Unauthenticated") {
		t.Errorf("wrong KENGEN_TOKEN: exit %d, %q", code, errs)
	}

	// Metrics are served in the Prometheus text format.
	resp, err := http.Get("http://" + n.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `grpc_server_handled_total{grpc_code="OK",grpc_method="CheckPermission",grpc_service="authzed.api.v1.PermissionsService",grpc_type="unary"}`) {
		t.Errorf("/metrics lacks the CheckPermission count:\n%.2000s", body)
	}

	// Stop (as on SIGTERM), restart on the same directory: same key, not printed, data kept.
	if code := n.stop(); code != exitOK {
		t.Fatalf("serve exited %d:\n%s", code, n.out)
	}
	if !strings.Contains(n.out.String(), "store closed") {
		t.Errorf("serve did not report a clean stop:\n%s", n.out)
	}
	n2 := startNode(t, dir)
	if strings.Contains(n2.out.String(), strings.TrimSpace(string(key))) {
		t.Errorf("the key was printed again on restart:\n%s", n2.out)
	}
	if code, out, _ := n2.kengen(t, nil, "--data-dir", dir, "check", "deal:1", "view", "user:ito"); code != exitOK || out != "true\n" {
		t.Errorf("after restart: exit %d %q", code, out)
	}
}

func TestServePprofOnlyWhenAsked(t *testing.T) {
	off := startNode(t, t.TempDir())
	probe(t, "http://"+off.metricsAddr+"/debug/pprof/", http.StatusNotFound)
	on := startNode(t, t.TempDir(), "--pprof")
	if body := fetch(t, "http://"+on.metricsAddr+"/debug/pprof/goroutine?debug=1"); !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("GET /debug/pprof/goroutine with --pprof: %.300q", body)
	}
}

func TestServeRefusesOpenAddressWithoutKey(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--data-dir", t.TempDir(), "--grpc-addr", "0.0.0.0:0", "--metrics-addr", ""},
		strings.NewReader(""), &out, &errb, func(string) string { return "" })
	if code != exitError || !strings.Contains(errb.String(), "--grpc-preshared-key") || !strings.Contains(errb.String(), "--grpc-tls-cert") {
		t.Fatalf("exit %d, %q", code, errb.String())
	}
}

func TestServeRefusesEmptyBlockCache(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "", "--block-cache-mib", "0"},
		strings.NewReader(""), &out, &errb, func(string) string { return "" })
	if code != exitError || !strings.Contains(errb.String(), "--block-cache-mib 0") {
		t.Fatalf("exit %d, %q", code, errb.String())
	}
}

func TestParseRefs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"user:sato", "user:sato"},
		{"group:eng#member", "group:eng#member"},
		{"user:*", "user:*"},
		{"user:sato#...", "user:sato"},
	} {
		s, err := parseSubject(tc.in)
		if err != nil || formatSubject(s) != tc.want {
			t.Errorf("parseSubject(%q) = %v, %v", tc.in, formatSubject(s), err)
		}
	}
	for _, bad := range []string{"sato", ":x", "user:", ""} {
		if _, err := parseSubject(bad); err == nil {
			t.Errorf("parseSubject(%q): no error", bad)
		}
	}
	for _, tc := range []struct{ in, typ, id, rel string }{
		{"deal", "deal", "", ""},
		{"deal:1", "deal", "1", ""},
		{"deal:1#owner", "deal", "1", "owner"},
		{"deal#owner", "deal", "", "owner"},
	} {
		f, err := parseFilter(tc.in)
		if err != nil || f.GetResourceType() != tc.typ || f.GetOptionalResourceId() != tc.id || f.GetOptionalRelation() != tc.rel {
			t.Errorf("parseFilter(%q) = %v, %v", tc.in, f, err)
		}
	}
	if r, err := parseCheckLine("deal:1#view@group:eng#member"); err != nil || r.GetSubject().GetOptionalRelation() != "member" || r.GetPermission() != "view" {
		t.Errorf("parseCheckLine: %v %v", r, err)
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVersion: `kengen version` names this build and the Authzed API release it serves, and
// --server gets the same version from a running server through SpiceDB's version header.
func TestVersion(t *testing.T) {
	dataDir := t.TempDir()
	n := startNode(t, dataDir)
	out := n.must(t, dataDir, "version", "--server")
	want := api.Version()
	for _, s := range []string{"kengen " + want.Kengen, "Authzed API: authzed-go " + want.AuthzedAPI, "server: " + api.ServerVersion()} {
		if !strings.Contains(out, s) {
			t.Errorf("kengen version --server printed %q, want a line with %q", out, s)
		}
	}
	if !strings.HasPrefix(want.AuthzedAPI, "v1.") {
		t.Errorf("Authzed API version %q: the build information has no authzed-go v1 release", want.AuthzedAPI)
	}
	var rep struct {
		Kengen, Server string
	}
	if err := json.Unmarshal([]byte(n.must(t, dataDir, "version", "--server", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Kengen != want.Kengen || rep.Server != api.ServerVersion() {
		t.Errorf("version --json: %+v", rep)
	}
}
