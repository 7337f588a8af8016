package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/kengen/kengen/raftnode/internal/faultproxy"
	"github.com/kengen/kengen/store"
)

// faultTestsEnv turns on the long versions of the fault tests (CI runs them through
// .ci/run); without it they run a short history that keeps `go test ./...` fast.
const faultTestsEnv = "KENGEN_FAULT_TESTS"

func longFaultTests() bool { return os.Getenv(faultTestsEnv) == "1" }

// faultNode is a testNode whose raft and cluster gRPC listeners sit behind fault proxies:
// the other nodes know it only by the proxies' addresses, so cutting the proxies makes it
// unreachable.
type faultNode struct {
	*testNode
	raftProxy, grpcProxy *faultproxy.Proxy
}

// cut makes the node unreachable: every connection to its raft transport and to its cluster
// service breaks, and new ones are refused, until heal.
func (fn *faultNode) cut() { fn.raftProxy.Cut(); fn.grpcProxy.Cut() }

func (fn *faultNode) heal() { fn.raftProxy.Restore(); fn.grpcProxy.Restore() }

// startFaultCluster starts three nodes behind proxies and bootstraps them with a
// configuration that names the proxies' addresses.
func startFaultCluster(t *testing.T) []*faultNode {
	t.Helper()
	var (
		nodes []*faultNode
		conf  raft.Configuration
	)
	for _, id := range []string{"n1", "n2", "n3"} {
		fn := startFaultNode(t, id)
		nodes = append(nodes, fn)
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(fn.raftProxy.Addr())})
	}
	for _, fn := range nodes {
		if err := fn.node.raft.BootstrapCluster(conf).Error(); err != nil {
			t.Fatalf("bootstrapping %s: %v", fn.id, err)
		}
	}
	for _, fn := range nodes {
		eventually(t, fn.id+" knows the members", func() error {
			for _, o := range nodes {
				if fn.node.fsm.member(o.id) != o.grpcProxy.Addr() {
					return fmt.Errorf("%s does not know %s", fn.id, o.id)
				}
			}
			return nil
		})
	}
	return nodes
}

func startFaultNode(t *testing.T, id string) *faultNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gp, err := faultproxy.Listen(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gp.Close() })
	dir := t.TempDir()
	tn := &testNode{t: t, id: id, dir: dir, grpcAddr: lis.Addr().String()}
	tn.cfg = faultNodeConfig(id)
	if tn.st, err = store.Open(filepath.Join(dir, "store"), store.Options{NoSync: true, GCInterval: -1, SkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	cfg := tn.cfg
	cfg.Store, cfg.Dir, cfg.RaftAddr, cfg.GRPCAddr = tn.st, filepath.Join(dir, "raft"), "127.0.0.1:0", gp.Addr()
	if tn.node, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	tn.raftAddr = tn.node.RaftAddr()
	rp, err := faultproxy.Listen(tn.raftAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rp.Close() })
	tn.srv = grpc.NewServer()
	tn.srv.RegisterService(&ServiceDesc, tn.node)
	go func() { _ = tn.srv.Serve(lis) }()
	t.Cleanup(tn.stop) // runs before the proxies close
	return &faultNode{testNode: tn, raftProxy: rp, grpcProxy: gp}
}

// faultNodeConfig has the timings startNode (cluster_test.go) gives its nodes.
func faultNodeConfig(id string) Config {
	return Config{
		NodeID:             id,
		HeartbeatTimeout:   150 * time.Millisecond,
		ElectionTimeout:    150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func faultLeader(t *testing.T, nodes []*faultNode) *faultNode {
	t.Helper()
	var tns []*testNode
	for _, fn := range nodes {
		tns = append(tns, fn.testNode)
	}
	l := leader(t, tns)
	for _, fn := range nodes {
		if fn.testNode == l {
			return fn
		}
	}
	t.Fatal("the leader is not one of the nodes")
	return nil
}

// A follower cut off from the others acknowledges no write and answers no fully consistent
// read (both fail with ErrUnavailable) while the majority goes on writing; after the link
// heals it catches up.
func TestPartitionedMinority(t *testing.T) {
	nodes := startFaultCluster(t)
	ctx := ctxT(t)
	l := faultLeader(t, nodes)
	if _, err := l.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	var minority, other *faultNode
	for _, fn := range nodes {
		switch {
		case fn == l:
		case minority == nil:
			minority = fn
		default:
			other = fn
		}
	}
	before, err := write(ctx, minority.node, "before", "sato")
	if err != nil {
		t.Fatal(err)
	}
	if err := minority.node.WaitApplied(ctx, before.Revision); err != nil {
		t.Fatal(err)
	}

	minority.cut()
	// Until its election timer fires, the minority still forwards to the leader it knew,
	// which holds a quorum, so those writes are rightly acknowledged. Once it has noticed
	// that it lost the leader, nothing it is asked to do may succeed.
	eventually(t, minority.id+" notices it lost the leader", func() error {
		if id := minority.node.Leader(); id != "" {
			return fmt.Errorf("%s still follows %s", minority.id, id)
		}
		return nil
	})
	var majority store.Result
	for i := 0; i < 5; i++ {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := write(wctx, minority.node, fmt.Sprint("minority-", i), "sato")
		cancel()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("write %d on the partitioned %s: %v, want ErrUnavailable", i, minority.id, err)
		}
		// The majority keeps its leader and goes on acknowledging writes, through the leader
		// and through the other follower.
		// (A slow machine may see an election among them: UNAVAILABLE, retried.)
		w := []*faultNode{l, other}[i%2]
		eventually(t, fmt.Sprintf("write %d on %s in the majority", i, w.id), func() error {
			res, err := write(ctx, w.node, fmt.Sprint("majority-", i), "ito")
			if errors.Is(err, store.ErrAlreadyExists) { // an earlier attempt was applied
				res.Revision, err = w.node.ReadIndex(ctx)
			}
			majority = res
			return err
		})
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		rev, err := minority.node.ReadIndex(rctx)
		cancel()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a fully consistent read on the partitioned %s answered revision %d (err %v); the majority is at %d", minority.id, rev, err, majority.Revision)
		}
	}
	if ok, err := minority.has(0, "majority-0", "ito"); err != nil || ok {
		t.Fatalf("the partitioned node received a write it could not have: %v, %v", ok, err)
	}

	minority.heal()
	eventually(t, minority.id+" answers fully consistent reads again", func() error {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		rev, err := minority.node.ReadIndex(rctx)
		if err != nil {
			return err
		}
		if rev < majority.Revision {
			return fmt.Errorf("read index %d, behind the majority's %d", rev, majority.Revision)
		}
		return minority.node.WaitApplied(rctx, rev)
	})
	for _, fn := range nodes {
		if err := fn.node.WaitApplied(ctx, majority.Revision); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if ok, err := fn.has(0, fmt.Sprint("majority-", i), "ito"); err != nil || !ok {
				t.Errorf("%s misses majority-%d after the heal: %v", fn.id, i, err)
			}
			// A refused write was refused, not queued: it never appears.
			if ok, err := fn.has(0, fmt.Sprint("minority-", i), "sato"); err != nil || ok {
				t.Errorf("%s holds minority-%d, a write that was refused: %v", fn.id, i, err)
			}
		}
	}
	if _, err := write(ctx, minority.node, "after-heal", "sato"); err != nil {
		t.Fatalf("a write on the healed node: %v", err)
	}
}
