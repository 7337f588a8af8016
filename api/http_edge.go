package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// What the HTTP listener checks before a request reaches an API: the content type of a body
// and its size. Everything else (the token, the request's fields) is checked where the gRPC
// API checks it, so that both wires give the same answer.

// bodyTooLargeError is what reading a body past the limit returns. It never leaves the HTTP
// layer, which answers it with 413: no gRPC code, so no error kind.
type bodyTooLargeError struct{ limit int64 }

func (e bodyTooLargeError) Error() string {
	return fmt.Sprintf("api: request body over %d bytes", e.limit)
}

// bodyKey carries a request's *bodyState.
type bodyKey struct{}

// bodyState records whether reading the body hit the limit, for the error handlers to turn
// into 413 what grpc-gateway reports as a decoding error.
type bodyState struct {
	limit    int64
	exceeded bool
}

func bodyOf(ctx context.Context) *bodyState {
	b, _ := ctx.Value(bodyKey{}).(*bodyState)
	return b
}

// limitedBody is a body that fails with bodyTooLargeError past the limit.
type limitedBody struct {
	io.ReadCloser // an http.MaxBytesReader
	state         *bodyState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.state.exceeded = true
		return n, bodyTooLargeError{limit: b.state.limit}
	}
	return n, err
}

// edge wraps both APIs in the route metrics.
func (h *HTTPServer) edge(next http.Handler) http.Handler {
	return h.metrics.observe(next)
}

// admitBody checks a request's body before a route reads it: its content type, and its size
// against the limit, which reading it past then enforces. It answers the request itself and
// returns ok false when the body is refused. Routes call it once they are matched, so that
// the refusal counts under the route.
func (h *HTTPServer) admitBody(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return r, true
	}
	if msg := badContentType(r); msg != "" {
		writeEdgeError(w, r, http.StatusUnsupportedMediaType, codes.InvalidArgument, msg)
		return r, false
	}
	limit := h.opts.MaxBodyBytes
	if r.ContentLength > limit {
		writeTooLarge(w, r, limit)
		return r, false
	}
	st := &bodyState{limit: limit}
	r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), state: st}
	return r.WithContext(context.WithValue(r.Context(), bodyKey{}, st)), true
}

// gatewayRoute is the grpc-gateway middleware that names the route (the path pattern of the
// generated handler that matched) and admits the body.
func (h *HTTPServer) gatewayRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := runtime.HTTPPattern(r.Context()); ok {
			setRoute(r.Context(), p.String())
		}
		r, ok := h.admitBody(w, r)
		if !ok {
			return
		}
		next(w, r, params)
	}
}

// badContentType says what is wrong with a request's Content-Type, or "" when the body is
// JSON. No Content-Type is taken as JSON. SpiceDB's HTTP API also takes curl's default,
// application/x-www-form-urlencoded, as JSON: SpiceDB's own examples send it (curl -d
// without a header), and they must work unchanged. AuthZEN requires application/json.
func badContentType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return ""
	}
	if err == nil && mt == "application/x-www-form-urlencoded" && !isAuthZENPath(r.URL.Path) {
		return ""
	}
	return fmt.Sprintf("Content-Type %q: the body must be JSON; send \"Content-Type: application/json\"", clip(ct))
}

// writeTooLarge answers 413 for a body over limit bytes.
func writeTooLarge(w http.ResponseWriter, r *http.Request, limit int64) {
	writeEdgeError(w, r, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
		fmt.Sprintf("the request body is over this server's limit of %d bytes; send fewer items per request", limit))
}

// writeEdgeError answers a request the HTTP layer refuses before any API sees it, in the
// error format of the API it was meant for: AuthZEN's plain message, or grpc-gateway's
// status JSON. It carries a request id like every other answer.
func writeEdgeError(w http.ResponseWriter, r *http.Request, httpCode int, code codes.Code, msg string) {
	id := requestID(metadata.NewIncomingContext(r.Context(), metadata.Pairs(requestIDHeader, r.Header.Get(requestIDHeader))))
	w.Header().Set(requestIDHeader, id)
	if isAuthZENPath(r.URL.Path) {
		writeAuthZENError(w, httpCode, msg)
		return
	}
	body, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(status.New(code, msg).Proto())
	if err != nil { // a status always marshals
		body = []byte(`{"code":2,"message":"error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_, _ = w.Write(body)
}

// httpStatus is the HTTP code of a gRPC error: grpc-gateway's table, the one SpiceDB's
// gateway answers with, for both APIs.
func httpStatus(err error) int {
	return runtime.HTTPStatusFromCode(status.Code(err))
}
