package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kengen/kengen/raftnode"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// Two `kengen serve` nodes: the second joins through the first's gRPC address; writes on
// either are forwarded to the leader and visible on both; `kengen cluster` shows, moves
// leadership and removes a member.
func TestClusterJoinStatusTransferRemove(t *testing.T) {
	const key = "cluster-test-key"
	env := map[string]string{"KENGEN_TOKEN": key}
	n1 := startNode(t, filepath.Join(t.TempDir(), "n1"), "--grpc-preshared-key", key, "--node-id", "n1")
	n2 := startNode(t, filepath.Join(t.TempDir(), "n2"), "--grpc-preshared-key", key, "--node-id", "n2", "--join", n1.grpcAddr)
	run := func(n *node, args ...string) (string, error) {
		code, out, errs := n.kengen(t, env, args...)
		if code != 0 {
			return out, fmt.Errorf("kengen %s: exit %d: %s%s", strings.Join(args, " "), code, out, errs)
		}
		return out, nil
	}
	status := func(n *node) raftnode.Status {
		t.Helper()
		out, err := run(n, "--json", "cluster", "status")
		if err != nil {
			t.Fatal(err)
		}
		var st raftnode.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("cluster status --json: %v\n%s", err, out)
		}
		return st
	}
	kit.Eventually(t, "n2 sees both members with their gRPC addresses", func() error {
		st := status(n2)
		if st.Leader != "n1" || len(st.Members) != 2 {
			return fmt.Errorf("status %+v", st)
		}
		for _, m := range st.Members {
			if m.GRPCAddr == "" || !m.Voter {
				return fmt.Errorf("member %+v", m)
			}
		}
		return nil
	})
	if out, err := run(n1, "cluster", "status"); err != nil || !strings.Contains(out, "leader n1") {
		t.Fatalf("cluster status: %v\n%s", err, out)
	}

	// Writes on the follower are forwarded; both nodes answer.
	if _, err := run(n2, "schema", "write", "testdata/crm.zed"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(n2, "relationship", "touch", "deal:1", "owner", "user:sato"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{n1, n2} {
		kit.Eventually(t, "the write is visible", func() error {
			out, err := run(n, "check", "deal:1", "view", "user:sato")
			if err != nil {
				return err
			}
			if out != "true\n" {
				return fmt.Errorf("check says %q", out)
			}
			return nil
		})
	}

	if _, err := run(n2, "cluster", "transfer-leader", "n2"); err != nil {
		t.Fatal(err)
	}
	kit.Eventually(t, "n2 leads", func() error {
		if st := status(n1); st.Leader != "n2" {
			return fmt.Errorf("leader %q", st.Leader)
		}
		return nil
	})
	if _, err := run(n1, "relationship", "touch", "deal:2", "owner", "user:ito"); err != nil {
		t.Fatalf("a write on the new follower: %v", err)
	}
	if _, err := run(n1, "cluster", "remove", "n1"); err != nil {
		t.Fatal(err)
	}
	kit.Eventually(t, "n1 removed", func() error {
		if st := status(n2); len(st.Members) != 1 || st.Members[0].ID != "n2" {
			return fmt.Errorf("members %+v", st.Members)
		}
		return nil
	})
}
