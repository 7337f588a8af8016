package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

const stopSchema = `definition user {}
definition doc {
	relation viewer: user
	permission view = viewer
}`

func touchViewer(doc string) *v1.WriteRelationshipsRequest {
	return &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
		Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: doc},
			Relation: "viewer",
			Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
		},
	}}}
}

// SIGTERM stops `kengen serve` within --shutdown-timeout even with requests in flight that
// would outlast it: checks at_least_as_fresh a revision that never comes, each allowed a
// minute by its client (a graceful gRPC stop alone waits for them; the stop before
// --shutdown-timeout gave them 30 s), and a Watch stream. The next start on the same data
// directory has every acknowledged write.
func TestServeStopIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kengen processes; skipped in -short mode")
	}
	const key = "stop-test-key"
	dir := filepath.Join(t.TempDir(), "data")
	p := startProc(t, "p1", key, "--data-dir", dir, "--shutdown-timeout", "2s")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kit.Eventually(t, "the schema is written", func() error {
		_, err := p.client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: stopSchema})
		return err
	})
	watch, err := p.client.Watch(ctx, &v1.WatchRequest{OptionalObjectTypes: []string{"doc"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.WriteRelationships(ctx, touchViewer("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil { // the stream is live on the server
		t.Fatalf("watch: %v", err)
	}
	// A token of revision 2^40 (api/zedtoken.go: base64url of 0x01 and the uvarint revision).
	future := &v1.ZedToken{Token: base64.RawURLEncoding.EncodeToString(binary.AppendUvarint([]byte{1}, 1<<40))}
	waits := make(chan error, 3)
	for range cap(waits) {
		go func() {
			_, err := p.client.CheckPermission(ctx, &v1.CheckPermissionRequest{
				Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: future}},
				Resource:    &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"},
				Permission:  "view",
				Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
			})
			waits <- err
		}()
	}
	select { // they wait on the server (a precondition of the test, not what it measures)
	case err := <-waits:
		t.Fatalf("a check at a revision that never comes returned before the stop: %v", err)
	case <-time.After(500 * time.Millisecond):
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second): // the bound is 2 s; the old stop took 30 s here
		t.Fatalf("still running 20 s after SIGTERM with --shutdown-timeout 2s:\n%s", p.out)
	}
	if _, err := watch.Recv(); err == nil {
		t.Error("the watch stream still delivers after the server stopped")
	}
	for range cap(waits) {
		if err := <-waits; err == nil {
			t.Error("a check at a revision that never comes succeeded")
		}
	}
	if !strings.Contains(p.out.String(), "stopping (within 2s)") {
		t.Errorf("no stopping line:\n%s", p.out)
	}

	p2 := startProc(t, "p1", key, "--data-dir", dir) // the same node, restarted
	resp, err := p2.client.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"},
		Permission:  "view",
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
	})
	if err != nil || resp.Permissionship != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("after the restart: %v, %v; want the acknowledged write", resp.GetPermissionship(), err)
	}
}

// A second `kengen serve` on a data directory in use is refused with the first one's pid,
// and leaves the first one's lock and pid alone; once the first is SIGKILLed, its lock file
// left behind does not keep the next one out.
func TestServeDataDirInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kengen processes; skipped in -short mode")
	}
	const key = "lock-test-key"
	dir := filepath.Join(t.TempDir(), "data")
	p1 := startProc(t, "p1", key, "--data-dir", dir)
	pid := p1.cmd.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, os.Args[0], "serve", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "", "--grpc-preshared-key", key)
	second.Env = append(os.Environ(), execMainEnv+"=1")
	out, err := second.CombinedOutput()
	want := fmt.Sprintf("data directory %s is in use by another kengen process (pid %d)", dir, pid)
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("second serve: %v\n%s\nwant it refused with %q", err, out, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, lockFile)); strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Fatalf("lock file holds %q after the refused start, want the first process's pid %d", b, pid)
	}
	if _, err := p1.client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: stopSchema}); err != nil {
		t.Fatalf("the first process after the refused start: %v", err)
	}

	p1.kill()
	p3 := startProc(t, "p1", key, "--data-dir", dir) // the same node, restarted
	if b, _ := os.ReadFile(filepath.Join(dir, lockFile)); strings.TrimSpace(string(b)) != strconv.Itoa(p3.cmd.Process.Pid) {
		t.Fatalf("lock file holds %q, want the new process's pid %d", b, p3.cmd.Process.Pid)
	}
	if _, err := p3.client.WriteRelationships(ctx, touchViewer("1")); err != nil {
		t.Fatalf("write after starting over a killed process's lock: %v", err)
	}
}
