package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// raftTLSFlags are the serve flags of a node whose certificate ca signs.
func raftTLSFlags(t *testing.T, ca *kit.CA, id string) []string {
	cert, key := ca.IssueFiles(t, id)
	return []string{"--raft-tls-cert", cert, "--raft-tls-key", key, "--raft-tls-ca", ca.File}
}

// Two `kengen serve` nodes with raft mutual TLS from one CA: the second joins, a write on
// the follower is forwarded and readable on the leader, and cluster status (over TLS,
// verified by the CA) shows both. A third node whose certificate another CA signed cannot
// join: the members refuse its handshake, serve reports why, and the membership stays as
// it was.
func TestServeRaftTLS(t *testing.T) {
	const key = "raft-tls-key"
	ca := kit.NewCA(t, "kengen-cluster-ca")
	env := map[string]string{"KENGEN_TOKEN": key}
	n1 := startNode(t, filepath.Join(t.TempDir(), "n1"), append([]string{"--grpc-preshared-key", key, "--node-id", "n1"}, raftTLSFlags(t, ca, "n1")...)...)
	n2 := startNode(t, filepath.Join(t.TempDir(), "n2"), append([]string{"--grpc-preshared-key", key, "--node-id", "n2", "--join", n1.grpcAddr}, raftTLSFlags(t, ca, "n2")...)...)
	client := func(n *node, args ...string) (string, error) {
		code, out, errs := n.kengen(t, env, append([]string{"--ca-cert", ca.File}, args...)...)
		if code != 0 {
			return out, fmt.Errorf("kengen %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out, nil
	}
	for _, args := range [][]string{{"schema", "write", "testdata/crm.zed"}, {"relationship", "touch", "deal:1", "owner", "user:sato"}} {
		kit.Eventually(t, "on the follower: "+strings.Join(args, " "), func() error {
			_, err := client(n2, args...)
			return err
		})
	}
	kit.Eventually(t, "the follower's write is readable on the leader", func() error {
		out, err := client(n1, "check", "deal:1", "view", "user:sato")
		if err != nil {
			return err
		}
		if out != "true\n" {
			return fmt.Errorf("check on n1 says %q", out)
		}
		return nil
	})
	members := func() (string, error) { return client(n1, "cluster", "status") }
	out, err := members()
	if err != nil || !strings.Contains(out, "leader n1") || !strings.Contains(out, "\nn2 ") {
		t.Fatalf("cluster status over TLS: %v\n%s", err, out)
	}

	// A node from another CA: serve gives up joining when its context ends (here after a
	// few seconds, instead of serve's own leader wait) and says why.
	rogue := kit.NewCA(t, "rogue-ca")
	var buf syncBuffer
	c := &cli{stdin: strings.NewReader(""), stdout: &buf, stderr: &buf, getenv: func(string) string { return "" }}
	root := newRootCmd(c)
	root.SetArgs(append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "n3"), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--grpc-preshared-key", key, "--node-id", "n3", "--join", n1.grpcAddr}, raftTLSFlags(t, rogue, "n3")...))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Logf("rogue serve: %v", err)
	}
	if got := buf.String(); !strings.Contains(got, "joining the cluster through "+n1.grpcAddr) || !strings.Contains(got, "certificate signed by unknown authority") {
		t.Errorf("the rogue node does not say that its certificate kept it out:\n%s", got)
	}
	out, err = members()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "n3") {
		t.Errorf("the rogue node became a member:\n%s", out)
	}
}
