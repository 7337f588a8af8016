package raftnode

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
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
	"google.golang.org/grpc/credentials"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// startTLSNode starts a node whose raft transport and cluster gRPC service both run mutual
// TLS with conf.
func startTLSNode(t *testing.T, id string, bootstrap bool, conf *tls.Config) *testNode {
	t.Helper()
	dir := t.TempDir()
	tn := &testNode{t: t, id: id, dir: dir}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tn.grpcAddr = lis.Addr().String()
	if tn.st, err = store.Open(filepath.Join(dir, "store"), store.Options{NoSync: true, GCInterval: -1, SkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	tn.cfg = Config{
		NodeID: id, RaftAddr: "127.0.0.1:0", GRPCAddr: tn.grpcAddr, Dir: filepath.Join(dir, "raft"),
		Store: tn.st, Bootstrap: bootstrap, TLS: conf,
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, ApplyTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tn.node, err = Open(tn.cfg); err != nil {
		t.Fatal(err)
	}
	tn.raftAddr = tn.node.RaftAddr()
	tn.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(conf)))
	tn.srv.RegisterService(&ServiceDesc, tn.node)
	go func() { _ = tn.srv.Serve(lis) }()
	t.Cleanup(tn.stop)
	return tn
}

func TestTLSCluster(t *testing.T) {
	ca, other := kit.NewCA(t, "kengen test CA"), kit.NewCA(t, "another CA")
	conf := func(c *kit.CA, id string) *tls.Config { return MutualTLS(c.Issue(t, id), c.Pool) }

	nodes := []*testNode{startTLSNode(t, "n1", true, conf(ca, "n1"))}
	leader(t, nodes)
	for _, id := range []string{"n2", "n3"} {
		tn := startTLSNode(t, id, false, conf(ca, id))
		kit.Eventually(t, id+" joins over TLS", func() error { return tn.node.Join(ctxT(t), nodes[0].grpcAddr) })
		nodes = append(nodes, tn)
	}
	ctx := ctxT(t)
	// The schema goes through a follower: forwarded to the leader over TLS gRPC.
	kit.Eventually(t, "a schema write through n3", func() error {
		_, err := nodes[2].node.Writer().WriteSchema(ctx, testSchema)
		return err
	})
	for i, writer := range nodes {
		res, err := write(ctx, writer.node, fmt.Sprint(i), "sato")
		if err != nil {
			t.Fatalf("write on %s: %v", writer.id, err)
		}
		for _, reader := range nodes {
			if err := reader.node.WaitApplied(ctx, res.Revision); err != nil {
				t.Fatalf("%s waiting for %d: %v", reader.id, res.Revision, err)
			}
			if ok, err := reader.has(0, fmt.Sprint(i), "sato"); err != nil || !ok {
				t.Fatalf("%s does not see the write made on %s: %v", reader.id, writer.id, err)
			}
		}
	}

	// The raft port speaks TLS with a certificate of the cluster's CA, and turns away a
	// client certificate of another CA.
	raftAddr := nodes[0].raftAddr
	if _, err := tls.Dial("tcp", raftAddr, conf(other, "evil")); err == nil {
		t.Error("a node trusting another CA completed a handshake with n1's raft port")
	}
	c, err := tls.Dial("tcp", raftAddr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{other.Issue(t, "evil")}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("n1's raft port does not present a certificate of the cluster CA: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("n1's raft port kept a connection with a certificate of another CA: %v", err)
	}
	c.Close()
	// A node with a certificate of another CA cannot join: neither through the cluster
	// service nor by raft, and the cluster stays three.
	evil := startTLSNode(t, "evil", false, conf(other, "evil"))
	if err := evil.node.Join(ctx, nodes[0].grpcAddr); err == nil {
		t.Fatal("a node with a certificate of another CA joined")
	}
	stream := &tlsStream{conf: evil.cfg.TLS}
	if c, err := stream.Dial(raft.ServerAddress(raftAddr), time.Second); err == nil {
		c.Close()
		t.Error("the raft stream of a node of another CA connected to n1")
	}
	st, err := nodes[0].node.Status()
	if err != nil || len(st.Members) != 3 {
		t.Fatalf("n1's members after the refused join: %+v, %v", st.Members, err)
	}
	if evil.node.Leader() != "" {
		t.Errorf("the node of another CA knows leader %q", evil.node.Leader())
	}
}

func TestLoadTLS(t *testing.T) {
	ca := kit.NewCA(t, "kengen test CA")
	cert := ca.Issue(t, "n1")
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}),
		"junk.pem": []byte("not pem"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	conf, err := LoadTLS(p("cert.pem"), p("key.pem"), p("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if conf.ClientAuth != tls.RequireAndVerifyClientCert || len(conf.Certificates) != 1 || conf.RootCAs == nil {
		t.Errorf("LoadTLS is not mutual TLS: %+v", conf)
	}
	for _, bad := range [][3]string{
		{p("cert.pem"), p("key.pem"), ""},
		{p("cert.pem"), p("ca.pem"), p("ca.pem")},
		{p("cert.pem"), p("key.pem"), p("junk.pem")},
		{p("cert.pem"), p("key.pem"), p("missing.pem")},
	} {
		if _, err := LoadTLS(bad[0], bad[1], bad[2]); !errors.Is(err, ErrTLS) {
			t.Errorf("LoadTLS(%q): got %v, want ErrTLS", bad, err)
		}
	}
}
