package api

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kengen/kengen/check"
)

const metricsSchema = `definition user {}

definition group {
  relation member: user | group#member
}

definition deal {
  relation owner: user
  relation follower: user | group#member
  permission edit = owner
  permission view = edit + follower
}`

// TestCheckAndStoreMetrics drives a server whose checker reports to CheckObserver and reads
// the check and store metrics back from the registry.
func TestCheckAndStoreMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	observe, err := CheckObserver(reg)
	if err != nil {
		t.Fatal(err)
	}
	env := startServer(t, Options{Registerer: reg, Checker: check.New(check.Options{Observe: observe})})
	env.writeSchema(metricsSchema)
	env.touch("group:eng#member@user:ito", "group:all#member@group:eng#member", "deal:1#follower@group:all#member", "deal:1#owner@user:sato")

	for _, c := range []struct{ resource, permission, subject string }{
		{"deal:1", "view", "user:ito"},    // through two nested groups
		{"deal:1", "edit", "user:nobody"}, // no permission
		{"deal:1", "view", "user:sato"},
	} {
		if _, err := env.check(full(), c.resource, c.permission, c.subject); err != nil {
			t.Fatalf("check %v: %v", c, err)
		}
	}
	env.touch("deal:2#follower@user:ito", "deal:3#owner@user:ito")
	if got := env.lookupResources("ito", 0); len(got) != 3 {
		t.Fatalf("LookupResources for user:ito: %v, want 3 deals", got)
	}
	if err := env.st.Flush(); err != nil {
		t.Fatal(err)
	}

	got := gather(t, reg)
	for name, want := range map[string]float64{
		`kengen_check_results_total{result="has_permission"}`:                                      2,
		`kengen_check_results_total{result="no_permission"}`:                                       1,
		`kengen_check_results_total{result="error"}`:                                               0,
		`kengen_check_duration_seconds_count{permission="view",resource_type="deal"}`:              2,
		`kengen_check_duration_seconds_count{permission="edit",resource_type="deal"}`:              1,
		`kengen_check_subproblems_count`:                                                           3,
		`kengen_check_depth_count`:                                                                 3,
		`kengen_store_relationships`:                                                               6,
		`kengen_lookup_results_count{method="/authzed.api.v1.PermissionsService/LookupResources"}`: 1,
		`kengen_lookup_results_sum{method="/authzed.api.v1.PermissionsService/LookupResources"}`:   3,
		`kengen_store_revision`:                                                                    float64(env.st.Revision()),
		`kengen_store_write_stalls_total`:                                                          0,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="CheckPermission",grpc_service="authzed.api.v1.PermissionsService",grpc_type="unary"}`: 3,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	for name, min := range map[string]float64{
		`kengen_check_subproblems_sum`:           3, // every check evaluates at least one
		`kengen_check_depth_sum`:                 1,
		`kengen_store_retained_revisions`:        1,
		`kengen_store_disk_usage_bytes`:          1,
		`kengen_store_filesystem_size_bytes`:     1,
		`kengen_store_filesystem_min_free_bytes`: 16 << 20, // the default floor
		`kengen_store_flushes_total`:             1,        // the Flush above
		`kengen_store_level_files{level="0"}`:    1,
	} {
		if got[name] < min {
			t.Errorf("%s = %v, want at least %v", name, got[name], min)
		}
	}
	if err := env.srv.Ready(); err != nil {
		t.Errorf("Ready on a serving server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env.srv.Stop(ctx)
	if err := env.srv.Ready(); err == nil {
		t.Error("Ready after Stop: nil, want an error")
	}
}

// TestCheckMetricLabelsAreBounded: a failed check with names no successful check used is
// counted under "other", so that request strings cannot grow the label set.
func TestCheckMetricLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	observe, err := CheckObserver(reg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		observe(check.Observation{ResourceType: fmt.Sprintf("junk%d", i), Permission: "view", Err: errors.New("unknown type")})
	}
	observe(check.Observation{ResourceType: "deal", Permission: "view", Membership: check.HasPermission})
	observe(check.Observation{ResourceType: "deal", Permission: "view", Err: errors.New("depth exceeded")})
	observe(check.Observation{ResourceType: "deal", Permission: "view", Membership: check.ConditionalPermission, MemoHits: 4, IndexHits: 2, IndexFallbacks: 1})

	got := gather(t, reg)
	var durations []string
	for k := range got {
		if strings.HasPrefix(k, "kengen_check_duration_seconds_count") {
			durations = append(durations, k)
		}
	}
	sort.Strings(durations)
	want := []string{
		`kengen_check_duration_seconds_count{permission="other",resource_type="other"}`,
		`kengen_check_duration_seconds_count{permission="view",resource_type="deal"}`,
	}
	if strings.Join(durations, " ") != strings.Join(want, " ") {
		t.Fatalf("duration series %v, want %v", durations, want)
	}
	for name, v := range map[string]float64{
		want[0]: 50,
		want[1]: 3,
		`kengen_check_results_total{result="error"}`:          51,
		`kengen_check_results_total{result="has_permission"}`: 1,
		`kengen_check_results_total{result="conditional"}`:    1,
		`kengen_check_memo_hits_total`:                        4,
		`kengen_check_index_hits_total`:                       2,
		`kengen_check_index_fallbacks_total`:                  1,
	} {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if observe, err := CheckObserver(nil); observe != nil || err != nil {
		t.Errorf("CheckObserver(nil) = %p, %v; want nil, nil", observe, err)
	}
}

// gather flattens a registry into "name{label="value",...}" → value; a histogram gives
// name_count and name_sum. (promtool lints the names: cmd/kengen/prometheus_test.go.)
func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(parts)
			labels := ""
			if len(parts) > 0 {
				labels = "{" + strings.Join(parts, ",") + "}"
			}
			switch mf.GetType().String() {
			case "COUNTER":
				out[mf.GetName()+labels] = m.GetCounter().GetValue()
			case "GAUGE":
				out[mf.GetName()+labels] = m.GetGauge().GetValue()
			case "HISTOGRAM":
				out[mf.GetName()+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+labels] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// BenchmarkCheckMetrics measures what the check metrics cost: the same checks (the ProSales
// seed model's assertions, evaluated directly on a store reader) with Observe unset and with
// CheckObserver's function.
//
//	go test -run XXX -bench CheckMetrics -count 5 ./api
func BenchmarkCheckMetrics(b *testing.B) {
	env, doc := prosalesEnv(b)
	r, err := env.st.Reader(0)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	observe, err := CheckObserver(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name    string
		observe func(check.Observation)
	}{{"metrics=off", nil}, {"metrics=on", observe}} {
		b.Run(mode.name, func(b *testing.B) {
			// The sub-problem cache off: every iteration evaluates its check, as a request
			// at a new revision does, rather than timing cache hits.
			c := check.New(check.Options{Observe: mode.observe, CacheBytes: -1})
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := c.Check(ctx, r, doc.Assertions[i%len(doc.Assertions)].Request); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckObserve measures one observation alone: the whole per-check cost of the
// check metrics, to set against a check's own time.
func BenchmarkCheckObserve(b *testing.B) {
	observe, err := CheckObserver(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	o := check.Observation{ResourceType: "deal", Permission: "view", Membership: check.HasPermission, Subproblems: 7, MemoHits: 2, Depth: 3, Duration: 40 * time.Microsecond}
	b.ReportAllocs()
	for b.Loop() {
		observe(o)
	}
}
