package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kengen/kengen/bench"
	"github.com/kengen/kengen/raftnode"
)

// benchFlags are the flags of `kengen bench load` and `kengen bench run`.
type benchFlags struct {
	dataset bench.DatasetConfig

	loadMethod string
	batch      int
	skipSchema bool
	noCount    bool

	load          bool
	mix           string
	concurrency   []int
	duration      time.Duration
	count         int
	cpuProfile    string
	bulkSize      int
	knownFraction float64
	consistency   string
	runSeed       uint64
	writeBatch    int
	noWriteCheck  bool
	// target picks the cluster member to drive: "" (the --endpoint itself), leader or
	// follower, found through the cluster status of --endpoint.
	target string
}

func (f *benchFlags) datasetFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.dataset.Name, "dataset", "crm", "dataset: crm, chain (a role chain), tree (a role tree, branching 4) or groups (wide and deep nested groups)")
	fs.Float64Var(&f.dataset.Scale, "scale", 1, "crm: scale factor (1 = 20,000 users, 50,000 accounts, 150,000 deals, about 790,000 relationships)")
	fs.Uint64Var(&f.dataset.Seed, "seed", 0, "seed of the generated dataset; load and run must use the same one")
	fs.IntVar(&f.dataset.Depth, "depth", 1000, "chain: levels of the role chain; groups: levels of nested groups")
	fs.IntVar(&f.dataset.Width, "width", 1000, "groups: groups nested in the wide group")
	fs.IntVar(&f.dataset.Roles, "roles", 100_000, "tree: roles of the role tree")
	fs.StringVar(&f.dataset.Order, "order", "down", "chain, tree: order of the parent edges: down (parents first), up (children first) or random")
}

func (f *benchFlags) loadFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.loadMethod, "load-method", "import", "import (ImportBulkRelationships, into an empty server) or write (WriteRelationships TOUCH batches)")
	fs.IntVar(&f.batch, "batch", 1000, "relationships per import message or write request")
	fs.BoolVar(&f.skipSchema, "skip-schema", false, "keep the server's schema instead of writing the dataset's")
	fs.BoolVar(&f.noCount, "no-count", false, "do not read back the server's relationship count after loading")
}

func newBenchCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a generated dataset into any Authzed v1 endpoint and measure it",
		Long: `Drive any server speaking the Authzed v1 API (kengen, SpiceDB, ...) with a generated,
deterministic dataset: 'bench load' writes its schema and relationships, 'bench run' runs a
mix of checks, bulk checks, lookups and writes and prints throughput, latency percentiles
(p50, p95, p99, p99.9) and errors, or JSON with --json.

The driver knows which answers must be true (a deal's owner and sub assignees may view it;
user:boss sees every role of a chain; a nested group's user is a member of every group above)
and counts every answer that disagrees. 'bench run' exits 1 when any answer disagrees or any
call fails.`,
		Example: `  kengen bench load --dataset crm --scale 0.1
  kengen bench run --dataset crm --scale 0.1 --mix check --concurrency 8 --duration 10s
  kengen bench run --dataset chain --depth 1000 --load --mix check --count 1 --concurrency 1
  kengen bench load --dataset chain --depth 100000 --order up
  kengen bench load --dataset tree --roles 1000000 --order random
  kengen bench run --dataset crm --scale 0.1 --mix check=80,bulk-check=10,write=10 --concurrency 1,8,32
  kengen bench run --dataset crm --scale 0.1 --target follower --consistency fully_consistent
  kengen bench run --dataset crm --scale 0.1 --target follower --mix write --write-batch 1000`,
	}
	cmd.AddCommand(newBenchLoadCmd(c), newBenchRunCmd(c))
	return cmd
}

func newBenchLoadCmd(c *cli) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Write a generated dataset's schema and relationships",
		Long: `Write the dataset's schema, then its relationships: with ImportBulkRelationships (the
default; a relationship that already exists fails it, so load into an empty server) or with
WriteRelationships TOUCH batches (--load-method write). Afterwards the relationships on the
server are counted back with ExportBulkRelationships. On a terminal, a counter shows progress.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := bench.NewDataset(f.dataset)
			if err != nil {
				return err
			}
			if err := c.benchTarget(cmd, f.target); err != nil {
				return err
			}
			return c.benchLoad(cmd, f, ds)
		},
	}
	f.datasetFlags(cmd.Flags())
	f.loadFlags(cmd.Flags())
	f.targetFlag(cmd.Flags())
	return cmd
}

func newBenchRunCmd(c *cli) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a mix of operations against a loaded dataset and report",
		Long: `Run the mix at each concurrency in turn for --duration or --count calls, whichever ends
first. A mix is one operation or several with weights (check=80,write=20), or all:

  check             CheckPermission of one pair, half known-allowed (distinct pairs), half random
  bulk-check        CheckBulkPermissions of --bulk-size such pairs
  lookup-resources  every resource a known subject may reach; its known resources must be there
  lookup-subjects   every subject that may reach a known resource; its known subjects must be there
  write             TOUCH --write-batch relationships (1), then check the first grants the
                    permission at the write's revision

The server must hold the dataset with the same --dataset, --scale and --seed (or pass --load).
Known pairs are asked in a fixed shuffled order, each once until all were asked; for chain
and groups the first is the deepest (--count 1 --known-fraction 1 times one check down the
whole chain).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mix, err := bench.ParseMix(f.mix)
			if err != nil {
				return err
			}
			ds, err := bench.NewDataset(f.dataset)
			if err != nil {
				return err
			}
			if err := c.benchTarget(cmd, f.target); err != nil {
				return err
			}
			if f.load {
				if err := c.benchLoad(cmd, f, ds); err != nil {
					return err
				}
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			// The driver holds an index of every known answer; collecting garbage over it
			// as often as Go's default would adds the driver's own pauses to the latencies
			// it reports (p99 1.87-2.15 ms against 1.24-1.63 ms at 400, three alternating
			// pairs of runs). GOGC, if set, still decides.
			if c.getenv("GOGC") == "" {
				defer debug.SetGCPercent(debug.SetGCPercent(400))
			}
			if f.cpuProfile != "" {
				stop, err := startCPUProfile(f.cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			failed := 0
			for _, conc := range f.concurrency {
				r, err := bench.Run(cmd.Context(), client, ds, bench.RunOptions{
					Mix: mix, Concurrency: conc, Duration: f.duration, Count: f.count, BulkSize: f.bulkSize,
					KnownFraction: f.knownFraction, Consistency: f.consistency, Seed: f.runSeed, WriteBatch: f.writeBatch, SkipWriteCheck: f.noWriteCheck,
				})
				if err != nil {
					return err
				}
				if err := c.printBench(r, r.WriteText); err != nil {
					return err
				}
				failed += r.Disagreements + r.Errors
			}
			if failed > 0 {
				return fmt.Errorf("bench: %d answers disagreed or calls failed; see the report", failed)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	f.datasetFlags(fs)
	f.loadFlags(fs)
	fs.BoolVar(&f.load, "load", false, "load the dataset first, as 'bench load' does")
	fs.StringVar(&f.mix, "mix", "check", "operations and weights: check, bulk-check, lookup-resources, lookup-subjects, write, e.g. check=90,write=10, or all")
	fs.IntSliceVar(&f.concurrency, "concurrency", []int{8}, "concurrent callers; a list (1,8,32) runs the mix at each in turn")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "how long each run lasts (0: until --count calls)")
	fs.IntVar(&f.count, "count", 0, "end each run after this many calls (0: until --duration)")
	fs.IntVar(&f.bulkSize, "bulk-size", 100, "checks per bulk check")
	fs.Float64Var(&f.knownFraction, "known-fraction", 0.5, "share of checks asked of known-allowed pairs, the rest random (a negative value: random only)")
	fs.StringVar(&f.consistency, "consistency", "minimize_latency", "consistency of the reads: minimize_latency, fully_consistent, or at_least_as_fresh (the token of the run's latest write)")
	fs.IntVar(&f.writeBatch, "write-batch", 1, "relationships touched by one write of the write operation (1 to 1000)")
	fs.BoolVar(&f.noWriteCheck, "no-write-check", false, "do not check each write's first relationship at the write's token afterwards (measure writes alone)")
	f.targetFlag(fs)
	fs.Uint64Var(&f.runSeed, "run-seed", 1, "seed of the random questions")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write the driver's own CPU profile to this file (go tool pprof reads it)")
	return cmd
}

func (f *benchFlags) targetFlag(fs *pflag.FlagSet) {
	fs.StringVar(&f.target, "target", "", "drive this member of the cluster --endpoint belongs to: leader or follower (found with its cluster status); empty drives --endpoint itself")
}

// benchTarget points the client at the member target names: the leader, or the first
// follower by id, as the cluster status of --endpoint lists them.
func (c *cli) benchTarget(cmd *cobra.Command, target string) error {
	if target == "" {
		return nil
	}
	if target != "leader" && target != "follower" {
		return fmt.Errorf("--target %q: choose leader or follower", target)
	}
	endpoint, token, opts, err := c.clusterTarget()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), clusterTimeout)
	defer cancel()
	st, err := raftnode.RemoteStatus(ctx, endpoint, token, opts)
	if err != nil {
		return fmt.Errorf("--target %s: asking %s for the cluster status: %s", target, endpoint, describe(err))
	}
	members := slices.Clone(st.Members)
	slices.SortFunc(members, func(a, b raftnode.MemberStatus) int { return strings.Compare(a.ID, b.ID) })
	for _, m := range members {
		if m.GRPCAddr != "" && m.Voter && m.Leader == (target == "leader") {
			fmt.Fprintf(c.stderr, "bench: driving %s %s at %s\n", target, m.ID, m.GRPCAddr)
			c.endpoint = m.GRPCAddr
			return nil
		}
	}
	return fmt.Errorf("--target %s: the cluster of %s (leader %q, %d members) has no %s with a known gRPC address", target, endpoint, st.Leader, len(st.Members), target)
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}, nil
}

// benchLoad loads the dataset and prints what it did.
func (c *cli) benchLoad(cmd *cobra.Command, f *benchFlags, ds *bench.Dataset) error {
	client, err := c.connect()
	if err != nil {
		return err
	}
	defer client.Close()
	opts := bench.LoadOptions{Method: f.loadMethod, Batch: f.batch, SkipSchema: f.skipSchema}
	if isTerminal(c.stderr) {
		opts.Progress = c.stderr
	}
	res, err := bench.Load(cmd.Context(), client, ds, opts)
	if err != nil {
		return err
	}
	out := benchLoadOutput{LoadResult: res, OnServer: -1}
	if !f.noCount {
		if out.OnServer, err = bench.Count(cmd.Context(), client); err != nil {
			return err
		}
	}
	return c.printBench(out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "loaded %s: %d relationships in %.1f s (%.0f/s) with %s\n", res.Dataset, res.Relationships, res.Seconds, res.PerSecond, res.Method)
		if err == nil && out.OnServer >= 0 {
			_, err = fmt.Fprintf(w, "the server holds %d relationships\n", out.OnServer)
		}
		return err
	})
}

// benchLoadOutput is the JSON form of a load.
type benchLoadOutput struct {
	bench.LoadResult
	// OnServer is the relationship count read back, -1 when not counted.
	OnServer int `json:"on_server"`
}

// printBench prints v as one line of JSON with --json, else as text.
func (c *cli) printBench(v any, text func(io.Writer) error) error {
	if !c.json {
		return text(c.stdout)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}
