package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// httpLine finds the HTTP listener's URL in serve's serving line.
var httpLine = regexp.MustCompile(`HTTP API on (https?://\S+?),`)

// readmeHTTPAddr is the address the README's curl examples use: --http-addr's default.
const readmeHTTPAddr = "http://" + defaultHTTPAddr

// TestReadmeHTTP runs the README's HTTP section against a real `kengen serve` process: the
// quick start's `./kengen` commands load its data, then every curl command of the section's
// shell blocks runs with the real curl, and its answer must hold what the `# →` line after it
// shows (every member shown, with that value; the line after a streamed answer is its first
// line).
func TestReadmeHTTP(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl on PATH")
	}
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(doc)
	quick := readme[strings.Index(readme, "## Quick start"):strings.Index(readme, "## Over HTTP")]
	section := readme[strings.Index(readme, "## Over HTTP"):strings.Index(readme, "## From an application")]

	t.Chdir("../..") // the quick start's commands run from the repository's root
	const key = "readme-http-key"
	p := startProc(t, "readme", key)
	base := httpLine.FindStringSubmatch(p.out.String())
	if base == nil {
		t.Fatalf("the serving line names no HTTP listener:\n%s", p.out)
	}
	env := func(k string) string { return map[string]string{"KENGEN_TOKEN": key}[k] }
	for _, line := range strings.Split(quick, "\n") {
		args, ok := strings.CutPrefix(strings.TrimSpace(line), "./kengen ")
		if !ok || strings.HasPrefix(args, "serve") {
			continue
		}
		var out, errb bytes.Buffer
		run(context.Background(), append([]string{"--endpoint", p.grpcAddr}, strings.Fields(args)...), strings.NewReader(""), &out, &errb, env)
	}

	ran := 0
	var last, lastCmd string
	for _, cmd := range shellCommands(section) {
		if want, ok := strings.CutPrefix(cmd, "# → "); ok {
			want = strings.ReplaceAll(want, readmeHTTPAddr, base[1])
			if err := holds(last, want); err != nil {
				t.Errorf("%s\nanswered %s\nthe README shows %s: %v", lastCmd, last, want, err)
			}
			continue
		}
		if strings.HasPrefix(cmd, "TOKEN=") || strings.HasPrefix(cmd, "#") {
			continue
		}
		if !strings.HasPrefix(cmd, "curl ") {
			t.Fatalf("the README's HTTP section runs %q, which this test does not know", cmd)
		}
		ran++
		line := strings.ReplaceAll(strings.Replace(cmd, "curl ", curl+" ", 1), readmeHTTPAddr, base[1])
		sh := exec.Command("sh", "-c", line)
		sh.Env = append(os.Environ(), "TOKEN="+key)
		out, err := sh.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", cmd, err, out)
		}
		last, lastCmd = string(out), cmd
	}
	if ran < 8 {
		t.Fatalf("ran only %d curl commands from the README's HTTP section", ran)
	}
}

// shellCommands returns the commands and `# →` lines of the ```shell blocks of text, with
// continued lines (ending in \) joined.
func shellCommands(text string) []string {
	var out []string
	in, cur := false, ""
	for _, line := range strings.Split(text, "\n") {
		switch t := strings.TrimSpace(line); {
		case t == "```shell":
			in = true
		case strings.HasPrefix(t, "```"):
			in = false
		case !in:
		case strings.HasSuffix(t, `\`):
			cur += strings.TrimSuffix(t, `\`) + " "
		case cur != "" && !strings.HasPrefix(t, "# →"):
			cur += t + " "
			if strings.Count(cur, "'")%2 == 0 {
				out, cur = append(out, strings.TrimSpace(cur)), ""
			}
		case t != "":
			if strings.Count(t, "'")%2 == 1 {
				cur = t + " "
				continue
			}
			out = append(out, t)
		}
	}
	return out
}

// holds reports whether answer (its first line, for a stream) holds want: equal text, or for
// JSON every member of want with the same value (arrays element by element).
func holds(answer, want string) error {
	first, _, _ := strings.Cut(strings.TrimSpace(answer), "\n")
	var got, exp any
	if json.Unmarshal([]byte(want), &exp) != nil {
		if first != want {
			return fmt.Errorf("%q is not %q", first, want)
		}
		return nil
	}
	if err := json.Unmarshal([]byte(first), &got); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	return subset(got, exp, "")
}

func subset(got, want any, path string) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %v is not an object", path, got)
		}
		for k, v := range w {
			if err := subset(g[k], v, path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: %v is not an array of %d", path, got, len(w))
		}
		for i := range w {
			if err := subset(g[i], w[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	default:
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s: %v, not %v", path, got, want)
		}
	}
	return nil
}

// TestServeHTTPFlag: with --grpc-addr on a free port the HTTP listener takes a free port too
// (so nodes started side by side do not collide on 8443); --http-addr "" turns it off; a
// non-loopback --http-addr without a key or TLS is refused, as for gRPC. Over the real
// process, net/http gets the same answer as the gRPC API.
func TestServeHTTPFlag(t *testing.T) {
	const key = "http-flag-key"
	p := startProc(t, "web", key)
	m := httpLine.FindStringSubmatch(p.out.String())
	if m == nil || strings.HasSuffix(m[1], ":8443") {
		t.Fatalf("serving line %q: want the HTTP listener on a free port", p.out)
	}
	if _, err := p.client.WriteSchema(context.Background(), &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}"}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, m[1]+"/access/v1/evaluation",
		strings.NewReader(`{"subject":{"type":"user","id":"u"},"action":{"name":"view"},"resource":{"type":"doc","id":"1"}}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	kit.Eventually(t, "the HTTP listener answers", func() error {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req.Clone(context.Background()))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var d struct{ Decision *bool }
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.Decision == nil || *d.Decision {
			return fmt.Errorf("%s: decision %v (%w); want false", resp.Status, d.Decision, err)
		}
		return nil
	})

	off := startProc(t, "noweb", key, "--http-addr", "")
	if strings.Contains(off.out.String(), "HTTP API on") {
		t.Errorf("--http-addr \"\" still serves HTTP:\n%s", off.out)
	}

	dir := t.TempDir()
	cmd := kengenProc("serve", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "", "--http-addr", "0.0.0.0:0")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "refusing to serve HTTP on 0.0.0.0:0") {
		t.Errorf("a non-loopback --http-addr without key or TLS: %v\n%s", err, out)
	}
}

// TestServeHTTPSWithCurl: with --grpc-tls-cert and --grpc-tls-key the HTTP listener serves
// HTTPS with the same certificate; curl trusting the CA gets answers from both APIs, a token
// still being required.
func TestServeHTTPSWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl on PATH")
	}
	ca := kit.NewCA(t, "kengen http test CA")
	cert, keyFile := ca.IssueFiles(t, "kengen-http")
	const key = "https-key"
	p := startProc(t, "tlsweb", key, "--grpc-tls-cert", cert, "--grpc-tls-key", keyFile)
	m := httpLine.FindStringSubmatch(p.out.String())
	if m == nil || !strings.HasPrefix(m[1], "https://") {
		t.Fatalf("serving line %q: want an https:// HTTP listener", p.out)
	}
	do := func(args ...string) string {
		out, err := exec.Command(curl, append([]string{"-s", "--cacert", ca.File}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	schema := `{"schema": "definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}"}`
	if out := do(m[1]+"/v1/schema/write", "-H", "Authorization: Bearer "+key, "-d", schema); !strings.Contains(out, "writtenAt") {
		t.Fatalf("schema write over HTTPS: %s", out)
	}
	write := `{"updates": [{"operation": "OPERATION_TOUCH", "relationship": {"resource": {"objectType": "doc", "objectId": "1"}, "relation": "viewer", "subject": {"object": {"objectType": "user", "objectId": "ann"}}}}]}`
	if out := do(m[1]+"/v1/relationships/write", "-H", "Authorization: Bearer "+key, "-d", write); !strings.Contains(out, "writtenAt") {
		t.Fatalf("relationship write over HTTPS: %s", out)
	}
	eval := `{"subject": {"type": "user", "id": "ann"}, "action": {"name": "view"}, "resource": {"type": "doc", "id": "1"}, "context": {"consistency": {"fully_consistent": true}}}`
	if out := do(m[1]+"/access/v1/evaluation", "-H", "Authorization: Bearer "+key, "-H", "Content-Type: application/json", "-d", eval); strings.TrimSpace(out) != `{"decision":true}` {
		t.Errorf("evaluation over HTTPS: %s", out)
	}
	if out := do("-o", "/dev/null", "-w", "%{http_code}", m[1]+"/access/v1/evaluation", "-H", "Content-Type: application/json", "-d", eval); out != "401" {
		t.Errorf("evaluation over HTTPS without a token: %s, want 401", out)
	}
	plain := "http://" + strings.TrimPrefix(m[1], "https://")
	if out, err := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", plain+"/access/v1/evaluation", "-d", eval).CombinedOutput(); err == nil && string(out) == "200" {
		t.Errorf("plain HTTP to the HTTPS listener answered 200")
	}
}
