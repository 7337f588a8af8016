package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/authzed/authzed-go/pkg/responsemeta"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kengen/kengen/check"
)

// The interceptor chain, outermost first: metrics (sees the final code), status (turns every
// error into a gRPC status with statusOf), recovery, auth. Handlers return plain Go errors.

// authenticator checks the bearer token against the preshared keys.
type authenticator struct {
	keys [][sha256.Size]byte // hashed, so comparisons take the same time whatever the length
}

func newAuthenticator(keys []string) *authenticator {
	a := &authenticator{}
	for _, k := range keys {
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	return a
}

// unauthenticated lists the services that answer without a token: health checks come from
// load balancers and orchestrators, reflection describes only the public protos.
func unauthenticated(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

func (a *authenticator) authenticate(ctx context.Context, fullMethod string) error {
	if unauthenticated(fullMethod) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return fmt.Errorf("%w: no bearer token; send the header \"authorization: Bearer <preshared key>\"", errUnauthenticated)
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return fmt.Errorf("%w: the authorization header must be \"Bearer <preshared key>\"", errUnauthenticated)
	}
	got := sha256.Sum256([]byte(token))
	match := 0
	for _, k := range a.keys {
		match |= subtle.ConstantTimeCompare(got[:], k[:])
	}
	if match != 1 {
		return fmt.Errorf("%w: the bearer token matches no preshared key of this server", errUnauthenticated)
	}
	return nil
}

// newMetrics makes the gRPC request metrics every gRPC dashboard knows (and SpiceDB exports):
// grpc_server_started_total, grpc_server_handled_total{grpc_code}, grpc_server_handling_seconds
// and the stream message counters, labelled grpc_type, grpc_service, grpc_method, from
// go-grpc-middleware's Prometheus provider. They are registered on reg (none when nil).
func newMetrics(reg prometheus.Registerer) (*grpcprom.ServerMetrics, error) {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10})))
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("api: registering metrics: %w", err)
	}
	return m, nil
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	id := requestID(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestIDHeader, id))
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("api: panic in handler", "method", info.FullMethod, "request_id", id, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("api: panic in %s", info.FullMethod)
		}
		err = s.finish(info.FullMethod, id, err)
	}()
	if err := s.auth.authenticate(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	sendServerVersion(ctx)
	ctx, counts := check.WithOperationCounts(context.WithValue(ctx, requestIDKey{}, id))
	defer func() { _ = grpc.SetTrailer(ctx, responseTrailers(id, counts)) }()
	return handler(ctx, req)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	id := requestID(ss.Context())
	_ = ss.SetHeader(metadata.Pairs(requestIDHeader, id))
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("api: panic in handler", "method", info.FullMethod, "request_id", id, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("api: panic in %s", info.FullMethod)
		}
		err = s.finish(info.FullMethod, id, err)
	}()
	if err := s.auth.authenticate(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	sendServerVersion(ss.Context())
	ctx, counts := check.WithOperationCounts(ss.Context())
	defer func() { ss.SetTrailer(responseTrailers(id, counts)) }()
	ss, counted := s.lookups.count(info.FullMethod, contextStream{ss, ctx}) // metrics.go
	defer counted()
	return handler(srv, ss)
}

// contextStream is a server stream whose handler sees ctx.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s contextStream) Context() context.Context { return s.ctx }

// responseTrailers is the metadata SpiceDB sends after every call: the request id (SpiceDB
// moved it to the trailers, kengen sends it in both), and how many operations the call
// dispatched and answered from cache — for kengen the check engine's sub-problems evaluated
// and those answered from the request's memo or the revision's cache.
func responseTrailers(id string, counts *check.OperationCounts) metadata.MD {
	return metadata.Pairs(
		string(responsemeta.RequestID), id,
		string(responsemeta.DispatchedOperationsCount), strconv.FormatInt(counts.Dispatched(), 10),
		string(responsemeta.CachedOperationsCount), strconv.FormatInt(counts.Cached(), 10),
	)
}

// finish maps a handler's error to its status, logs an INTERNAL error's cause under the
// request id (the client gets only the fixed message and the id), and records the request's
// metrics.
func (s *Server) finish(method, id string, err error) error {
	return s.statusFor(method, id, err).Err()
}

// statusFor is statusOf, and for INTERNAL the message with the request id, the cause logged
// under it.
func (s *Server) statusFor(method, id string, err error) *status.Status {
	st := statusOf(err)
	if st.Code() == codes.Internal {
		s.log.Error("api: internal error", "method", method, "request_id", id, "err", err)
		st = status.New(codes.Internal, fmt.Sprintf("%s (request id %s; the server log has the cause)", internalMessage, id))
	}
	return st
}

// requestIDKey carries the request id in a unary handler's context, for errors a handler
// reports inside a response (a CheckBulkPermissions item) rather than as the call's status.
type requestIDKey struct{}

// requestIDOf is the request id of a unary handler's ctx.
func requestIDOf(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestIDHeader names the request id in the response headers; a client may send its own
// in the request metadata under the same name.
const requestIDHeader = "x-request-id"

// requestID is the id the client sent under requestIDHeader, when it is 1 to 128 printable
// ASCII characters without spaces, else a new random one (16 hex digits).
func requestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vals := md.Get(requestIDHeader); len(vals) > 0 && validRequestID(vals[0]) {
			return vals[0]
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}
