package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kengen/kengen/bench"
	"github.com/kengen/kengen/bench/datagen"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// benchRuns decodes the JSON lines of `bench run --json`, one report per concurrency.
func benchRuns(t *testing.T, out string) []bench.Report {
	t.Helper()
	var rs []bench.Report
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var r bench.Report
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bench run --json: %v in %q", err, line)
		}
		rs = append(rs, r)
	}
	return rs
}

// TestBenchCRM loads the CRM dataset at a small scale through the Authzed API, runs every
// mix, and then breaks one deal on the server: the driver must report the disagreements.
func TestBenchCRM(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kengen-data")
	n := startNode(t, dir)
	const scale = "0.01"
	ds, err := bench.NewDataset(bench.DatasetConfig{Name: "crm", Scale: 0.01})
	if err != nil {
		t.Fatal(err)
	}

	// Load: every relationship arrives, counted back from the server.
	var loaded struct {
		Relationships, OnServer int
	}
	out := n.must(t, dir, "--json", "bench", "load", "--dataset", "crm", "--scale", scale, "--batch", "700")
	if err := json.Unmarshal([]byte(out), &struct {
		R *int `json:"relationships"`
		S *int `json:"on_server"`
	}{&loaded.Relationships, &loaded.OnServer}); err != nil {
		t.Fatalf("bench load --json: %v in %q", err, out)
	}
	if loaded.Relationships != ds.Relationships || loaded.OnServer != ds.Relationships {
		t.Fatalf("bench load: sent %d, server holds %d; the dataset has %d", loaded.Relationships, loaded.OnServer, ds.Relationships)
	}
	// Loading again with import fails (the relationships exist); with write it touches them.
	if code, _, errs := n.kengen(t, nil, "--data-dir", dir, "bench", "load", "--dataset", "crm", "--scale", scale); code != exitError || !strings.Contains(errs, "AlreadyExists") {
		t.Errorf("bench load twice: exit %d, %q", code, errs)
	}
	if out := n.must(t, dir, "bench", "load", "--dataset", "crm", "--scale", scale, "--load-method", "write"); !strings.Contains(out, "the server holds "+strconv.Itoa(ds.Relationships)+" relationships") {
		t.Errorf("bench load --load-method write: %q", out)
	}

	// Every known-allowed pair, checked once: all HAS_PERMISSION.
	known := strconv.Itoa(ds.KnownAllowed())
	out = n.must(t, dir, "--json", "bench", "run", "--dataset", "crm", "--scale", scale, "--mix", "check",
		"--known-fraction", "1", "--count", known, "--duration", "0", "--concurrency", "4")
	r := benchRuns(t, out)[0]
	if r.Calls != ds.KnownAllowed() || r.Checked != ds.KnownAllowed() || r.Disagreements != 0 || r.Errors != 0 {
		t.Fatalf("check of every known pair: %d calls, %d checked, %d disagree, %d errors; want %s, %s, 0, 0\n%s",
			r.Calls, r.Checked, r.Disagreements, r.Errors, known, known, out)
	}
	if l := r.Ops[0].Latency; l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
		t.Errorf("latency percentiles out of order: %+v", l)
	}

	// Every operation, at two concurrencies, as text and as JSON.
	out = n.must(t, dir, "--json", "bench", "run", "--dataset", "crm", "--scale", scale, "--mix", "all",
		"--count", "150", "--duration", "0", "--concurrency", "1,3", "--bulk-size", "20")
	runs := benchRuns(t, out)
	if len(runs) != 2 || runs[0].Concurrency != 1 || runs[1].Concurrency != 3 {
		t.Fatalf("two concurrencies, got %d reports:\n%s", len(runs), out)
	}
	for _, r := range runs {
		if r.Calls != 150 || r.Errors != 0 || r.Disagreements != 0 || len(r.Ops) != 5 {
			t.Errorf("mix all at %d: %d calls, %d errors, %d disagree, %d ops\n%s", r.Concurrency, r.Calls, r.Errors, r.Disagreements, len(r.Ops), out)
		}
		for _, o := range r.Ops {
			if o.Calls > 0 && o.Checked == 0 && o.Op != bench.OpCheck && o.Op != bench.OpBulkCheck {
				t.Errorf("%s: %d calls checked nothing", o.Op, o.Calls)
			}
		}
	}
	prof := filepath.Join(t.TempDir(), "driver.prof")
	text := n.must(t, dir, "bench", "run", "--dataset", "crm", "--scale", scale, "--mix", "bulk-check", "--count", "5", "--duration", "0", "--cpuprofile", prof)
	if !strings.Contains(text, "p99.9 ms") || !strings.Contains(text, "disagree (all agree)") {
		t.Errorf("bench run text:\n%s", text)
	}
	if b, err := os.ReadFile(prof); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("--cpuprofile wrote no gzipped profile: %d bytes, %v", len(b), err)
	}

	// Break the server's answers: delete everything on one deal, so its owner and sub
	// assignees lose view. The driver must count exactly those pairs as disagreements.
	var broken []string
	victim := ""
	datagen.CRM(datagen.CRMConfig{Scale: 0.01}, func(tu datagen.Tuple) {
		if tu.ResourceType == "deal" && tu.Relation == "owner" && victim == "" {
			victim = tu.ResourceID
		}
		if tu.ResourceType == "deal" && tu.ResourceID == victim {
			n.must(t, dir, "relationship", "delete", "deal:"+tu.ResourceID, tu.Relation, tu.SubjectType+":"+tu.SubjectID)
			if tu.Relation != "account" {
				broken = append(broken, "deal:"+victim+" view user:"+tu.SubjectID)
			}
		}
	})
	code, out, _ := n.kengen(t, nil, "--data-dir", dir, "--json", "bench", "run", "--dataset", "crm", "--scale", scale, "--mix", "check",
		"--known-fraction", "1", "--count", known, "--duration", "0", "--concurrency", "4")
	r = benchRuns(t, out)[0]
	if code != exitError || r.Disagreements != len(broken) || len(r.Ops[0].Examples) == 0 {
		t.Fatalf("after deleting deal:%s: exit %d, %d disagreements, want exit 1 and %d (%v)\n%s", victim, code, r.Disagreements, len(broken), broken, out)
	}
	if ex := r.Ops[0].Examples[0]; !strings.Contains(ex, "deal:"+victim+" view user:") || !strings.Contains(ex, "NO_PERMISSION") {
		t.Errorf("disagreement example %q names no deal:%s", ex, victim)
	}
	code, out, _ = n.kengen(t, nil, "--data-dir", dir, "--json", "bench", "run", "--dataset", "crm", "--scale", scale, "--mix", "lookup-subjects",
		"--count", known, "--duration", "0", "--concurrency", "2")
	// Each of the deal's known pairs leads to one lookup of it, missing every one of its subjects.
	if r := benchRuns(t, out)[0]; code != exitError || r.Disagreements != len(broken)*len(broken) {
		t.Errorf("lookup subjects after deleting deal:%s: exit %d, %d disagreements, want %d", victim, code, r.Disagreements, len(broken)*len(broken))
	}
}

// TestBenchChainAndGroups loads the deep datasets with --load and checks every known answer.
func TestBenchChainAndGroups(t *testing.T) {
	for _, args := range [][]string{
		{"--dataset", "chain", "--depth", "60"},
		{"--dataset", "groups", "--width", "30", "--depth", "40"},
	} {
		dir := filepath.Join(t.TempDir(), "kengen-data")
		n := startNode(t, dir)
		out := n.must(t, dir, append(append([]string{"--json", "bench", "run", "--load"}, args...),
			"--mix", "check,lookup-resources,lookup-subjects,write", "--count", "200", "--duration", "0", "--concurrency", "2")...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], `"on_server"`) {
			t.Fatalf("bench run --load %v: want a load line and a report:\n%s", args, out)
		}
		r := benchRuns(t, lines[1])[0]
		if r.Calls != 200 || r.Checked == 0 || r.Disagreements != 0 || r.Errors != 0 {
			t.Errorf("bench run %v: %d calls, %d checked, %d disagree, %d errors\n%s", args, r.Calls, r.Checked, r.Disagreements, r.Errors, out)
		}
	}
}

// `bench run --target` drives the member it names, found through the cluster status of
// --endpoint, with every consistency; --write-batch writes that many relationships per call.
func TestBenchTargetsClusterMembers(t *testing.T) {
	const key = "bench-target-key"
	env := map[string]string{"KENGEN_TOKEN": key}
	n1 := startNode(t, filepath.Join(t.TempDir(), "n1"), "--grpc-preshared-key", key, "--node-id", "n1")
	n2 := startNode(t, filepath.Join(t.TempDir(), "n2"), "--grpc-preshared-key", key, "--node-id", "n2", "--join", n1.grpcAddr)
	runBench := func(args ...string) (string, string) {
		t.Helper()
		code, out, errs := n1.kengen(t, env, append([]string{"--json", "bench", "run", "--dataset", "chain", "--depth", "5", "--count", "20", "--duration", "0"}, args...)...)
		if code != 0 {
			t.Fatalf("bench run %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out, errs
	}
	var errs string
	kit.Eventually(t, "n2 joined with its gRPC address", func() error {
		code, _, e := n1.kengen(t, env, "bench", "run", "--dataset", "chain", "--depth", "5", "--load", "--count", "1", "--duration", "0", "--target", "follower")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, e)
		}
		errs = e
		return nil
	})
	if !strings.Contains(errs, "driving follower n2 at "+n2.grpcAddr) {
		t.Errorf("--target follower: %q, want it to drive n2 at %s", errs, n2.grpcAddr)
	}
	for _, c := range []string{"minimize_latency", "fully_consistent", "at_least_as_fresh"} {
		for _, target := range []string{"leader", "follower"} {
			out, errs := runBench("--target", target, "--consistency", c, "--mix", "check=3,write=1")
			want := map[string]string{"leader": "n1 at " + n1.grpcAddr, "follower": "n2 at " + n2.grpcAddr}[target]
			if !strings.Contains(errs, "driving "+target+" "+want) {
				t.Errorf("--target %s: %q, want it to drive %s", target, errs, want)
			}
			if r := benchRuns(t, out)[0]; r.Consistency != c || r.Calls != 20 || r.Errors != 0 || r.Disagreements != 0 {
				t.Errorf("--target %s --consistency %s: %+v", target, c, r)
			}
		}
	}
	out, _ := runBench("--target", "follower", "--mix", "write", "--write-batch", "50")
	if r := benchRuns(t, out)[0]; r.Ops[0].Items != 50*r.Ops[0].Calls || r.Checked != r.Ops[0].Calls || r.Disagreements != 0 {
		t.Errorf("--write-batch 50: %d relationships in %d writes, %d checked, %d disagreements", r.Ops[0].Items, r.Ops[0].Calls, r.Checked, r.Disagreements)
	}
	for _, bad := range [][]string{{"--target", "primary"}, {"--write-batch", "1001"}} {
		if code, _, e := n1.kengen(t, env, append([]string{"bench", "run", "--dataset", "chain", "--depth", "5", "--count", "1", "--duration", "0"}, bad...)...); code == 0 || !strings.Contains(e, bad[1]) {
			t.Errorf("bench run %s: exit %d, %q", strings.Join(bad, " "), code, e)
		}
	}
}
