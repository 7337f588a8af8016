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
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kengen/kengen/raftnode/internal/faultproxy"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// faultTestsEnv turns on the long versions of the fault tests (CI runs them through
// .ci/run); without it they run a short history that keeps `go test ./...` fast.
const faultTestsEnv = "KENGEN_FAULT_TESTS"

func longFaultTests() bool { return os.Getenv(faultTestsEnv) == "1" }

// faultNode is a testNode whose links to every other node go through fault proxies, one
// per direction: the proxy n1→n2 carries n1's raft RPCs and cluster gRPC calls to n2, the
// proxy n2→n1 those of n2 to n1. Each node dials its peers through its own proxies (raft's
// ServerAddressProvider and a gRPC dialer), so cutting a node's proxies in both directions
// partitions it away completely: it can neither reach the others nor be reached.
type faultNode struct {
	*testNode
	net *faultNet
	// raftView and grpcView map a peer to the address of this node's proxy to it.
	raftView *addrView
	grpcView *addrView
}

// cut partitions the node away: every link to and from it breaks (open connections close,
// new ones are refused) until heal.
func (fn *faultNode) cut() { fn.net.setCut(fn.id, true) }

func (fn *faultNode) heal() { fn.net.setCut(fn.id, false) }

// faultNet holds the proxies of every directed link between the fault nodes.
type faultNet struct {
	mu struct {
		sync.Mutex
		cut   map[string]bool
		links map[[2]string][]*faultproxy.Proxy // {from, to} → raft and gRPC proxies
	}
}

// setCut marks a node cut or not; a link is open only while neither of its ends is cut, so
// healing one of two cut nodes leaves the link between them cut.
func (fnet *faultNet) setCut(id string, cut bool) {
	fnet.mu.Lock()
	defer fnet.mu.Unlock()
	fnet.mu.cut[id] = cut
	for ends, proxies := range fnet.mu.links {
		for _, p := range proxies {
			if fnet.mu.cut[ends[0]] || fnet.mu.cut[ends[1]] {
				p.Cut()
			} else {
				p.Restore()
			}
		}
	}
}

// addrView is one node's view of its peers' addresses: raft's ServerAddressProvider for the
// raft transport, and the rewrite a gRPC dialer applies.
type addrView struct {
	mu struct {
		sync.Mutex
		addrs map[string]string
	}
}

func newAddrView() *addrView {
	v := &addrView{}
	v.mu.addrs = map[string]string{}
	return v
}

func (v *addrView) set(key, addr string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mu.addrs[key] = addr
}

func (v *addrView) lookup(key string) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	a, ok := v.mu.addrs[key]
	return a, ok
}

// ServerAddr implements raft.ServerAddressProvider.
func (v *addrView) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if a, ok := v.lookup(string(id)); ok {
		return raft.ServerAddress(a), nil
	}
	return "", fmt.Errorf("no proxy to %s", id)
}

// dial is the gRPC dialer: a peer's address is replaced by this node's proxy to it.
func (v *addrView) dial(ctx context.Context, addr string) (net.Conn, error) {
	if a, ok := v.lookup(addr); ok {
		addr = a
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// startFaultCluster starts three nodes, puts a proxy on each direction of each link, and
// bootstraps them.
func startFaultCluster(t *testing.T) []*faultNode {
	t.Helper()
	fnet := &faultNet{}
	fnet.mu.cut = map[string]bool{}
	fnet.mu.links = map[[2]string][]*faultproxy.Proxy{}
	var (
		nodes []*faultNode
		conf  raft.Configuration
	)
	for _, id := range []string{"n1", "n2", "n3"} {
		fn := startFaultNode(t, id, fnet)
		nodes = append(nodes, fn)
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(fn.raftAddr)})
	}
	var proxies []*faultproxy.Proxy
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			rp, err := faultproxy.Listen(to.raftAddr)
			if err != nil {
				t.Fatal(err)
			}
			gp, err := faultproxy.Listen(to.grpcAddr)
			if err != nil {
				t.Fatal(err)
			}
			proxies = append(proxies, rp, gp)
			from.raftView.set(to.id, rp.Addr())
			from.grpcView.set(to.grpcAddr, gp.Addr())
			fnet.mu.links[[2]string{from.id, to.id}] = []*faultproxy.Proxy{rp, gp}
		}
	}
	t.Cleanup(func() {
		for _, fn := range nodes {
			fn.stop() // before the proxies close
		}
		for _, p := range proxies {
			_ = p.Close()
		}
	})
	for _, fn := range nodes {
		// A node the first two already reached (they elect a leader as soon as both are
		// bootstrapped, within milliseconds on a loaded machine) has the configuration from
		// the leader and cannot be bootstrapped: it is a member either way.
		if err := fn.node.raft.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			t.Fatalf("bootstrapping %s: %v", fn.id, err)
		}
	}
	for _, fn := range nodes {
		kit.Eventually(t, fn.id+" knows the members", func() error {
			for _, o := range nodes {
				if fn.node.fsm.member(o.id) != o.grpcAddr {
					return fmt.Errorf("%s does not know %s", fn.id, o.id)
				}
			}
			return nil
		})
	}
	return nodes
}

func startFaultNode(t *testing.T, id string, fnet *faultNet) *faultNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fn := &faultNode{net: fnet, raftView: newAddrView(), grpcView: newAddrView()}
	tn := &testNode{t: t, id: id, dir: dir, grpcAddr: lis.Addr().String()}
	fn.testNode = tn
	tn.cfg = faultNodeConfig(id)
	if tn.st, err = store.Open(filepath.Join(dir, "store"), store.Options{NoSync: true, GCInterval: -1, SkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	cfg := tn.cfg
	cfg.Store, cfg.Dir, cfg.RaftAddr, cfg.GRPCAddr = tn.st, filepath.Join(dir, "raft"), "127.0.0.1:0", tn.grpcAddr
	cfg.ServerAddressProvider = fn.raftView
	cfg.DialOptions = []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(fn.grpcView.dial),
	}
	if tn.node, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	tn.raftAddr = tn.node.RaftAddr()
	tn.srv = grpc.NewServer()
	tn.srv.RegisterService(&ServiceDesc, tn.node)
	go func() { _ = tn.srv.Serve(lis) }()
	t.Cleanup(tn.stop)
	return fn
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

// A follower partitioned away in both directions (it reaches no one and no one reaches it,
// over raft and over the cluster service) acknowledges no write and answers no fully
// consistent read (both fail with ErrUnavailable) while the majority goes on writing; after
// the links heal it catches up, and none of the writes it refused appears anywhere.
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
	kit.Eventually(t, minority.id+" notices it lost the leader", func() error {
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
		kit.Eventually(t, fmt.Sprintf("write %d on %s in the majority", i, w.id), func() error {
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
	kit.Eventually(t, minority.id+" answers fully consistent reads again", func() error {
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
