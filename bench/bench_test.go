package bench

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kengen/kengen/bench/datagen"
)

func TestPercentile(t *testing.T) {
	// 1 ms .. 1000 ms in a shuffled order: the nearest-rank percentiles are exact.
	lat := make([]time.Duration, 1000)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(lat), func(i, j int) { lat[i], lat[j] = lat[j], lat[i] })
	got := Summarize(lat)
	want := Latency{Mean: 500.5, P50: 500, P95: 950, P99: 990, P999: 999, Max: 1000}
	if got != want {
		t.Errorf("Summarize(1..1000 ms) = %+v, want %+v", got, want)
	}

	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 99.9, 4 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.1, 1 * time.Millisecond},
		{ms(7), 50, 7 * time.Millisecond},
		{nil, 99, 0},
		// One slow call in 100: p99 does not see it, p99.9 does.
		{append(ms(make([]int, 99)...), 100*time.Millisecond), 99, 0},
		{append(ms(make([]int, 99)...), 100*time.Millisecond), 99.9, 100 * time.Millisecond},
	} {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %g) = %v, want %v", tc.sorted, tc.p, got, tc.want)
		}
	}
	if got := Summarize(nil); got != (Latency{}) {
		t.Errorf("Summarize(nil) = %+v", got)
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"check", "check"},
		{"check=90, write=10", "check=90,write=10"},
		{"lookup-resources,lookup-subjects", "lookup-resources=1,lookup-subjects=1"},
		{"all", "check=1,bulk-check=1,lookup-resources=1,lookup-subjects=1,write=1"},
	} {
		m, err := ParseMix(tc.in)
		if err != nil || m.String() != tc.want {
			t.Errorf("ParseMix(%q) = %q, %v; want %q", tc.in, m, err, tc.want)
		}
	}
	for _, bad := range []string{"", "chek", "check=0", "check=x", "check,check", "check=-1"} {
		if _, err := ParseMix(bad); !errors.Is(err, ErrMix) {
			t.Errorf("ParseMix(%q): %v, want ErrMix", bad, err)
		}
	}
}

func TestPickFollowsWeights(t *testing.T) {
	m, _ := ParseMix("check=3,write=1")
	rng := rand.New(rand.NewPCG(3, 4))
	n := map[string]int{}
	for range 4000 {
		n[pick(m, 4, rng)]++
	}
	if n[OpCheck] < 2800 || n[OpCheck] > 3200 || n[OpWrite]+n[OpCheck] != 4000 {
		t.Errorf("picks %v, want about 3000 checks and 1000 writes", n)
	}
}

// TestDatasetsKnowTheirAnswers: every known-allowed pair rests on a relationship the dataset
// emits, and the sizes agree with the generators.
func TestDatasetsKnowTheirAnswers(t *testing.T) {
	crm, err := NewDataset(DatasetConfig{Name: "crm", Scale: 0.01, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	emitted := map[string]bool{}
	n := 0
	crm.Emit(func(tu datagen.Tuple) { emitted[tu.String()] = true; n++ })
	st := datagen.CRM(datagen.CRMConfig{Scale: 0.01, Seed: 7}, func(datagen.Tuple) {})
	if n != st.Relationships || crm.Relationships != n {
		t.Errorf("crm: %d emitted, Relationships %d, generator %d", n, crm.Relationships, st.Relationships)
	}
	if crm.KnownAllowed() < st.Deals || crm.KnownAllowed() > 3*st.Deals {
		t.Errorf("crm: %d known pairs for %d deals, want one owner and 0-2 sub assignees each", crm.KnownAllowed(), st.Deals)
	}
	for _, p := range crm.known {
		if !emitted["deal:"+p.resource+"#owner@user:"+p.subject] && !emitted["deal:"+p.resource+"#sub_assignee@user:"+p.subject] {
			t.Fatalf("crm: known pair deal:%s view user:%s rests on no owner or sub_assignee", p.resource, p.subject)
		}
	}
	owners := 0
	for _, list := range crm.byResource {
		owners += len(list)
	}
	if owners != crm.KnownAllowed() || len(crm.byResource) != st.Deals {
		t.Errorf("crm: byResource holds %d pairs over %d deals", owners, len(crm.byResource))
	}

	chain, err := NewDataset(DatasetConfig{Name: "chain", Depth: 5})
	if err != nil {
		t.Fatal(err)
	}
	if chain.Relationships != 5 || chain.KnownAllowed() != 5 || len(chain.bySubject["boss"]) != 5 {
		t.Errorf("chain 5: %s", chain)
	}
	// The first question of a run goes all the way down.
	if chain.known[0] != (pair{"chain-4", "boss"}) {
		t.Errorf("chain 5: first known pair %v, want the deepest role", chain.known[0])
	}

	groups, err := NewDataset(DatasetConfig{Name: "groups", Width: 3, Depth: 4})
	if err != nil {
		t.Fatal(err)
	}
	if groups.Relationships != 3*2+4 || groups.KnownAllowed() != 3*2+4 || len(groups.bySubject[datagen.DeepUserID]) != 4 {
		t.Errorf("groups 3x4: %s", groups)
	}
	if groups.known[0] != (pair{"deep-0", "deep"}) {
		t.Errorf("groups 3x4: first known pair %v, want the top of the deep chain", groups.known[0])
	}

	for _, bad := range []DatasetConfig{{Name: "crm"}, {Name: "chain"}, {Name: "groups", Depth: 2}, {Name: "tpcc"}} {
		if _, err := NewDataset(bad); !errors.Is(err, ErrDataset) {
			t.Errorf("NewDataset(%+v): %v, want ErrDataset", bad, err)
		}
	}
}

func TestRunOptions(t *testing.T) {
	for _, tc := range []struct {
		opts RunOptions
		want string
	}{
		{RunOptions{Concurrency: 0, Count: 1}, "concurrency 0"},
		{RunOptions{Concurrency: 1}, "neither a duration nor a count"},
		{RunOptions{Concurrency: 1, Count: 1, KnownFraction: 2}, "known fraction 2"},
		{RunOptions{Concurrency: 1, Count: 1, Consistency: "eventual"}, `consistency "eventual"`},
	} {
		err := tc.opts.check()
		if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrOptions naming %q", tc.opts, err, tc.want)
		}
	}
	o := RunOptions{Concurrency: 2, Duration: time.Second}
	if err := o.check(); err != nil || o.KnownFraction != 0.5 || o.BulkSize != 100 || o.Consistency != "minimize_latency" || o.Mix.String() != "check" {
		t.Errorf("defaults: %+v %v", o, err)
	}
}

func TestReportText(t *testing.T) {
	r := &Report{Dataset: "crm scale 0.01", Mix: "check", Consistency: "minimize_latency", Concurrency: 8, Seconds: 2,
		Ops:     []OpReport{{Op: "check", Calls: 10, Checked: 5, Disagreements: 1, Examples: []string{"deal:d1 view user:u1: got NO"}}},
		Checked: 5, Disagreements: 1}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p99.9 ms", "disagreement (check): deal:d1 view user:u1", "1 of 5 known answers disagree (DISAGREE)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestProgress(t *testing.T) {
	var b strings.Builder
	p := progress{w: &b, total: 10, label: "loading x"}
	p.set(5)
	p.set(10)
	p.done()
	if got := b.String(); !strings.Contains(got, "\rloading x: 5/10 relationships (50%)") ||
		!strings.Contains(got, "\rloading x: 10/10 relationships (100%)") || !strings.HasSuffix(got, "\n") {
		t.Errorf("progress lines: %q", got)
	}
	var none progress // no writer: nothing drawn, nothing panics
	none.set(3)
	none.done()
}
