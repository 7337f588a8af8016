package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/store"
)

// brokenWriter fails every write with an error nobody classified, as a bug or a failing disk
// would.
type brokenWriter struct{}

const brokenCause = "pebble: open /data/store/000042.sst: input/output error"

func (brokenWriter) WriteSchema(context.Context, string) (store.Revision, error) {
	return 0, errors.New(brokenCause)
}

func (brokenWriter) Apply(context.Context, *store.Batch) (store.Result, error) {
	return store.Result{}, errors.New(brokenCause)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInternalErrorRequestID: an INTERNAL error reaches the client as the fixed message and a
// request id, sent also as the x-request-id response header; the cause is in the server's
// log under that id. A client that sends its own x-request-id gets it back and finds it in
// the log.
func TestInternalErrorRequestID(t *testing.T) {
	var logs lockedBuffer
	env := startServer(t, Options{Writer: brokenWriter{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	var header metadata.MD
	_, err := env.client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: "definition user {}"}, grpc.Header(&header))
	s := status.Convert(err)
	if s.Code() != codes.Internal {
		t.Fatalf("a write failing inside: %v, want INTERNAL", err)
	}
	if strings.Contains(s.Message(), "000042.sst") || !strings.HasPrefix(s.Message(), internalMessage) {
		t.Errorf("the client's message %q: want the fixed message, not the cause", s.Message())
	}
	ids := header.Get(requestIDHeader)
	if len(ids) != 1 || ids[0] == "" {
		t.Fatalf("response header %s = %q, want one id", requestIDHeader, ids)
	}
	if !strings.Contains(s.Message(), ids[0]) {
		t.Errorf("the message %q does not carry the request id %s", s.Message(), ids[0])
	}
	if !strings.Contains(logs.String(), "request_id="+ids[0]) || !strings.Contains(logs.String(), "000042.sst") {
		t.Errorf("the server log does not hold the cause under request id %s:\n%s", ids[0], logs.String())
	}

	// The client's own id.
	ctx := metadata.AppendToOutgoingContext(ctxT(t), requestIDHeader, "deploy-7f3a")
	header = nil
	_, err = env.client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}"}, grpc.Header(&header))
	if got := header.Get(requestIDHeader); len(got) != 1 || got[0] != "deploy-7f3a" {
		t.Errorf("response header %s = %q, want the client's deploy-7f3a", requestIDHeader, got)
	}
	if !strings.Contains(status.Convert(err).Message(), "deploy-7f3a") || !strings.Contains(logs.String(), "request_id=deploy-7f3a") {
		t.Errorf("the client's request id is not in the message (%v) or the log", err)
	}

	// A request that succeeds carries an id too, and an id with spaces is replaced.
	ctx = metadata.AppendToOutgoingContext(ctxT(t), requestIDHeader, "two words")
	header = nil
	if _, err := env.client.ReadSchema(ctx, &v1.ReadSchemaRequest{}, grpc.Header(&header)); status.Code(err) != codes.NotFound {
		t.Fatalf("ReadSchema on an empty store: %v", err)
	}
	if got := header.Get(requestIDHeader); len(got) != 1 || got[0] == "two words" || got[0] == "" {
		t.Errorf("response header %s = %q, want a fresh id in place of an invalid one", requestIDHeader, got)
	}
}
