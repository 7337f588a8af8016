package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kengen/kengen/api"
	"github.com/kengen/kengen/cmd/kengen/internal/pgsync/pgtest"
	"github.com/kengen/kengen/raftnode"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// execMainEnv makes the test binary run kengen's main instead of the tests, so that a test
// can start real `kengen serve` processes without building the binary.
const execMainEnv = "KENGEN_TEST_EXEC_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		main() // exits
	}
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// proc is one `kengen serve` process.
type proc struct {
	id       string
	grpcAddr string
	cmd      *exec.Cmd
	out      *syncBuffer
	exited   chan struct{}
	client   *authzed.Client
}

var servingLine = regexp.MustCompile(`serving the Authzed v1 API on (\S+?),`)

// startProc starts `kengen serve` in a new process and waits until it serves.
func startProc(t *testing.T, id, key string, extra ...string) *proc {
	t.Helper()
	return startProcIn(t, filepath.Join(t.TempDir(), id), id, key, extra...)
}

// startProcIn is startProc on the data directory dataDir.
func startProcIn(t *testing.T, dataDir, id, key string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "", "--grpc-preshared-key", key, "--node-id", id}, extra...)
	p := &proc{id: id, out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = kengenProc(args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", id, p.out)
		}
	})
	kit.Eventually(t, id+" serves", func() error {
		select {
		case <-p.exited:
			t.Fatalf("%s exited:\n%s", id, p.out)
		default:
		}
		m := servingLine.FindStringSubmatch(p.out.String())
		if m == nil {
			return errors.New("not serving yet")
		}
		p.grpcAddr = m[1]
		return nil
	})
	var err error
	p.client, err = authzed.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.client.Close() })
	return p
}

// kengenProc is the command that runs kengen with args in a new process (this test binary,
// which runs main under execMainEnv).
func kengenProc(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), execMainEnv+"=1")
	return cmd
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// status runs `kengen --json cluster status` against the process.
func (p *proc) status(key string) (raftnode.Status, error) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--endpoint", p.grpcAddr, "--json", "cluster", "status"}, strings.NewReader(""), &out, &errb,
		func(k string) string { return map[string]string{"KENGEN_TOKEN": key}[k] })
	var st raftnode.Status
	if code != 0 {
		return st, fmt.Errorf("cluster status on %s: exit %d: %s", p.id, code, errb.String())
	}
	return st, json.Unmarshal(out.Bytes(), &st)
}

// Three `kengen serve` processes; a stream of CREATE writes through all three while the
// leader is SIGKILLed. A new leader is elected, the writes resume, and every acknowledged
// write is on both survivors exactly once.
func TestProcessClusterLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three kengen processes; skipped in -short mode")
	}
	const key = "process-test-key"
	procs := []*proc{startProc(t, "p1", key, "--bootstrap")}
	procs = append(procs, startProc(t, "p2", key, "--join", procs[0].grpcAddr))
	procs = append(procs, startProc(t, "p3", key, "--join", procs[0].grpcAddr))
	for _, p := range procs {
		kit.Eventually(t, p.id+" knows three members", func() error {
			st, err := p.status(key)
			if err != nil {
				return err
			}
			if st.Leader == "" || len(st.Members) != 3 {
				return fmt.Errorf("status %+v", st)
			}
			for _, m := range st.Members {
				if m.GRPCAddr == "" {
					return fmt.Errorf("%s does not know the gRPC address of %s", p.id, m.ID)
				}
			}
			return nil
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := procs[1].client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: `definition user {}
definition doc {
	relation viewer: user
	permission view = viewer
}`}); err != nil {
		t.Fatalf("schema through a follower: %v", err)
	}

	// The stream: one writer per process; each write CREATEs a relationship of its own and is
	// retried, on the next live process, until acknowledged. AlreadyExists on a retry means
	// an earlier attempt was applied though its answer was lost; on a first attempt it would
	// be a double apply.
	var (
		mu        sync.Mutex
		live      = append([]*proc(nil), procs...)
		acked     = map[string]bool{}
		lastToken = map[string]*v1.ZedToken{}
		nAcked    atomic.Int64
		retried   atomic.Int64
		lostAck   atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	target := func(i int) *proc {
		mu.Lock()
		defer mu.Unlock()
		return live[i%len(live)]
	}
	writer := func(w int) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			doc := fmt.Sprintf("w%d-%d", w, i)
			deadline := time.Now().Add(60 * time.Second)
			for attempt := 0; ; attempt++ {
				p := target(w + attempt)
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				resp, err := p.client.WriteRelationships(wctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
					Operation: v1.RelationshipUpdate_OPERATION_CREATE,
					Relationship: &v1.Relationship{
						Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: doc},
						Relation: "viewer",
						Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
					},
				}}})
				cancel()
				code, _, _ := api.DescribeClientError(err) // "" for nil
				if err == nil || (code == "AlreadyExists" && attempt > 0) {
					mu.Lock()
					acked[doc] = true
					if err == nil {
						lastToken[doc] = resp.WrittenAt
					} else {
						lostAck.Add(1)
					}
					mu.Unlock()
					nAcked.Add(1)
					break
				}
				if code != "Unavailable" && code != "DeadlineExceeded" {
					t.Errorf("write %s (attempt %d) on %s: %v; want success, or UNAVAILABLE or DEADLINE_EXCEEDED to retry", doc, attempt, p.id, err)
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("write %s not acknowledged within a minute: %v", doc, err)
					return
				}
				retried.Add(1)
				time.Sleep(20 * time.Millisecond) // pacing of the retries
			}
		}
	}
	for w := range procs {
		wg.Add(1)
		go writer(w)
	}
	stopWriters := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopWriters()
	waitAcked := func(what string, n int64) {
		t.Helper()
		kit.Eventually(t, what, func() error {
			if got := nAcked.Load(); got < n {
				return fmt.Errorf("%d writes acknowledged, waiting for %d", got, n)
			}
			return nil
		})
	}
	waitAcked("writes before the kill", 30)

	st, err := procs[0].status(key)
	if err != nil {
		t.Fatal(err)
	}
	var old *proc
	var survivors []*proc
	for _, p := range procs {
		if p.id == st.Leader {
			old = p
		} else {
			survivors = append(survivors, p)
		}
	}
	if old == nil {
		t.Fatalf("the leader %q is none of the processes", st.Leader)
	}
	old.kill()
	atKill := nAcked.Load()
	mu.Lock()
	live = survivors
	mu.Unlock()
	kit.Eventually(t, "a new leader among the survivors", func() error {
		for _, p := range survivors {
			st, err := p.status(key)
			if err != nil {
				return err
			}
			if st.Leader == "" || st.Leader == old.id {
				return fmt.Errorf("%s sees leader %q", p.id, st.Leader)
			}
		}
		return nil
	})
	waitAcked("writes after the kill", atKill+30)
	stopWriters()
	if t.Failed() {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes acknowledged (%d at the kill of %s), %d attempts retried, %d acknowledged by AlreadyExists on a retry",
		len(acked), atKill, old.id, retried.Load(), lostAck.Load())

	for _, p := range survivors {
		// Fully consistent: the whole stream, each relationship once, nothing unacknowledged.
		stream, err := p.client.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
			Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"},
		})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reading from %s: %v", p.id, err)
			}
			seen[r.Relationship.Resource.ObjectId]++
		}
		for doc := range acked {
			if seen[doc] != 1 {
				t.Errorf("%s holds acknowledged write %s %d times, want once", p.id, doc, seen[doc])
			}
		}
		for doc := range seen {
			if !acked[doc] {
				t.Errorf("%s holds %s, which was never acknowledged", p.id, doc)
			}
		}
		// At least as fresh as each write's ZedToken: the check sees it.
		for doc, tok := range lastToken {
			resp, err := p.client.CheckPermission(ctx, &v1.CheckPermissionRequest{
				Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: tok}},
				Resource:    &v1.ObjectReference{ObjectType: "doc", ObjectId: doc},
				Permission:  "view",
				Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
			})
			if err != nil || resp.Permissionship != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
				t.Errorf("check of %s at its token on %s: %v, %v", doc, p.id, resp.GetPermissionship(), err)
			}
		}
	}
}
