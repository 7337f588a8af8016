package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeClientDir holds the Node.js client test: a package.json and package-lock.json pinning
// @authzed/authzed-node, installed by .ci/run (npm ci), and the script that drives kengen.
const nodeClientDir = "testdata/nodeclient"

// TestNodeClient: SpiceDB's Node.js client, @authzed/authzed-node from the npm registry,
// against a real `kengen serve` process: schema write and read (with a limit in its
// kengen:limit form), relationship writes, checks at full consistency and at_least_as_fresh,
// a traced check in SpiceDB's trace shape, a LookupResources stream, and the codes of a
// duplicate CREATE and a bad token. It skips, saying how to run it, when node or the
// installed package is missing.
func TestNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js 18 or later and run `npm ci` in cmd/kengen/testdata/nodeclient (.ci/run does both)")
	}
	if _, err := os.Stat(filepath.Join(nodeClientDir, "node_modules", "@authzed", "authzed-node", "package.json")); err != nil {
		t.Skip("@authzed/authzed-node is not installed; run `npm ci` in cmd/kengen/testdata/nodeclient (.ci/run does)")
	}
	const key = "node-client-key"
	p := startProc(t, "node", key)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client_test.mjs", p.grpcAddr, key)
	cmd.Dir = nodeClientDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "steps answered as SpiceDB would") {
		t.Fatalf("node client ended without its closing line:\n%s", out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
