package api

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/raftnode"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// clusterNode is an API server whose writes go through raftnode.
type clusterNode struct {
	id     string
	addr   string
	client *authzed.Client
	st     *store.Store
	node   *raftnode.Node
	srv    *Server
	done   chan error
	closed bool
}

// raftTimings are a test cluster's raft timeouts.
type raftTimings struct{ heartbeat, election, lease time.Duration }

// fastRaft elects and fails over within a fraction of a second, for tests of leader changes.
func fastRaft() raftTimings {
	return raftTimings{heartbeat: 150 * time.Millisecond, election: 150 * time.Millisecond, lease: 100 * time.Millisecond}
}

func startClusterNode(t *testing.T, id string, bootstrap bool) *clusterNode {
	t.Helper()
	return startClusterNodeWith(t, id, bootstrap, fastRaft())
}

func startClusterNodeWith(t *testing.T, id string, bootstrap bool, timings raftTimings) *clusterNode {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), store.Options{NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cn := &clusterNode{id: id, addr: lis.Addr().String(), st: st, done: make(chan error, 1)}
	cn.node, err = raftnode.Open(raftnode.Config{
		NodeID: id, RaftAddr: "127.0.0.1:0", GRPCAddr: cn.addr, Dir: filepath.Join(dir, "raft"), Store: st,
		Bootstrap: bootstrap, Token: testKey,
		HeartbeatTimeout: timings.heartbeat, ElectionTimeout: timings.election, LeaderLeaseTimeout: timings.lease,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	cn.srv, err = New(Options{Store: st, Writer: cn.node.Writer(), PresharedKeys: []string{testKey}, Ready: cn.node.Ready})
	if err != nil {
		t.Fatal(err)
	}
	cn.srv.RegisterService(&raftnode.ServiceDesc, cn.node)
	go func() { cn.done <- cn.srv.Serve(lis) }()
	cn.client = dial(t, cn.addr, testKey)
	t.Cleanup(cn.stop)
	return cn
}

func (cn *clusterNode) stop() {
	if cn.closed {
		return
	}
	cn.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cn.srv.Stop(ctx)
	<-cn.done
	_ = cn.node.Close()
	_ = cn.st.Close()
}

// Three API nodes over Raft: writes on followers are forwarded (through the cluster service
// and its authentication), tokens are honoured on every node, fully consistent reads see the
// latest write anywhere, and a minority acknowledges no write and answers no fully
// consistent read.
func TestAPIOverRaftCluster(t *testing.T) {
	nodes := startAPICluster(t)
	n1 := nodes[0]
	schema, err := os.ReadFile("testdata/crm.zed")
	if err != nil {
		t.Fatal(err)
	}
	kit.Eventually(t, "a schema write through n3", func() error {
		_, err := nodes[2].client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: string(schema)})
		return err
	})
	write := func(cn *clusterNode, r string) *v1.ZedToken {
		t.Helper()
		resp, err := cn.client.WriteRelationships(ctxT(t), &v1.WriteRelationshipsRequest{
			Updates: []*v1.RelationshipUpdate{update(t, v1.RelationshipUpdate_OPERATION_TOUCH, r)}})
		if err != nil {
			t.Fatalf("write %s on %s: %v", r, cn.id, err)
		}
		return resp.GetWrittenAt()
	}
	check := func(cn *clusterNode, c *v1.Consistency, resource, subject string) (v1.CheckPermissionResponse_Permissionship, error) {
		req := checkReq(t, resource, "view", subject)
		req.Consistency = c
		resp, err := cn.client.CheckPermission(ctxT(t), req)
		return resp.GetPermissionship(), err
	}
	has := v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	for i, w := range nodes {
		tok := write(w, "deal:"+w.id+"#owner@user:sato")
		for _, r := range nodes {
			if p, err := check(r, fresh(tok), "deal:"+w.id, "user:sato"); err != nil || p != has {
				t.Fatalf("write %d on %s, at_least_as_fresh on %s: %v %v", i, w.id, r.id, p, err)
			}
		}
	}
	for _, w := range nodes {
		write(w, "deal:full-"+w.id+"#owner@user:ito")
		for _, r := range nodes {
			if p, err := check(r, full(), "deal:full-"+w.id, "user:ito"); err != nil || p != has {
				t.Fatalf("write on %s, fully_consistent on %s: %v %v", w.id, r.id, p, err)
			}
		}
	}
	// A refused write through a follower keeps its code.
	_, err = nodes[1].client.WriteRelationships(ctxT(t), &v1.WriteRelationshipsRequest{
		Updates: []*v1.RelationshipUpdate{update(t, v1.RelationshipUpdate_OPERATION_CREATE, "deal:n1#owner@user:sato")}})
	wantCode(t, err, codes.AlreadyExists)

	// Stop two nodes: the one left is a minority.
	nodes[1].stop()
	nodes[2].stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = n1.client.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{
		Updates: []*v1.RelationshipUpdate{update(t, v1.RelationshipUpdate_OPERATION_TOUCH, "deal:lost#owner@user:sato")}})
	if code := codeOf(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Errorf("a write on a minority: %v, want UNAVAILABLE (or DEADLINE_EXCEEDED)", err)
	}
	req := checkReq(t, "deal:n1", "view", "user:sato")
	req.Consistency = full()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	_, err = n1.client.CheckPermission(ctx2, req)
	if code := codeOf(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Errorf("a fully consistent read on a minority: %v, want UNAVAILABLE (or DEADLINE_EXCEEDED)", err)
	}
	// minimize_latency still answers from the local store.
	if p, err := check(n1, nil, "deal:n1", "user:sato"); err != nil || p != has {
		t.Errorf("minimize_latency on a minority: %v %v", p, err)
	}
}

// codeOf is the gRPC code of a client error.
func codeOf(err error) codes.Code { return status.Code(err) }
