package raftnode

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// LoadTLS reads the node's certificate and key and the cluster's CA (PEM files) into a
// mutual-TLS configuration for Config.TLS: the node presents its certificate both when it
// accepts and when it dials, and accepts only peers whose certificates the CA signed. When
// dialing it also checks that the peer's certificate names the host it dialed (a SAN with
// the IP address or DNS name of --raft-addr and of the gRPC address).
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, fmt.Errorf("%w: the certificate, key and CA files go together; give all three", ErrTLS)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: key pair %s, %s: %w", ErrTLS, certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %w", ErrTLS, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTLS, caFile)
	}
	return MutualTLS(cert, pool), nil
}

// MutualTLS is the configuration LoadTLS builds, from a key pair and a CA pool in memory.
func MutualTLS(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca,
		ClientCAs:    ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// PeerDialOptions are the gRPC dial options a node uses to reach the other nodes' cluster
// service when the cluster runs with conf (from LoadTLS): TLS, verifying the peer against the
// CA and presenting this node's certificate.
func PeerDialOptions(conf *tls.Config) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(conf.Clone()))}
}

// tlsStream is raft's stream layer over TLS: a TCP listener whose connections are TLS
// servers, and a dialer of TLS clients. The handshake of an accepted connection happens on
// its first read, in raft's per-connection goroutine, so a slow or hostile peer does not
// hold up the accept loop; a peer whose certificate the CA did not sign fails it there and
// is disconnected.
type tlsStream struct {
	net.Listener
	conf *tls.Config
}

// newTLSStream listens on addr (host:port) with conf.
func newTLSStream(addr string, conf *tls.Config) (*tlsStream, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if a, ok := lis.Addr().(*net.TCPAddr); !ok || a.IP.IsUnspecified() {
		lis.Close()
		return nil, fmt.Errorf("%w: %s is not an address other nodes can reach; give a host", ErrTLS, addr)
	}
	return &tlsStream{Listener: tls.NewListener(lis, conf), conf: conf}, nil
}

// Dial implements raft.StreamLayer; the handshake (both certificates checked) completes
// within timeout.
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.conf)
}
