package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// `kengen cluster status` asks every member for its own state, term, applied revision and
// commit index: on a three-node cluster each row is that node's answer (one leader, two
// followers, all on the leader's term and caught up), and a stopped member is shown as
// unreachable while the others still answer.
func TestClusterStatusPerNode(t *testing.T) {
	const key = "cluster-status-key"
	env := map[string]string{"KENGEN_TOKEN": key}
	n1 := startNode(t, filepath.Join(t.TempDir(), "n1"), "--grpc-preshared-key", key, "--node-id", "n1")
	n2 := startNode(t, filepath.Join(t.TempDir(), "n2"), "--grpc-preshared-key", key, "--node-id", "n2", "--join", n1.grpcAddr)
	n3 := startNode(t, filepath.Join(t.TempDir(), "n3"), "--grpc-preshared-key", key, "--node-id", "n3", "--join", n1.grpcAddr)
	status := func(n *node) (clusterStatus, error) {
		code, out, errs := n.kengen(t, env, "--json", "cluster", "status")
		var cs clusterStatus
		if code != 0 {
			return cs, fmt.Errorf("cluster status: exit %d: %s", code, errs)
		}
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			return cs, fmt.Errorf("cluster status --json: %w\n%s", err, out)
		}
		return cs, nil
	}
	// Writes through the followers (retried while they learn the leader's gRPC address).
	for _, w := range []struct {
		n    *node
		args []string
	}{{n2, []string{"schema", "write", "testdata/crm.zed"}}, {n3, []string{"relationship", "touch", "deal:1", "owner", "user:sato"}}} {
		kit.Eventually(t, strings.Join(w.args, " "), func() error {
			if code, _, errs := w.n.kengen(t, env, w.args...); code != 0 {
				return fmt.Errorf("exit %d: %s", code, errs)
			}
			return nil
		})
	}
	kit.Eventually(t, "every member reports itself, caught up", func() error {
		cs, err := status(n2)
		if err != nil {
			return err
		}
		if len(cs.Nodes) != 3 || len(cs.Members) != 3 {
			return fmt.Errorf("%d nodes, %d members: %+v", len(cs.Nodes), len(cs.Members), cs)
		}
		states := map[string]int{}
		for i, ns := range cs.Nodes {
			if !ns.Reachable || ns.ID != cs.Members[i].ID || ns.GRPCAddr != cs.Members[i].GRPCAddr {
				return fmt.Errorf("row %d: %+v for member %+v", i, ns, cs.Members[i])
			}
			states[ns.State]++
			if ns.Term != cs.Term || ns.Leader != cs.Leader {
				return fmt.Errorf("%s: term %d, leader %q; n2 sees term %d, leader %q", ns.ID, ns.Term, ns.Leader, cs.Term, cs.Leader)
			}
			// The relationship write is applied everywhere: schema, member records, write.
			if ns.Applied == 0 || ns.Applied != cs.Nodes[0].Applied || ns.CommitIndex < ns.Applied {
				return fmt.Errorf("%s: applied %d, commit index %d; %s applied %d", ns.ID, ns.Applied, ns.CommitIndex, cs.Nodes[0].ID, cs.Nodes[0].Applied)
			}
		}
		if states["Leader"] != 1 || states["Follower"] != 2 {
			return fmt.Errorf("states %v, want one Leader and two Followers", states)
		}
		return nil
	})

	// A stopped member is unreachable; the others still answer for themselves.
	if code := n3.stop(); code != exitOK {
		t.Fatalf("n3 stopped with %d", code)
	}
	kit.Eventually(t, "n3 shown unreachable", func() error {
		cs, err := status(n1)
		if err != nil {
			return err
		}
		for _, ns := range cs.Nodes {
			switch {
			case ns.ID == "n3" && (ns.Reachable || ns.State != "unreachable" || ns.Error == ""):
				return fmt.Errorf("stopped n3: %+v", ns)
			case ns.ID != "n3" && !ns.Reachable:
				return fmt.Errorf("running %s: %+v", ns.ID, ns)
			}
		}
		return nil
	})
	code, out, errs := n1.kengen(t, env, "cluster", "status")
	if code != 0 {
		t.Fatalf("cluster status: %s", errs)
	}
	lines := strings.Split(out, "\n")
	row := func(id string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == id {
				return f
			}
		}
		t.Fatalf("no row for %s:\n%s", id, out)
		return nil
	}
	if f := row("n3"); f[1] != "unreachable" || f[2] != "-" {
		t.Errorf("n3's row %q, want unreachable with no term:\n%s", f, out)
	}
	for _, id := range []string{"n1", "n2"} {
		if f := row(id); f[1] != "Leader" && f[1] != "Follower" {
			t.Errorf("%s's row %q, want its raft state:\n%s", id, f, out)
		}
	}
	if !strings.Contains(out, "n3 unreachable: ") {
		t.Errorf("no reason given for n3:\n%s", out)
	}
}
