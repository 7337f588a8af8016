package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// Issue 11 at the process level: `kengen serve` with acknowledged writes is stopped
// (SIGTERM), bytes in the middle of its raft log are inverted, and the next start exits
// non-zero naming the damage and the repair; after `kengen repair --from-store` it serves
// every write acknowledged before the damage, and a new write lands above them.
func TestProcessDamagedLogRefusedThenRepaired(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kengen serve processes; skipped in -short mode")
	}
	const key = "repair-test-key"
	dataDir := filepath.Join(t.TempDir(), "p1")
	p := startProcIn(t, dataDir, "p1", key)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := p.client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n\trelation viewer: user\n}"}); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	for i := range 300 {
		doc := fmt.Sprintf("d%03d", i)
		if _, err := p.client.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{createViewer(doc)}}); err != nil {
			t.Fatalf("write %s: %v", doc, err)
		}
		acked[doc] = true
	}
	before, err := p.status(key)
	if err != nil {
		t.Fatal(err)
	}
	// A repair of a running node is refused, and changes nothing.
	if out, code := runProc(t, "repair", "--data-dir", dataDir, "--from-store", "--node-id", "p1"); code == 0 || !strings.Contains(out, "still running") {
		t.Fatalf("repair of a running node: exit %d:\n%s", code, out)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if !p.cmd.ProcessState.Success() {
		t.Fatalf("serve did not stop cleanly on SIGTERM:\n%s", p.out)
	}

	segs, err := filepath.Glob(filepath.Join(dataDir, raftDir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no raft-wal segment: %v %v", segs, err)
	}
	b, err := os.ReadFile(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	for i := end / 2; i < end/2+16; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(segs[len(segs)-1], b, 0o644); err != nil {
		t.Fatal(err)
	}

	out, code := runProc(t, "serve", "--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "", "--grpc-preshared-key", key, "--node-id", "p1")
	if code == 0 {
		t.Fatalf("serve started on a damaged log:\n%s", out)
	}
	t.Logf("serve refused (exit %d):\n%s", code, out)
	for _, want := range []string{"damaged raft log", fmt.Sprintf("applied revision %d", before.Applied), "kengen repair --data-dir " + dataDir + " --from-store"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}

	out, code = runProc(t, "repair", "--data-dir", dataDir, "--from-store", "--node-id", "p1", "--raft-addr", "127.0.0.1:0")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("starts after revision %d", before.Applied)) {
		t.Fatalf("repair: exit %d:\n%s", code, out)
	}
	if aside, _ := filepath.Glob(filepath.Join(dataDir, raftDir+".damaged-*")); len(aside) != 1 {
		t.Errorf("the damaged log was not kept beside the new one: %v", aside)
	}

	p = startProcIn(t, dataDir, "p1", key)
	stream, err := p.client.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
		Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"},
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[r.Relationship.Resource.ObjectId] = true
	}
	for doc := range acked {
		if !seen[doc] {
			t.Errorf("acknowledged write %s is lost after the repair", doc)
		}
	}
	kit.Eventually(t, "a write after the repair", func() error {
		_, err := p.client.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{createViewer("after")}})
		return err
	})
	after, err := p.status(key)
	if err != nil {
		t.Fatal(err)
	}
	if after.Applied <= before.Applied {
		t.Errorf("applied revision %d after a new write, not above the %d before the damage", after.Applied, before.Applied)
	}

	// --from-cluster on this node, a cluster of one, is refused: no leader would ever fill an
	// emptied log. Nothing is moved, and the message says which repair to run instead.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	out, code = runProc(t, "repair", "--data-dir", dataDir, "--from-cluster", "--node-id", "p1")
	if code == 0 || !strings.Contains(out, "only member") || !strings.Contains(out, "--from-store") {
		t.Fatalf("repair --from-cluster on a single node: exit %d:\n%s", code, out)
	}
	rafts, _ := filepath.Glob(filepath.Join(dataDir, raftDir+".damaged-*"))
	stores, _ := filepath.Glob(filepath.Join(dataDir, storeDir+".damaged-*"))
	if len(rafts) != 1 || len(stores) != 0 {
		t.Errorf("after a refused --from-cluster: raft dirs aside %v, stores aside %v; want the first repair's 1 and 0", rafts, stores)
	}
	if _, err := os.Stat(filepath.Join(dataDir, storeDir)); err != nil {
		t.Errorf("the store is not in place: %v", err)
	}
}

func createViewer(doc string) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{
		Operation: v1.RelationshipUpdate_OPERATION_CREATE,
		Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: doc},
			Relation: "viewer",
			Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
		},
	}
}

// runProc runs kengen with args in a new process and returns its output and exit code.
func runProc(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := kengenProc(args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("kengen %s did not end within a minute:\n%s", strings.Join(args, " "), out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}
