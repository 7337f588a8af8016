package api

// This file is the HTTP front door: HTTPOptions, HTTPServer, NewHTTP, Serve and Stop. One
// listener serves two APIs (docs/http.md):
//
//   - SpiceDB's HTTP/JSON API, through the handlers authzed-go generates for grpc-gateway
//     (*.pb.gw.go): the same paths, JSON names, error bodies and newline-delimited streams;
//   - the AuthZEN Authorization API 1.0 (authzen.go), mapped onto the same services.
//
// Both call the Server's gRPC services through a loopback connection (http_loopback.go), an
// in-memory listener the gRPC server itself serves, so that every HTTP request passes the
// same interceptors as a gRPC one: bearer-token auth, request ids, the one error-to-status
// mapping, the gRPC metrics. The HTTP layer adds only what HTTP needs: the body limit,
// content types, the route metrics (http_metrics.go) and the status codes of HTTP.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// DefaultMaxHTTPBodyBytes bounds a request body on the HTTP listener: gRPC's own default
// limit on a received message.
const DefaultMaxHTTPBodyBytes = 4 << 20

// HTTPOptions configures an HTTPServer.
type HTTPOptions struct {
	// MaxBodyBytes bounds a request body; a larger one is refused with 413. Zero means
	// DefaultMaxHTTPBodyBytes.
	MaxBodyBytes int64
}

// HTTPServer serves SpiceDB's HTTP API and the AuthZEN API over a Server. Build it with
// NewHTTP, run it with Serve, end it with Stop (alongside the Server's own Stop).
type HTTPServer struct {
	srv      *Server
	opts     HTTPOptions
	loopback *loopback
	conn     *grpc.ClientConn
	metrics  *httpMetrics
	handler  http.Handler
	http     *http.Server
	// tls is whether Serve serves HTTPS, fixed by NewHTTP: net/http may fill in
	// http.TLSConfig itself once serving (to set up HTTP/2), so that is no test of it.
	tls bool
}

// NewHTTP returns the HTTP server of srv, with TLS when srv serves gRPC over TLS, its route
// metrics registered on srv's Registerer.
func NewHTTP(srv *Server, opts HTTPOptions) (*HTTPServer, error) {
	setDefault64(&opts.MaxBodyBytes, DefaultMaxHTTPBodyBytes)
	m, err := newHTTPMetrics(srv.opts.Registerer)
	if err != nil {
		return nil, err
	}
	lb := newLoopback(srv)
	conn, err := lb.dial()
	if err != nil {
		lb.close()
		return nil, err
	}
	h := &HTTPServer{srv: srv, opts: opts, loopback: lb, conn: conn, metrics: m}
	gw, err := h.gateway()
	if err != nil {
		_ = conn.Close()
		lb.close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", gw)
	h.mountAuthZEN(mux) // authzen.go
	h.handler = h.edge(mux)
	h.http = &http.Server{
		Handler:           h.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// net/http's own complaints (a failed TLS handshake) go to the Server's log.
		ErrorLog: slog.NewLogLogger(srv.log.Handler(), slog.LevelWarn),
	}
	if srv.opts.TLS != nil {
		conf := srv.opts.TLS.Clone()
		conf.NextProtos = []string{"h2", "http/1.1"}
		h.http.TLSConfig = conf
		h.tls = true
	}
	return h, nil
}

func setDefault64(v *int64, d int64) {
	if *v <= 0 {
		*v = d
	}
}

// Handler is the HTTP handler of both APIs, for tests and for embedding in another server.
func (h *HTTPServer) Handler() http.Handler { return h.handler }

// TLS reports whether the listener serves HTTPS (the Server serves gRPC over TLS).
func (h *HTTPServer) TLS() bool { return h.tls }

// Serve accepts HTTP connections on lis (HTTPS when the Server has TLS) until Stop. It
// returns nil after a Stop.
func (h *HTTPServer) Serve(lis net.Listener) error {
	var err error
	if h.tls {
		err = h.http.ServeTLS(lis, "", "")
	} else {
		err = h.http.Serve(lis)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Stop stops accepting connections and waits for in-flight requests; when ctx ends first it
// closes the connections, which cancels them. Call it alongside the Server's Stop: endless
// streams (a watch over HTTP) end when the Server stops.
func (h *HTTPServer) Stop(ctx context.Context) {
	if err := h.http.Shutdown(ctx); err != nil {
		_ = h.http.Close()
	}
	_ = h.conn.Close()
	h.loopback.close()
}

// gateway is SpiceDB's HTTP API: authzed-go's generated handlers over the loopback
// connection. The marshaler is grpc-gateway's default, as SpiceDB's gateway uses it: proto
// JSON names, unpopulated fields emitted, unknown fields ignored.
func (h *HTTPServer) gateway() (*runtime.ServeMux, error) {
	mux := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithErrorHandler(h.gatewayError),
		runtime.WithMiddlewares(h.gatewayRoute),
		runtime.WithForwardResponseOption(openWatchEarly),
	)
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		v1.RegisterSchemaServiceHandler,
		v1.RegisterPermissionsServiceHandler,
		v1.RegisterWatchServiceHandler,
		v1.RegisterExperimentalServiceHandler,
	} {
		if err := register(ctx, mux, h.conn); err != nil {
			return nil, fmt.Errorf("api: registering the HTTP gateway: %w", err)
		}
	}
	return mux, nil
}

// openWatchEarly answers an open watch's status and headers as soon as the server has
// accepted it, rather than with the first change, which may be long in coming: grpc-gateway
// writes a stream's headers with its first message, so an HTTP client (curl, an HTTP library's
// Do) would wait for the first write to learn that its watch is open. It runs where the
// gateway calls it before a stream's first message (msg nil), and only once the gRPC headers
// have come with watchOpenHeader (Watch sends them after validating the request,
// watch_service.go), so a refused watch still gets its own status.
func openWatchEarly(ctx context.Context, w http.ResponseWriter, msg proto.Message) error {
	if msg != nil {
		return nil
	}
	if p, ok := runtime.HTTPPathPattern(ctx); !ok || p != "/v1/watch" {
		return nil
	}
	if md, ok := runtime.ServerMetadataFromContext(ctx); !ok || len(md.HeaderMD.Get(watchOpenHeader)) == 0 {
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return http.NewResponseController(w).Flush()
}

// incomingHeader forwards the request id to the gRPC metadata, besides grpc-gateway's own
// choice (the authorization header is always forwarded).
func incomingHeader(key string) (string, bool) {
	if http.CanonicalHeaderKey(key) == http.CanonicalHeaderKey(requestIDHeader) {
		return requestIDHeader, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader returns the request id as X-Request-Id, the rest of the gRPC headers under
// grpc-gateway's Grpc-Metadata- prefix.
func outgoingHeader(key string) (string, bool) {
	if key == watchOpenHeader {
		return "", false
	}
	if key == requestIDHeader {
		return http.CanonicalHeaderKey(requestIDHeader), true
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// gatewayError is grpc-gateway's error response, which SpiceDB's gateway gives ({"code",
// "message", "details"} with the status's HTTP code; on 401 the message in WWW-Authenticate),
// with 413 for a body over the limit, which grpc-gateway reports as a decoding error.
func (h *HTTPServer) gatewayError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if b := bodyOf(r.Context()); b != nil && b.exceeded {
		writeTooLarge(w, r, b.limit)
		return
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}
