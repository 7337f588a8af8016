package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of one run: one line per operation of the mix.
type Report struct {
	Dataset     string     `json:"dataset"`
	Mix         string     `json:"mix"`
	Consistency string     `json:"consistency"`
	Concurrency int        `json:"concurrency"`
	Seconds     float64    `json:"seconds"`
	Ops         []OpReport `json:"ops"`
	// Totals over every operation.
	Calls         int `json:"calls"`
	Errors        int `json:"errors"`
	Checked       int `json:"checked"`
	Disagreements int `json:"disagreements"`
}

// OpReport is one operation's figures.
type OpReport struct {
	Op string `json:"op"`
	// Calls is the number of requests made; PerSecond counts them over the run's time.
	Calls     int     `json:"calls"`
	PerSecond float64 `json:"per_second"`
	// Items counts checks answered (bulk check: per item) or results streamed (lookups).
	Items          int     `json:"items"`
	ItemsPerSecond float64 `json:"items_per_second"`
	// Latency of the successful calls, in milliseconds.
	Latency Latency `json:"latency_ms"`
	Errors  int     `json:"errors"`
	// ErrorExamples holds the first few error messages.
	ErrorExamples []string `json:"error_examples,omitempty"`
	// Checked counts answers the driver knew beforehand; Disagreements those that differed,
	// with a few Examples.
	Checked       int      `json:"checked"`
	Disagreements int      `json:"disagreements"`
	Examples      []string `json:"disagreement_examples,omitempty"`
}

// Latency summarises a set of latencies, in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Percentile is the nearest-rank percentile p (0 < p <= 100) of sorted latencies: the
// smallest value at or below which at least p% of the values lie. Zero for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 99.9% of 1,000 at rank 999 despite 99.9 having no exact float form.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summarize sorts the latencies in place and summarises them.
func Summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Latency{
		Mean: ms(sum / time.Duration(len(lat))),
		P50:  ms(Percentile(lat, 50)),
		P95:  ms(Percentile(lat, 95)),
		P99:  ms(Percentile(lat, 99)),
		P999: ms(Percentile(lat, 99.9)),
		Max:  ms(lat[len(lat)-1]),
	}
}

// WriteText prints the report as a table for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s, mix %s, %s, concurrency %d, %.1f s\n", r.Dataset, r.Mix, r.Consistency, r.Concurrency, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tcalls\tcalls/s\titems/s\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\tchecked\tdisagree\t")
	for _, o := range r.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\t\n", o.Op, o.Calls, o.PerSecond, o.ItemsPerSecond,
			o.Latency.P50, o.Latency.P95, o.Latency.P99, o.Latency.P999, o.Latency.Max, o.Errors, o.Checked, o.Disagreements)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range r.Ops {
		for _, e := range o.ErrorExamples {
			fmt.Fprintf(w, "error (%s): %s\n", o.Op, e)
		}
		for _, e := range o.Examples {
			fmt.Fprintf(w, "disagreement (%s): %s\n", o.Op, e)
		}
	}
	verdict := "all agree"
	if r.Disagreements > 0 {
		verdict = "DISAGREE"
	}
	_, err := fmt.Fprintf(w, "correctness: %d of %d known answers disagree (%s); %d errors\n", r.Disagreements, r.Checked, verdict, r.Errors)
	return err
}

// examples keeps the first few messages of a kind.
type examples struct {
	max  int
	list []string
}

func (e *examples) add(format string, args ...any) {
	if len(e.list) < e.max {
		e.list = append(e.list, strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
}
