package main

// The parts of the Prometheus integration test (prometheus_test.go) that are not kengen: a
// real Prometheus process on loopback, its HTTP API, and the PromQL found in deploy/.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// promServer is a Prometheus process started by the test.
type promServer struct {
	base string // http://127.0.0.1:port
	log  *syncBuffer
}

// promBinaries finds prometheus and promtool on PATH or in /usr/bin (Debian's package); it
// skips the test when prometheus is missing. promtool may be empty.
func promBinaries(t *testing.T) (prometheus, promtool string) {
	t.Helper()
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := filepath.Join("/usr/bin", name); fileExists(p) {
			return p
		}
		return ""
	}
	prometheus, promtool = find("prometheus"), find("promtool")
	if prometheus == "" {
		t.Skip("prometheus is not installed, so the dashboard and alert rules are not checked against a real Prometheus: install Debian's prometheus package (.ci/run does when it runs as root)")
	}
	return prometheus, promtool
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs bin with a generated configuration that scrapes targets (host:port of
// metrics listeners) every second under job "kengen" and evaluates ruleFile every second.
func startPrometheus(t *testing.T, bin string, targets []string, ruleFile string) *promServer {
	t.Helper()
	dir := t.TempDir()
	var quoted []string
	for _, tg := range targets {
		quoted = append(quoted, fmt.Sprintf("%q", tg))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: kengen
    static_configs:
      - targets: [%s]
`, ruleFile, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	p := &promServer{base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &syncBuffer{}}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	p.waitFor(t, 20*time.Second, "Prometheus to answer /-/ready", func() (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("prometheus exited:\n%s", p.log)
		default:
		}
		// Not listening yet is not an error: poll again.
		resp, err := http.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK, nil
	})
	return p
}

// waitFor polls cond every 200ms until it holds, fails, or the deadline passes.
func (p *promServer) waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; prometheus log:\n%s", limit, what, p.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiResponse is the envelope of Prometheus's HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (p *promServer) get(path string, params url.Values) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d, not JSON: %.200s", path, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// querySeries evaluates expr now and returns how many series (or 1 for a scalar) it gave.
// An error means Prometheus refused the expression (it does not parse, or fails to evaluate).
func (p *promServer) querySeries(expr string) (int, error) {
	data, err := p.get("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, err
	}
	switch d.ResultType {
	case "scalar", "string":
		return 1, nil
	default:
		var series []json.RawMessage
		if err := json.Unmarshal(d.Result, &series); err != nil {
			return 0, err
		}
		return len(series), nil
	}
}

// metricNames returns every metric name Prometheus holds a series for.
func (p *promServer) metricNames() (map[string]bool, error) {
	data, err := p.get("/api/v1/label/__name__/values", nil)
	if err != nil {
		return nil, err
	}
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set, nil
}

// promRule is one rule's state from /api/v1/rules.
type promRule struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

func (p *promServer) rules() ([]promRule, error) {
	data, err := p.get("/api/v1/rules", nil)
	if err != nil {
		return nil, err
	}
	var d struct {
		Groups []struct {
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range d.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// promExpr is one PromQL expression found in deploy/: where it is, and its text.
type promExpr struct {
	where string // "dashboard panel \"Request rate\" target A" or "alert KengenNoLeader"
	expr  string
	alert bool
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's panels
}

// dashboardExprs reads a Grafana dashboard and returns its PromQL, with the template
// variables it defines replaced by values that select everything (subst).
func dashboardExprs(t *testing.T, path string, subst map[string]string) []promExpr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: a dashboard needs a uid and a title to be imported", path)
	}
	defined := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	var out []promExpr
	ids := map[int]string{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("%s: panels %q and %q share id %d", path, prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 || len(p.Datasource) == 0 {
				t.Errorf("%s: panel %q has no targets or no datasource", path, p.Title)
			}
			for _, tg := range p.Targets {
				expr := tg.Expr
				for _, v := range templateVar.FindAllStringSubmatch(expr, -1) {
					name := v[1] + v[2]
					if !defined[name] {
						t.Errorf("%s: panel %q uses $%s, which the dashboard does not define", path, p.Title, name)
					}
				}
				expr = templateVar.ReplaceAllStringFunc(expr, func(m string) string {
					name := strings.Trim(m, "${}")
					if v, ok := subst[name]; ok {
						return v
					}
					return m
				})
				out = append(out, promExpr{where: fmt.Sprintf("dashboard panel %q target %s", p.Title, tg.RefID), expr: expr})
			}
		}
	}
	walk(d.Panels)
	return out
}

var templateVar = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// alertExprs reads a Prometheus rule file's alerting and recording rules.
func alertExprs(t *testing.T, path string) []promExpr {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The rule file is YAML; Prometheus itself validates it (promtool and the rules API), so
	// a line-based reading of "- alert:" / "expr:" is enough to pair names with expressions,
	// including "expr: |" blocks.
	var out []promExpr
	lines := strings.Split(string(b), "\n")
	name := ""
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(l, "- alert:"), strings.HasPrefix(l, "- record:"):
			name = strings.TrimSpace(l[strings.Index(l, ":")+1:])
		case strings.HasPrefix(l, "expr:"):
			expr := strings.TrimSpace(strings.TrimPrefix(l, "expr:"))
			if expr == "|" || expr == ">" {
				indent := -1
				var block []string
				for i+1 < len(lines) {
					next := lines[i+1]
					ind := len(next) - len(strings.TrimLeft(next, " "))
					if strings.TrimSpace(next) != "" && indent < 0 {
						indent = ind
					}
					if strings.TrimSpace(next) != "" && ind < indent {
						break
					}
					block = append(block, strings.TrimSpace(next))
					i++
				}
				expr = strings.TrimSpace(strings.Join(block, " "))
			}
			out = append(out, promExpr{where: "alert " + name, expr: expr, alert: true})
		}
	}
	return out
}

// metricRef finds the metric names in PromQL: every kengen name and the Go, process and
// scrape ones the dashboard uses.
var metricRef = regexp.MustCompile(`\b(?:kengen|go|process)_[A-Za-z0-9_]+|\bup\b`)

func metricsIn(expr string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range metricRef.FindAllString(expr, -1) {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}
