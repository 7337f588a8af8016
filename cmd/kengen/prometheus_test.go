package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterSize is how many nodes the cluster Prometheus scrapes has.
const clusterSize = 3

// TestPrometheusDashboardAndAlerts proves deploy/ against a real Prometheus: it starts a
// three-node kengen cluster under a write and check load, a Prometheus scraping them with deploy/alerts.yml
// loaded, and then evaluates every PromQL expression of the Grafana dashboard and the alert
// rules through Prometheus's HTTP API. Each must parse; each dashboard expression must return
// data (the Raft row included: raftnode exports kengen_raft_*); each alert rule must evaluate
// without error, and every metric any expression names must be exported by the nodes. promtool checks the rule file and lints a scrape.
func TestPrometheusDashboardAndAlerts(t *testing.T) {
	promBin, promtool := promBinaries(t)
	deploy := filepath.Join("..", "..", "deploy")
	ruleFile, err := filepath.Abs(filepath.Join(deploy, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// Read deploy/ before starting anything, so that a broken file fails fast.
	exprs := dashboardExprs(t, filepath.Join(deploy, "grafana-dashboard.json"), map[string]string{
		"job": ".+", "instance": ".+", "__rate_interval": "15s", "__interval": "1s", "__range": "1m",
	})
	exprs = append(exprs, alertExprs(t, ruleFile)...)
	if len(exprs) < 20 {
		t.Fatalf("found only %d expressions in deploy/: the dashboard or the rule reader is broken", len(exprs))
	}

	nodes := startScrapeTargets(t, clusterSize)
	stopLoad := loadNodes(t, nodes)
	defer stopLoad()

	var targets []string
	for _, n := range nodes {
		targets = append(targets, n.metricsAddr)
		probe(t, "http://"+n.metricsAddr+"/healthz", http.StatusOK)
		awaitReady(t, "http://"+n.metricsAddr+"/readyz")
	}
	prom := startPrometheus(t, promBin, targets, ruleFile)

	// Every target up, with at least three scrapes of check metrics (rate needs two), and
	// every rule evaluated once.
	prom.waitFor(t, 30*time.Second, "every node up, replicated and scraped three times", func() (bool, error) {
		up, err := prom.querySeries(`up{job="kengen"} == 1`)
		if err != nil {
			return false, err
		}
		scraped, err := prom.querySeries(`count_over_time(kengen_check_results_total{result="has_permission"}[1m]) >= 3`)
		if err != nil {
			return false, err
		}
		// The relationships written through the first node, replicated to every node.
		replicated, err := prom.querySeries(`kengen_store_relationships{job="kengen"} >= 6`)
		if err != nil {
			return false, err
		}
		return up == len(nodes) && scraped == len(nodes) && replicated == len(nodes), nil
	})
	prom.waitFor(t, 15*time.Second, "every rule evaluated", func() (bool, error) {
		rules, err := prom.rules()
		if err != nil {
			return false, err
		}
		for _, r := range rules {
			if r.Health == "unknown" || r.Health == "" {
				return false, nil
			}
		}
		return len(rules) > 0, nil
	})
	rules, err := prom.rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Health != "ok" {
			t.Errorf("alert %s: Prometheus evaluates it with health %q: %s", r.Name, r.Health, r.LastError)
		}
	}

	names, err := prom.metricNames()
	if err != nil {
		t.Fatal(err)
	}
	var withData, raftPanels int
	for _, e := range exprs {
		n, err := prom.querySeries(e.expr)
		if err != nil {
			t.Errorf("%s: Prometheus refuses the expression: %v\n\t%s", e.where, err, e.expr)
			continue
		}
		var missing []string
		for _, m := range metricsIn(e.expr) {
			if !names[m] {
				missing = append(missing, m)
			}
		}
		if !e.alert && strings.Contains(e.expr, "kengen_raft_") {
			raftPanels++
		}
		switch {
		case len(missing) > 0:
			t.Errorf("%s uses %s, which no node exports\n\t%s", e.where, strings.Join(missing, ", "), e.expr)
		case e.alert:
			// An alert's expression is empty unless it fires; parsing and the rule's
			// health are what can be checked.
		case n == 0:
			t.Errorf("%s returns no data although every metric it uses is scraped\n\t%s", e.where, e.expr)
		default:
			withData++
		}
	}
	t.Logf("%d expressions: %d dashboard targets returned data, %d of them Raft's", len(exprs), withData, raftPanels)
	if raftPanels == 0 {
		t.Error("the dashboard has no Raft panel (kengen_raft_*): the raft health and apply lag row is missing")
	}

	if promtool == "" {
		t.Log("promtool not found: skipping `promtool check rules` and `promtool check metrics`")
		return
	}
	if out, err := exec.Command(promtool, "check", "rules", ruleFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", ruleFile, err, out)
	}
	scrape := fetch(t, "http://"+nodes[0].metricsAddr+"/metrics")
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = bytes.NewReader(scrape)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on a scrape of %s: %v\n%s", nodes[0].metricsAddr, err, out)
	}
}

// startScrapeTargets starts an n-node kengen cluster on loopback: the first node bootstraps
// it, the others join it, all with one preshared key.
func startScrapeTargets(t *testing.T, n int) []*scrapeTarget {
	t.Helper()
	const key = "kengen-prometheus-test-key"
	var out []*scrapeTarget
	for i := range n {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("node-%d", i+1))
		args := []string{"--grpc-preshared-key", key, "--node-id", fmt.Sprintf("node%d", i+1)}
		if i > 0 {
			args = append(args, "--join", out[0].grpcAddr)
		}
		out = append(out, &scrapeTarget{node: startNode(t, dir, args...), token: key})
	}
	return out
}

// scrapeTarget is a started node and the token its clients send.
type scrapeTarget struct {
	*node
	token string
}

// client runs one client command line against the node and returns its exit code.
func (n *scrapeTarget) client(ctx context.Context, args ...string) int {
	return run(ctx, append([]string{"--endpoint", n.grpcAddr, "--token", n.token}, args...),
		strings.NewReader(""), io.Discard, io.Discard, func(string) string { return "" })
}

// loadNodes writes a schema and relationships through the first node, then checks, looks up
// and writes on every node in the background until the returned function is called. Every
// request kind the dashboard plots is exercised, including failing ones.
func loadNodes(t *testing.T, nodes []*scrapeTarget) (stop func()) {
	t.Helper()
	ctx := context.Background()
	for _, args := range [][]string{
		{"schema", "write", "testdata/crm.zed"},
		{"relationship", "create", "deal:1", "owner", "user:sato"},
		{"relationship", "touch", "group:eng", "member", "user:ito"},
		{"relationship", "touch", "group:all", "member", "group:eng#member"},
		{"relationship", "touch", "deal:1", "follower", "group:all#member"},
		{"relationship", "touch", "deal:2", "organization", "organization:acme"},
		{"relationship", "touch", "organization:acme", "manager", "user:kato"},
	} {
		if code := nodes[0].client(ctx, args...); code != exitOK {
			t.Fatalf("kengen %s: exit %d", strings.Join(args, " "), code)
		}
	}
	for _, n := range nodes {
		// A refused write on every node, so that error codes appear.
		if code := n.client(ctx, "relationship", "create", "deal:1", "owner", "user:sato"); code == exitOK {
			t.Fatal("creating an existing relationship succeeded")
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for ni, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				for _, args := range [][]string{
					{"check", "deal:1", "view", "user:ito"},    // nested groups: has permission
					{"check", "deal:2", "edit", "user:kato"},   // arrow: has permission
					{"check", "deal:1", "edit", "user:nobody"}, // no permission
					{"lookup", "resources", "deal", "view", "user:ito"},
				} {
					n.client(ctx, args...)
				}
				if i%10 == 0 {
					n.client(ctx, "relationship", "touch", "deal:3", "follower", fmt.Sprintf("user:n%d-%d", ni, i))
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

func probe(t *testing.T, u string, want int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Errorf("GET %s: %d, want %d", u, resp.StatusCode, want)
	}
}

// awaitReady polls the readiness probe u until it answers 200: a node that just joined is
// ready once it has applied what the leader committed.
func awaitReady(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %d at the deadline: %s", u, resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fetch(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return b
}
