package raftnode_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kengen/kengen/api"
	"github.com/kengen/kengen/raftnode"
	"github.com/kengen/kengen/schema"
	"github.com/kengen/kengen/store"
)

const kindsKey = "kinds-test-key"

// apiNode is a real node of a cluster: a store on disk, raft on real TCP, the API and the
// cluster service on one gRPC port, and an authzed-go client of that port.
type apiNode struct {
	id     string
	addr   string
	node   *raftnode.Node
	client *authzed.Client
}

func startAPINode(t *testing.T, id string, bootstrap bool) *apiNode {
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
	an := &apiNode{id: id, addr: lis.Addr().String()}
	an.node, err = raftnode.Open(raftnode.Config{
		NodeID: id, RaftAddr: "127.0.0.1:0", GRPCAddr: an.addr, Dir: filepath.Join(dir, "raft"), Store: st,
		Bootstrap: bootstrap, Token: kindsKey,
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Store: st, Writer: an.node.Writer(), PresharedKeys: []string{kindsKey},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterService(&raftnode.ServiceDesc, an.node)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	if an.client, err = authzed.NewClient(an.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(kindsKey)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		an.client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		<-done
		_ = an.node.Close()
		_ = st.Close()
	})
	return an
}

func poll(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// TestErrorKindsThroughFollower walks every kind of the registry (raftnode.ErrorKinds: what a
// write can fail with on the leader) through a real three-node cluster: the leader answers a
// write with the kind's sentinel, wrapped with a detail; the same write sent to the leader's
// API and to a follower's (which forwards it over the cluster service) must get the same gRPC
// code, and the follower's message must still carry the leader's detail. (no_leader makes
// both wait for a leader until the deadline: UNAVAILABLE on both.)
func TestErrorKindsThroughFollower(t *testing.T) {
	nodes := []*apiNode{startAPINode(t, "n1", true)}
	poll(t, "n1 leads", func() error {
		if !nodes[0].node.IsLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	for _, id := range []string{"n2", "n3"} {
		an := startAPINode(t, id, false)
		poll(t, id+" joins", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return an.node.Join(ctx, nodes[0].addr)
		})
		nodes = append(nodes, an)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	poll(t, "a schema through n3", func() error {
		_, err := nodes[2].client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc { relation viewer: user }"})
		return err
	})
	var lead *apiNode
	for _, an := range nodes {
		if an.node.IsLeader() {
			lead = an
		}
	}
	if lead == nil {
		t.Fatal("no leader")
	}
	var follower *apiNode
	for _, an := range nodes {
		if an != lead {
			follower = an
			break
		}
	}
	req := &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
		Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"},
			Relation: "viewer",
			Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}},
		},
	}}}
	write := func(an *apiNode) (code, msg string) {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second) // no_leader waits for its deadline
		defer cancel()
		_, err := an.client.WriteRelationships(wctx, req)
		code, msg, _ = api.DescribeClientError(err)
		return code, msg
	}
	type injected struct {
		name string
		err  error
	}
	cases := []injected{{"schema error list", fmt.Errorf("leader-detail: %w", schema.ErrorList{{Pos: schema.Position{Line: 1, Column: 1}, Msg: "bad"}})}}
	for _, k := range raftnode.ErrorKinds() {
		cases = append(cases, injected{k.Name, fmt.Errorf("leader-detail: %w", k.Err)})
	}
	for _, c := range cases {
		raftnode.SetTestApplyErr(lead.node, func() error { return c.err })
		leaderCode, _ := write(lead)
		followerCode, followerMsg := write(follower)
		if leaderCode == "" || leaderCode == "Unknown" {
			t.Errorf("%s: the leader answered %q", c.name, leaderCode)
		}
		if followerCode != leaderCode {
			t.Errorf("%s: %s on the leader, %s through the follower (%s)", c.name, leaderCode, followerCode, followerMsg)
		}
		// no_leader is tried again until the deadline, so its last answer is the deadline's.
		if followerCode != "Internal" && c.name != "no_leader" && !strings.Contains(followerMsg, "leader-detail") {
			t.Errorf("%s: the follower's message %q lost the leader's detail", c.name, followerMsg)
		}
	}
	raftnode.SetTestApplyErr(lead.node, nil)
	if _, err := follower.client.WriteRelationships(ctx, req); err != nil {
		t.Errorf("a write through the follower once the leader answers normally: %v", err)
	}
}
