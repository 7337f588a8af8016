package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var servingMetrics = regexp.MustCompile(`serving the Authzed v1 API on (\S+?), metrics on http://(\S+?)/metrics`)

// readyRounds is how many `kengen serve` processes TestServingLineMeansWritable starts.
const readyRounds = 8

// atServingLine starts `kengen serve` with args and, the moment its serving line is read from
// its stdout, asks the gRPC health service and /readyz and makes one write (write), with no
// retry. It returns what each said, and stop, which stops the process (SIGINT) and returns its
// stderr.
func atServingLine(t *testing.T, key string, write func(context.Context, *authzed.Client) error, args ...string) (health healthpb.HealthCheckResponse_ServingStatus, readyz int, stop func() string, werr error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:0", "--grpc-preshared-key", key}, args...)...)
	cmd.Env = append(os.Environ(), execMainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() string {
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		return stderr.String()
	}
	lines := bufio.NewScanner(stdout)
	var grpcAddr, metricsAddr string
	for lines.Scan() {
		if m := servingMetrics.FindStringSubmatch(lines.Text()); m != nil {
			grpcAddr, metricsAddr = m[1], m[2]
			break
		}
	}
	if grpcAddr == "" {
		t.Fatalf("no serving line; stderr:\n%s", stop())
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client, err := authzed.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		health = resp.GetStatus()
	}
	if resp, err := http.Get("http://" + metricsAddr + "/readyz"); err == nil {
		readyz = resp.StatusCode
		resp.Body.Close()
	}
	return health, readyz, stop, write(ctx, client)
}

// TestServingLineMeansWritable is what a deployment script does: start `kengen serve` and
// write the schema the moment the serving line appears, once, with no retry. At that moment
// the gRPC health service and /readyz must already say SERVING (the line cannot come before
// the node leads), and the write must succeed. Each round is a new process, on a new data
// directory or restarting on the last one. The log says at info what raft does, and no
// longer warns about the heartbeat timeout that begins every election.
func TestServingLineMeansWritable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kengen processes; skipped in -short mode")
	}
	const key = "ready-test-key"
	base := t.TempDir()
	writeSchema := func(ctx context.Context, c *authzed.Client) error {
		_, err := c.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}"})
		return err
	}
	for round := range readyRounds {
		// Even rounds start on a new data directory, odd ones restart on the previous one.
		dir := filepath.Join(base, fmt.Sprint(round/2))
		health, readyz, stop, werr := atServingLine(t, key, writeSchema, "--data-dir", dir)
		logs := stop()
		if health != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("round %d: health at the serving line: %v, want SERVING", round, health)
		}
		if readyz != http.StatusOK {
			t.Errorf("round %d: /readyz at the serving line: %d, want 200", round, readyz)
		}
		if werr != nil {
			t.Errorf("round %d: the schema written at the serving line: %v", round, werr)
		}
		if strings.Contains(logs, "heartbeat timeout") || strings.Contains(logs, "level=WARN") {
			t.Errorf("round %d: a warning at a clean start", round)
		}
		if !strings.Contains(logs, "raft: this node leads term") {
			t.Errorf("round %d: the log does not say the node leads", round)
		}
		if t.Failed() {
			t.Fatalf("round %d stderr:\n%s", round, logs)
		}
	}
}

// TestJoinerServingLineMeansWritable: a node that joins a cluster prints its serving line only
// once it knows the leader, the leader's gRPC address and has caught up, so that a write
// through it the moment the line appears is forwarded and succeeds.
func TestJoinerServingLineMeansWritable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kengen processes; skipped in -short mode")
	}
	const key = "ready-test-key"
	p1 := startProc(t, "p1", key, "--bootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p1.client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc { relation viewer: user }"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := fmt.Sprintf("j%d", i)
		write := func(ctx context.Context, c *authzed.Client) error {
			_, err := c.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
				Operation: v1.RelationshipUpdate_OPERATION_CREATE,
				Relationship: &v1.Relationship{
					Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: id},
					Relation: "viewer",
					Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
				},
			}}})
			return err
		}
		health, readyz, stop, werr := atServingLine(t, key, write, "--data-dir", filepath.Join(t.TempDir(), id), "--node-id", id, "--join", p1.grpcAddr)
		// Leave the cluster its quorum before stopping the joiner: the next one must not wait
		// for a stopped member.
		rerr := runRemove(p1, key, id)
		logs := stop()
		if health != healthpb.HealthCheckResponse_SERVING || readyz != http.StatusOK || werr != nil || rerr != nil {
			t.Fatalf("%s at its serving line: health %v, /readyz %d, write %v; removing it: %v\nstderr:\n%s", id, health, readyz, werr, rerr, logs)
		}
	}
}

// runRemove runs `kengen cluster remove id` against p.
func runRemove(p *proc, key, id string) error {
	var out, errb strings.Builder
	code := run(context.Background(), []string{"--endpoint", p.grpcAddr, "cluster", "remove", id}, strings.NewReader(""), &out, &errb,
		func(k string) string { return map[string]string{"KENGEN_TOKEN": key}[k] })
	if code != 0 {
		return fmt.Errorf("cluster remove %s: exit %d: %s", id, code, errb.String())
	}
	return nil
}
