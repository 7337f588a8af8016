package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

const testSchema = `definition user {}
definition doc {
	relation viewer: user
	permission view = viewer
}`

// testNode is one in-process node: a store on disk, raft on a real TCP port, and the
// cluster service on a gRPC port.
type testNode struct {
	t        *testing.T
	id       string
	dir      string
	grpcAddr string
	raftAddr string
	st       *store.Store
	node     *Node
	srv      *grpc.Server
	cfg      Config
}

func startNode(t *testing.T, id, dir string, bootstrap bool, tune func(*Config)) *testNode {
	t.Helper()
	tn := &testNode{t: t, id: id, dir: dir, raftAddr: stablePort(t)}
	tn.cfg = Config{
		NodeID:             id,
		Bootstrap:          bootstrap,
		HeartbeatTimeout:   150 * time.Millisecond,
		ElectionTimeout:    150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tune != nil {
		tune(&tn.cfg)
	}
	tn.start()
	t.Cleanup(tn.stop)
	return tn
}

// stablePort returns a free loopback address below Linux's ephemeral port range (32768 and
// up), so that a node restarted on the same Raft address does not find it taken by some other
// test's outgoing connection or ":0" listener in the meantime.
func stablePort(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if lis, err := net.Listen("tcp", addr); err == nil {
			lis.Close()
			return addr
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// start (re)starts the node on its directories; a restart keeps the raft address.
func (tn *testNode) start() {
	tn.t.Helper()
	if err := tn.tryStart(); err != nil {
		tn.t.Fatal(err)
	}
}

// tryStart is start returning Open's error (with nothing left open).
func (tn *testNode) tryStart() error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tn.grpcAddr = lis.Addr().String()
	sdir := filepath.Join(tn.dir, "store")
	if err := store.FinishRestore(sdir, store.Options{}); err != nil {
		lis.Close()
		return err
	}
	if tn.st, err = store.Open(sdir, store.Options{NoSync: true, GCInterval: -1, SkipVerify: true}); err != nil {
		lis.Close()
		return err
	}
	cfg := tn.cfg
	cfg.Store, cfg.Dir, cfg.RaftAddr, cfg.GRPCAddr = tn.st, filepath.Join(tn.dir, "raft"), tn.raftAddr, tn.grpcAddr
	if tn.node, err = Open(cfg); err != nil {
		lis.Close()
		return errors.Join(err, tn.st.Close())
	}
	tn.raftAddr = tn.node.RaftAddr()
	tn.srv = grpc.NewServer()
	tn.srv.RegisterService(&ServiceDesc, tn.node)
	go func() { _ = tn.srv.Serve(lis) }()
	return nil
}

func (tn *testNode) stop() {
	if tn.node == nil {
		return
	}
	tn.srv.Stop()
	if err := tn.node.Close(); err != nil {
		tn.t.Errorf("closing %s: %v", tn.id, err)
	}
	if err := tn.st.Close(); err != nil {
		tn.t.Errorf("closing the store of %s: %v", tn.id, err)
	}
	tn.node = nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startCluster starts three nodes: the first bootstraps, the others join through its gRPC
// address. It returns once every node knows every member's gRPC address.
func startCluster(t *testing.T, tune func(*Config)) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, "n1", t.TempDir(), true, tune)}
	kit.Eventually(t, "n1 leads", func() error {
		if !nodes[0].node.IsLeader() {
			return errors.New("not leader")
		}
		return nil
	})
	for _, id := range []string{"n2", "n3"} {
		tn := startNode(t, id, t.TempDir(), false, tune)
		kit.Eventually(t, id+" joins", func() error { return tn.node.Join(ctxT(t), nodes[0].grpcAddr) })
		nodes = append(nodes, tn)
	}
	for _, tn := range nodes {
		kit.Eventually(t, tn.id+" knows the members", func() error {
			for _, o := range nodes {
				if tn.node.fsm.member(o.id) != o.grpcAddr {
					return fmt.Errorf("%s does not know %s", tn.id, o.id)
				}
			}
			return nil
		})
	}
	return nodes
}

func viewer(doc, user string) store.Update {
	return store.Update{Op: store.OpCreate, Relationship: store.Relationship{ResourceType: "doc", ResourceID: doc, Relation: "viewer", SubjectType: "user", SubjectID: user}}
}

func write(ctx context.Context, n *Node, doc, user string) (store.Result, error) {
	return n.Writer().Apply(ctx, &store.Batch{Updates: []store.Update{viewer(doc, user)}})
}

// has reports whether doc:doc#viewer@user:user is visible to a reader of tn at rev.
func (tn *testNode) has(rev store.Revision, doc, user string) (bool, error) {
	rd, err := tn.st.Reader(rev)
	if err != nil {
		return false, err
	}
	defer rd.Close()
	_, ok, err := rd.Get("doc", doc, "viewer", "user", user, "")
	return ok, err
}

func TestWriteOnAnyNodeReadableEverywhere(t *testing.T) {
	nodes := startCluster(t, nil)
	ctx := ctxT(t)
	if _, err := nodes[1].node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatalf("schema through a follower: %v", err)
	}
	for i, writer := range nodes {
		res, err := write(ctx, writer.node, fmt.Sprint(i), "sato")
		if err != nil {
			t.Fatalf("write on %s: %v", writer.id, err)
		}
		for _, reader := range nodes {
			// at_least_as_fresh: wait for the token's revision, then read.
			if err := reader.node.WaitApplied(ctx, res.Revision); err != nil {
				t.Fatalf("%s waiting for %d: %v", reader.id, res.Revision, err)
			}
			if ok, err := reader.has(0, fmt.Sprint(i), "sato"); err != nil || !ok {
				t.Fatalf("%s does not see the write made on %s at %d: %v", reader.id, writer.id, res.Revision, err)
			}
		}
	}
	// The store's own errors come back through the error value, forwarded or not.
	for _, tn := range nodes {
		_, err := write(ctx, tn.node, "0", "sato")
		if !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("duplicate CREATE on %s: got %v, want store.ErrAlreadyExists", tn.id, err)
		}
		_, err = tn.node.Writer().Apply(ctx, &store.Batch{
			Preconditions: []store.Precondition{{Op: store.MustMatch, Filter: store.Filter{ResourceType: "doc", ResourceID: "nope"}}},
			Updates:       []store.Update{viewer("x", "y")},
		})
		if !errors.Is(err, store.ErrPreconditionFailed) {
			t.Errorf("failed precondition on %s: got %v, want store.ErrPreconditionFailed", tn.id, err)
		}
		if _, err := tn.node.Writer().WriteSchema(ctx, "definition {"); !errors.Is(err, store.ErrInvalid) && err == nil {
			t.Errorf("bad schema on %s: got nil error", tn.id)
		}
	}
	// Fully consistent reads: every node's read index covers the last write.
	last, err := write(ctx, nodes[2].node, "last", "ito")
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range nodes {
		rev, err := tn.node.ReadIndex(ctx)
		if err != nil || rev < last.Revision {
			t.Fatalf("read index on %s: %d, %v; want >= %d", tn.id, rev, err, last.Revision)
		}
	}
}

func leader(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	var l *testNode
	kit.Eventually(t, "a leader", func() error {
		for _, tn := range nodes {
			if tn.node != nil && tn.node.IsLeader() {
				l = tn
				return nil
			}
		}
		return errors.New("no leader")
	})
	return l
}

func TestLeaderStopWritesResume(t *testing.T) {
	nodes := startCluster(t, nil)
	ctx := ctxT(t)
	if _, err := nodes[0].node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	old := leader(t, nodes)
	var survivors []*testNode
	for _, tn := range nodes {
		if tn != old {
			survivors = append(survivors, tn)
		}
	}
	// A stream of writes through the followers (forwarded to the leader) while the leader
	// stops. A write is retried until it is acknowledged; AlreadyExists on a retry means an
	// earlier attempt was applied without its acknowledgement arriving.
	var (
		acked    []string
		failures int
		stop     = make(chan struct{})
		done     = make(chan struct{})
		progress = make(chan int, 1000)
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			doc := fmt.Sprint("w", i)
			for attempt := 0; ; attempt++ {
				select {
				case <-stop:
					return
				default:
				}
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := write(wctx, survivors[attempt%2].node, doc, "sato")
				cancel()
				if err == nil || (attempt > 0 && errors.Is(err, store.ErrAlreadyExists)) {
					break
				}
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("write %s: %v, want success or ErrUnavailable", doc, err)
					return
				}
				failures++
				time.Sleep(10 * time.Millisecond)
			}
			acked = append(acked, doc)
			progress <- len(acked)
		}
	}()
	waitAcked := func(n int) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case got := <-progress:
				if got >= n {
					return
				}
			case <-done:
				t.Fatal("the writer stopped")
			case <-deadline:
				t.Fatalf("fewer than %d writes acknowledged", n)
			}
		}
	}
	waitAcked(20)
	old.stop()
	nl := leader(t, survivors)
	if nl == old {
		t.Fatal("the stopped node still leads")
	}
	before := len(progress) // drain what is there, then require more after the change
	for i := 0; i < before; i++ {
		<-progress
	}
	waitAcked(40)
	close(stop)
	<-done
	t.Logf("%d writes acknowledged, %d attempts refused as UNAVAILABLE during the leader change", len(acked), failures)

	final, err := write(ctx, survivors[0].node, "final", "ito")
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range survivors {
		if err := tn.node.WaitApplied(ctx, final.Revision); err != nil {
			t.Fatal(err)
		}
		for _, doc := range acked {
			if ok, err := tn.has(0, doc, "sato"); err != nil || !ok {
				t.Errorf("%s lost acknowledged write %s: %v", tn.id, doc, err)
			}
		}
		// Each write is a CREATE of a distinct relationship, so the count shows that no
		// entry was applied twice and no unacknowledged one is missing from the tally beyond
		// the in-flight write the stream was abandoned at.
		if got, want := tn.st.Stats().Relationships, int64(len(acked)+1); got != want && got != want+1 {
			t.Errorf("%s holds %d relationships, want %d (or one more in flight)", tn.id, got, want)
		}
	}
}

func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	nodes := startCluster(t, func(c *Config) {
		c.SnapshotThreshold = 20
		c.TrailingLogs = 5
		c.SnapshotInterval = 50 * time.Millisecond
		c.SegmentSize = 2 << 10
	})
	ctx := ctxT(t)
	if _, err := nodes[0].node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	l := leader(t, nodes)
	var follower *testNode
	for _, tn := range nodes {
		if tn != l {
			follower = tn
			break
		}
	}
	stoppedAt := follower.st.Revision()
	follower.stop()

	// Two of three nodes are up, so a loaded machine can cost the leader its 100 ms lease:
	// a write whose outcome is unknown is tried again (a TOUCH is idempotent), and the leader
	// whose log must be compacted is whichever leads after the writes.
	var last store.Result
	for i := 0; i < 60; i++ {
		kit.Eventually(t, fmt.Sprintf("write %d", i), func() error {
			var err error
			last, err = write(ctx, l.node, fmt.Sprint(i), "sato")
			return err
		})
	}
	var up []*testNode
	for _, tn := range nodes {
		if tn != follower {
			up = append(up, tn)
		}
	}
	l = leader(t, up)
	if err := l.node.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, err := l.node.wal.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first <= uint64(stoppedAt)+1 {
		t.Fatalf("the leader's log starts at %d, not past the follower's %d: no compaction", first, stoppedAt)
	}

	follower.start()
	if err := follower.node.WaitApplied(ctx, last.Revision); err != nil {
		t.Fatalf("the restarted follower did not catch up: %v", err)
	}
	if follower.node.fsm.restores.Load() == 0 {
		t.Error("the follower caught up without installing a snapshot")
	}
	for i := 0; i < 60; i++ {
		if ok, err := follower.has(0, fmt.Sprint(i), "sato"); err != nil || !ok {
			t.Fatalf("after catching up, %s misses doc:%d: %v", follower.id, i, err)
		}
	}
	if got := follower.st.Stats().Relationships; got != 60 {
		t.Errorf("%s holds %d relationships, want 60", follower.id, got)
	}
	// Writes go on through the restarted follower.
	if _, err := write(ctx, follower.node, "after-restart", "ito"); err != nil {
		t.Fatal(err)
	}
}

// A node joining a cluster that holds data (its log compacted behind a snapshot) receives
// the snapshot and answers the same; afterwards its writes and fully consistent reads work.
func TestNewNodeJoinsClusterWithData(t *testing.T) {
	tune := func(c *Config) { c.SnapshotThreshold, c.TrailingLogs = 10, 2 }
	n1 := startNode(t, "n1", t.TempDir(), true, tune)
	leader(t, []*testNode{n1})
	ctx := ctxT(t)
	if _, err := n1.node.Writer().WriteSchema(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		if _, err := write(ctx, n1.node, fmt.Sprint(i), "sato"); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, "n2", t.TempDir(), false, tune)
	kit.Eventually(t, "n2 joins", func() error { return n2.node.Join(ctx, n1.grpcAddr) })
	var rev store.Revision
	kit.Eventually(t, "a read index on n2", func() (err error) {
		// Until n2 has caught up it does not know the leader's gRPC address: UNAVAILABLE.
		rev, err = n2.node.ReadIndex(ctx)
		return err
	})
	if err := n2.node.WaitApplied(ctx, rev); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		if ok, err := n2.has(0, fmt.Sprint(i), "sato"); err != nil || !ok {
			t.Fatalf("the new node misses doc:%d: %v", i, err)
		}
	}
	if _, err := write(ctx, n2.node, "from-n2", "ito"); err != nil {
		t.Fatal(err)
	}
	st, err := n2.node.Status()
	if err != nil || len(st.Members) != 2 || st.Leader != "n1" {
		t.Fatalf("status of n2: %+v, %v", st, err)
	}
}
