package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority for the raft mutual-TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(t.TempDir(), name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue signs a node certificate for 127.0.0.1 (server and client use) and returns the
// certificate and key files.
func (ca *testCA) issue(t *testing.T, node string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, node+".pem"), filepath.Join(dir, node+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// raftTLSFlags are the serve flags of a node whose certificate ca signs.
func raftTLSFlags(t *testing.T, ca *testCA, id string) []string {
	cert, key := ca.issue(t, id)
	return []string{"--raft-tls-cert", cert, "--raft-tls-key", key, "--raft-tls-ca", ca.file}
}

// Two `kengen serve` nodes with raft mutual TLS from one CA: the second joins, a write on
// the follower is forwarded and readable on the leader, and cluster status (over TLS,
// verified by the CA) shows both. A third node whose certificate another CA signed cannot
// join: the members refuse its handshake, serve reports why, and the membership stays as
// it was.
func TestServeRaftTLS(t *testing.T) {
	const key = "raft-tls-key"
	ca := newTestCA(t, "kengen-cluster-ca")
	env := map[string]string{"KENGEN_TOKEN": key}
	n1 := startNode(t, filepath.Join(t.TempDir(), "n1"), append([]string{"--grpc-preshared-key", key, "--node-id", "n1"}, raftTLSFlags(t, ca, "n1")...)...)
	n2 := startNode(t, filepath.Join(t.TempDir(), "n2"), append([]string{"--grpc-preshared-key", key, "--node-id", "n2", "--join", n1.grpcAddr}, raftTLSFlags(t, ca, "n2")...)...)
	client := func(n *node, args ...string) (string, error) {
		code, out, errs := n.kengen(t, env, append([]string{"--ca-cert", ca.file}, args...)...)
		if code != 0 {
			return out, fmt.Errorf("kengen %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out, nil
	}
	for _, args := range [][]string{{"schema", "write", "testdata/crm.zed"}, {"relationship", "touch", "deal:1", "owner", "user:sato"}} {
		eventually(t, "on the follower: "+strings.Join(args, " "), func() error {
			_, err := client(n2, args...)
			return err
		})
	}
	eventually(t, "the follower's write is readable on the leader", func() error {
		out, err := client(n1, "check", "deal:1", "view", "user:sato")
		if err != nil {
			return err
		}
		if out != "true\n" {
			return fmt.Errorf("check on n1 says %q", out)
		}
		return nil
	})
	members := func() (string, error) { return client(n1, "cluster", "status") }
	out, err := members()
	if err != nil || !strings.Contains(out, "leader n1") || !strings.Contains(out, "\nn2 ") {
		t.Fatalf("cluster status over TLS: %v\n%s", err, out)
	}

	// A node from another CA: serve gives up joining when its context ends (here after a
	// few seconds, instead of serve's own leader wait) and says why.
	rogue := newTestCA(t, "rogue-ca")
	var buf syncBuffer
	c := &cli{stdin: strings.NewReader(""), stdout: &buf, stderr: &buf, getenv: func(string) string { return "" }}
	root := newRootCmd(c)
	root.SetArgs(append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "n3"), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--grpc-preshared-key", key, "--node-id", "n3", "--join", n1.grpcAddr}, raftTLSFlags(t, rogue, "n3")...))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); err != nil {
		t.Logf("rogue serve: %v", err)
	}
	if got := buf.String(); !strings.Contains(got, "joining the cluster through "+n1.grpcAddr) || !strings.Contains(got, "certificate signed by unknown authority") {
		t.Errorf("the rogue node does not say that its certificate kept it out:\n%s", got)
	}
	out, err = members()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "n3") {
		t.Errorf("the rogue node became a member:\n%s", out)
	}
}
