package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kengen/kengen/api"
)

// connect opens a client to the endpoint the flags, the environment or the defaults name.
func (c *cli) connect() (*authzed.Client, error) {
	endpoint := firstNonEmpty(c.endpoint, c.getenv("KENGEN_ENDPOINT"), defaultGRPCAddr)
	token := firstNonEmpty(c.token, c.getenv("KENGEN_TOKEN"))
	if token == "" {
		b, err := os.ReadFile(filepath.Join(c.dataDir, keyFile))
		if err != nil {
			return nil, fmt.Errorf("no token: pass --token or set KENGEN_TOKEN (no key found in %s: %w)", c.dataDir, errors.Unwrap(err))
		}
		token = strings.TrimSpace(string(b))
	}
	var (
		creds  credentials.TransportCredentials
		secure bool
	)
	switch {
	case c.caCert != "":
		pem, err := os.ReadFile(c.caCert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert %s holds no PEM certificate", c.caCert)
		}
		creds, secure = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), true
	case c.insecure || isLoopback(endpoint) || isLoopbackHost(endpoint):
		creds = insecure.NewCredentials()
	default:
		creds, secure = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}), true
	}
	// The preshared key travels as a bearer token; over TLS grpcutil refuses to send it on
	// an insecure channel.
	bearer := grpcutil.WithInsecureBearerToken(token)
	if secure {
		bearer = grpcutil.WithBearerToken(token)
	}
	return authzed.NewClient(endpoint, grpc.WithTransportCredentials(creds), bearer)
}

func isLoopbackHost(endpoint string) bool {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return false
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// describe renders an error for the terminal: a gRPC status as "Code: message".
func describe(err error) string {
	if code, msg, ok := api.DescribeClientError(err); ok {
		return code + ": " + msg
	}
	return err.Error()
}

// printJSON prints a message in the Authzed API's JSON form, one object per line.
func (c *cli) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

// printStream receives every response of a server stream and prints it: as JSON with --json,
// else as the lines text gives for it.
func printStream[T proto.Message](c *cli, recv func() (T, error), text func(T) []string) error {
	for {
		resp, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if c.json {
			if err := c.printJSON(resp); err != nil {
				return err
			}
			continue
		}
		for _, line := range text(resp) {
			if _, err := fmt.Fprintln(c.stdout, line); err != nil {
				return err
			}
		}
	}
}
