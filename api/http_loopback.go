package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// The HTTP APIs reach the gRPC services through a loopback connection: the Server's own
// grpc.Server also serves an in-memory listener, and one client connection dials it. Every
// HTTP request is then an ordinary gRPC call through the whole interceptor chain (auth,
// request id, error mapping, metrics, recovery), streams included, which grpc-gateway's
// in-process Register*HandlerServer would bypass (and it cannot stream). The in-memory
// listener is not a socket: nothing outside the process can reach it, and it costs no port.

// loopbackBuffer is the in-memory connection's buffer in each direction.
const loopbackBuffer = 1 << 20

type loopback struct {
	srv *Server
	lis *bufconn.Listener
}

// newLoopback makes the Server serve an in-memory listener. The Server's Stop ends it, as it
// ends the gRPC listener.
func newLoopback(srv *Server) *loopback {
	lb := &loopback{srv: srv, lis: bufconn.Listen(loopbackBuffer)}
	go func() { _ = srv.grpc.Serve(lb.lis) }() // returns when the Server stops or lis closes
	return lb
}

// dial connects to the in-memory listener. When the Server serves TLS, the loopback speaks
// it too (the grpc.Server has one set of credentials for every listener); the certificate
// is checked to be one of the Server's own, since there is no name to verify on a pipe.
func (lb *loopback) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if conf := lb.srv.opts.TLS; conf != nil {
		creds = credentials.NewTLS(&tls.Config{
			MinVersion:            tls.VersionTLS12,
			InsecureSkipVerify:    true, // replaced by VerifyPeerCertificate: the Server's own certificate
			VerifyPeerCertificate: ownCertificate(conf),
		})
	}
	conn, err := grpc.NewClient("passthrough:///kengen-loopback",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lb.lis.DialContext(ctx)
		}),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("api: the HTTP gateway's loopback connection: %w", err)
	}
	return conn, nil
}

// ownCertificate accepts a peer certificate only if conf would present it. A conf that picks
// its certificate per connection (GetCertificate) is trusted as it is: the peer is the
// in-memory listener of this process.
func ownCertificate(conf *tls.Config) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(conf.Certificates) == 0 {
			return nil
		}
		if len(raw) == 0 {
			return errors.New("api: the loopback connection presented no certificate")
		}
		for _, c := range conf.Certificates {
			if len(c.Certificate) > 0 && bytes.Equal(c.Certificate[0], raw[0]) {
				return nil
			}
		}
		return errors.New("api: the loopback connection presented a certificate that is not the server's")
	}
}

func (lb *loopback) close() {
	_ = lb.lis.Close()
}
