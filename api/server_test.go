package api

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/store"
)

// The integration tests start the real server on a random loopback port over a real on-disk
// store and drive it only through the authzed-go client.

const testKey = "kengen-test-key"

type testEnv struct {
	t      testing.TB
	client *authzed.Client
	addr   string
	st     *store.Store
	srv    *Server
	reg    *prometheus.Registry
}

// startServer starts a server over a fresh store in t.TempDir(). opts.Store, PresharedKeys
// and Registerer are filled in when empty.
func startServer(t testing.TB, opts Options) *testEnv {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	opts.Store = st
	if len(opts.PresharedKeys) == 0 {
		opts.PresharedKeys = []string{testKey}
	}
	reg := prometheus.NewRegistry()
	if opts.Registerer == nil {
		opts.Registerer = reg
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	env := &testEnv{t: t, addr: lis.Addr().String(), st: st, srv: srv, reg: reg}
	env.client = dial(t, env.addr, testKey)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	return env
}

// bearer sends a preshared key the way authzed-go's own helpers do.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// dial returns a client for addr sending token ("" for none).
func dial(t testing.TB, addr, token string) *authzed.Client {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	c, err := authzed.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("authzed.NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rel parses a relationship string (`deal:1#owner@user:sato`) into its proto.
func rel(t testing.TB, s string) *v1.Relationship {
	t.Helper()
	r, err := store.ParseRelationship(s)
	if err != nil {
		t.Fatalf("ParseRelationship(%q): %v", s, err)
	}
	p, err := relationshipToProto(&r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func relString(r *v1.Relationship) string {
	sr, err := relationshipFromProto("relationship", r)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return sr.String()
}

func update(t testing.TB, op v1.RelationshipUpdate_Operation, s string) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: op, Relationship: rel(t, s)}
}

func (e *testEnv) writeSchema(text string) *v1.ZedToken {
	e.t.Helper()
	resp, err := e.client.WriteSchema(ctxT(e.t), &v1.WriteSchemaRequest{Schema: text})
	if err != nil {
		e.t.Fatalf("WriteSchema: %v", err)
	}
	return resp.GetWrittenAt()
}

// touch writes relationships with TOUCH, in calls of at most 1,000.
func (e *testEnv) touch(rels ...string) *v1.ZedToken {
	e.t.Helper()
	var tok *v1.ZedToken
	for len(rels) > 0 {
		n := min(len(rels), DefaultMaxUpdatesPerWrite)
		var us []*v1.RelationshipUpdate
		for _, s := range rels[:n] {
			us = append(us, update(e.t, v1.RelationshipUpdate_OPERATION_TOUCH, s))
		}
		resp, err := e.client.WriteRelationships(ctxT(e.t), &v1.WriteRelationshipsRequest{Updates: us})
		if err != nil {
			e.t.Fatalf("WriteRelationships: %v", err)
		}
		tok, rels = resp.GetWrittenAt(), rels[n:]
	}
	return tok
}

// read returns the relationships the filter matches, as strings, at the consistency given.
func (e *testEnv) read(f *v1.RelationshipFilter, c *v1.Consistency) ([]string, error) {
	stream, err := e.client.ReadRelationships(ctxT(e.t), &v1.ReadRelationshipsRequest{Consistency: c, RelationshipFilter: f})
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, relString(resp.GetRelationship()))
	}
}

// dump returns every relationship of the given resource types.
func (e *testEnv) dump(types ...string) []string {
	e.t.Helper()
	var out []string
	for _, typ := range types {
		rs, err := e.read(&v1.RelationshipFilter{ResourceType: typ}, full())
		if err != nil {
			e.t.Fatalf("reading %s: %v", typ, err)
		}
		out = append(out, rs...)
	}
	return out
}

func (e *testEnv) check(c *v1.Consistency, resource, permission, subject string) (v1.CheckPermissionResponse_Permissionship, error) {
	e.t.Helper()
	req := checkReq(e.t, resource, permission, subject)
	req.Consistency = c
	resp, err := e.client.CheckPermission(ctxT(e.t), req)
	return resp.GetPermissionship(), err
}

// checkReq builds a request from `deal:1`, `view`, `user:sato` (or `group:eng#member`).
func checkReq(t testing.TB, resource, permission, subject string) *v1.CheckPermissionRequest {
	r := rel(t, resource+"#"+permission+"@"+subject)
	return &v1.CheckPermissionRequest{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}
}

func full() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
}

func exact(t *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: t}}
}

func fresh(t *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: t}}
}

// wantCode fails unless err has the code and its message contains every hint.
func wantCode(t testing.TB, err error, code codes.Code, hints ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v (%v), want code %v", status.Code(err), err, code)
	}
	msg := status.Convert(err).Message()
	for _, h := range hints {
		if !strings.Contains(msg, h) {
			t.Errorf("message %q does not mention %q", msg, h)
		}
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawConn is a plain gRPC connection without credentials, for the health service.
func rawConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
