// Package raftnodetest holds what kengen's cluster, fault and process tests share, so that
// raftnode's, api's and cmd/kengen's tests poll, make certificates and fill disks one way:
// Eventually (poll with a deadline, never sleep-and-assert), a throwaway certificate
// authority for mutual TLS, and a real small filesystem to fill.
//
// It imports nothing of kengen's, so raftnode's own (in-package) tests can use it too.
package raftnodetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadline is how long Eventually polls. It is generous: CI's machine is loaded, and a
// condition that holds at all holds well within it.
const Deadline = 20 * time.Second

// Eventually polls cond every 20 ms until it returns nil, and fails the test with cond's last
// error if it still fails at the deadline.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(Deadline)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still failing at the deadline: %v", what, err)
}

// CA is a certificate authority made for one test.
type CA struct {
	Cert *x509.Certificate
	// Pool holds only Cert: what a peer or a client trusts.
	Pool *x509.CertPool
	// File is Cert as a PEM file (for --raft-tls-ca, --ca-cert).
	File string
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA named name, valid for the next hour.
func NewCA(t testing.TB, name string) *CA {
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
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ca := &CA{Cert: cert, Pool: pool, File: filepath.Join(t.TempDir(), name+".pem"), key: key}
	writePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

// Issue signs a certificate for name, valid for 127.0.0.1 as a server and as a client.
func (ca *CA) Issue(t testing.TB, name string) tls.Certificate {
	t.Helper()
	der, key := ca.sign(t, name)
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// IssueFiles is Issue written to PEM files, for a process's flags.
func (ca *CA) IssueFiles(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	der, key := ca.sign(t, name)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func (ca *CA) sign(t testing.TB, name string) ([]byte, *ecdsa.PrivateKey) {
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
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// MountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it at cleanup: a
// real filesystem that really fills. It skips the test when it cannot mount (not root, no
// mount permission in a container), saying why.
func MountTmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a %d MiB tmpfs for a real full filesystem (needs root): %v: %s", size>>20, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// FillTo allocates a new file in dir that leaves about leave bytes free on dir's filesystem,
// and returns its path: another program filling the disk. Removing the file frees its space;
// each call makes a file of its own.
func FillTo(t testing.TB, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free <= leave {
		t.Fatalf("%s has %d bytes free, already below %d", dir, free, leave)
	}
	f, err := os.CreateTemp(dir, "filler")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, free-leave); err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
	return f.Name()
}
