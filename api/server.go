// Package api serves the Authzed v1 gRPC API (the API SpiceDB serves) over kengen's store and
// check engine, so existing Authzed clients work unchanged. It owns authentication, request
// validation, the one mapping from errors to gRPC status codes, and request metrics; it holds
// no business logic.
//
// This file is the front door: Options, Server, New, Serve and Stop.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// Defaults for the request limits in Options.
const (
	DefaultMaxUpdatesPerWrite = 1_000
	DefaultMaxPreconditions   = 1_000
	DefaultMaxCheckBulkItems  = 1_000
	DefaultMaxReadLimit       = 1_000
	DefaultMaxDeleteLimit     = 1_000
	// DefaultMaxImportRelationships bounds one ImportBulkRelationships stream, which is one
	// atomic write (one raft entry): three times the 10,000 relationships a `zed backup
	// restore` transaction carries by default (10 batches of 1,000), and small enough that
	// relationships with two UUID ids (about 103 bytes each encoded) stay within
	// raftnode.MaxCommandBytes.
	DefaultMaxImportRelationships = 30_000
)

// Options configures a Server.
type Options struct {
	// Store is read by every request. Required. The Server does not close it.
	Store *store.Store
	// Writer carries every write. Nil means a LocalWriter over Store.
	Writer Writer
	// Checker answers checks. Nil means check.New(check.Options{}).
	Checker *check.Checker
	// PresharedKeys are the bearer tokens accepted; several may be valid at once for
	// rotation. At least one is required.
	PresharedKeys []string
	// TLS, when set, serves gRPC over TLS.
	TLS *tls.Config
	// Registerer receives the request metrics. Nil means no metrics are exported.
	Registerer prometheus.Registerer
	// Logger receives internal errors. Nil means slog.Default().
	Logger *slog.Logger
	// Ready, when set, is the rest of readiness beyond the server's own: raftnode's
	// Node.Ready, nil once the node can take writes. Until it returns nil, the gRPC health
	// service answers NOT_SERVING (Server.Ready). Nil means always ready.
	Ready func() error

	// MaxUpdatesPerWrite bounds the updates of one WriteRelationships call.
	MaxUpdatesPerWrite int
	// MaxPreconditions bounds the preconditions of one write or delete.
	MaxPreconditions int
	// MaxCheckBulkItems bounds the items of one CheckBulkPermissions call.
	MaxCheckBulkItems int
	// MaxReadLimit bounds optional_limit of ReadRelationships; a larger one is refused. A
	// request without a limit streams every match.
	MaxReadLimit int
	// MaxDeleteLimit bounds optional_limit of DeleteRelationships.
	MaxDeleteLimit int
	// MaxImportRelationships bounds the relationships of one ImportBulkRelationships stream
	// (one atomic write); a longer stream is refused and nothing of it is written.
	MaxImportRelationships int

	// QuantizeWindow, when positive, makes minimize_latency reads share one revision for up
	// to this long (quantize.go), so that concurrent callers share the checker's cache; a
	// read may then miss writes younger than the window. Zero reads the latest revision.
	QuantizeWindow time.Duration
}

// Server serves the Authzed v1 API. Build it with New, run it with Serve, end it with Stop.
type Server struct {
	opts    Options
	st      *store.Store
	writer  Writer
	checker *check.Checker
	auth    *authenticator
	metrics *grpcprom.ServerMetrics // interceptors.go
	lookups *lookupMetrics          // metrics.go
	log     *slog.Logger
	grpc    *grpc.Server
	health  *health.Server

	shared sharedRevision // quantize.go

	stopOnce sync.Once
	// stopping is closed when Stop begins, so that endless streams (Watch) end.
	stopping chan struct{}
}

// streamWorkers is how many goroutines serve requests: enough for a few callers per core.
func streamWorkers() uint32 { return uint32(max(16, 4*runtime.GOMAXPROCS(0))) }

// New returns a Server with the services registered, ready to Serve.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("api: Options.Store is required")
	}
	if len(opts.PresharedKeys) == 0 {
		return nil, errors.New("api: at least one preshared key is required")
	}
	for i, k := range opts.PresharedKeys {
		if k == "" {
			return nil, fmt.Errorf("api: preshared key %d is empty", i)
		}
	}
	setDefault(&opts.MaxUpdatesPerWrite, DefaultMaxUpdatesPerWrite)
	setDefault(&opts.MaxImportRelationships, DefaultMaxImportRelationships)
	setDefault(&opts.MaxPreconditions, DefaultMaxPreconditions)
	setDefault(&opts.MaxCheckBulkItems, DefaultMaxCheckBulkItems)
	setDefault(&opts.MaxReadLimit, DefaultMaxReadLimit)
	setDefault(&opts.MaxDeleteLimit, DefaultMaxDeleteLimit)

	s := &Server{
		opts:    opts,
		st:      opts.Store,
		writer:  opts.Writer,
		checker: opts.Checker,
		auth:    newAuthenticator(opts.PresharedKeys),
		log:     opts.Logger,
		health:  health.NewServer(),

		stopping: make(chan struct{}),
	}
	if s.writer == nil {
		s.writer = NewLocalWriter(opts.Store)
	}
	if s.checker == nil {
		s.checker = check.New(check.Options{})
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.lookups, err = registerLayerMetrics(opts.Registerer, opts.Store); err != nil { // metrics.go
		return nil, err
	}

	grpcOpts := []grpc.ServerOption{
		// Metrics outermost, so that they count the status the client gets.
		grpc.ChainUnaryInterceptor(s.metrics.UnaryServerInterceptor(), s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.metrics.StreamServerInterceptor(), s.streamInterceptor),
		// Requests run on long-lived workers instead of a new goroutine each: a check's call
		// chain through the engine and Pebble outgrows a new goroutine's stack, and growing
		// it (copying the stack, several times) cost 15% of the server's CPU under the check
		// mix. gRPC still starts a goroutine when every worker is busy.
		grpc.NumStreamWorkers(streamWorkers()),
	}
	if opts.TLS != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	s.grpc = grpc.NewServer(grpcOpts...)
	v1.RegisterSchemaServiceServer(s.grpc, schemaService{Server: s})
	v1.RegisterPermissionsServiceServer(s.grpc, permissionsService{Server: s})
	v1.RegisterWatchServiceServer(s.grpc, watchService{Server: s})
	v1.RegisterExperimentalServiceServer(s.grpc, experimentalService{ps: permissionsService{Server: s}, ss: schemaService{Server: s}})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.metrics.InitializeMetrics(s.grpc) // every method's series exist from the start, at zero
	s.setHealth(opts.Ready == nil)
	return s, nil
}

// healthServices are the names the health service reports on ("" is the whole server).
var healthServices = []string{"", v1.SchemaService_ServiceDesc.ServiceName, v1.PermissionsService_ServiceDesc.ServiceName}

// readyPoll is how often a serving Server refreshes its health status from Ready.
const readyPoll = 250 * time.Millisecond

func (s *Server) setHealth(ready bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, svc := range healthServices {
		s.health.SetServingStatus(svc, st) // ignored once Stop has begun
	}
}

// watchReady keeps the health status in step with Ready until Stop.
func (s *Server) watchReady() {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
			_ = s.Ready()
		}
	}
}

func setDefault(v *int, d int) {
	if *v <= 0 {
		*v = d
	}
}

// Serve accepts connections on lis until Stop. It returns nil after a Stop.
func (s *Server) Serve(lis net.Listener) error {
	if s.opts.Ready != nil {
		go s.watchReady()
	}
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop marks the server not serving, stops accepting connections and waits for in-flight
// requests to finish; when ctx ends first it cancels them. The store stays open: its owner
// closes it after Stop returns.
func (s *Server) Stop(ctx context.Context) {
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.health.Shutdown()
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
			<-done
		}
	})
}

// schemaService and permissionsService split the Server's methods by service, so that each
// embeds only its own Unimplemented server.
type schemaService struct {
	v1.UnimplementedSchemaServiceServer
	*Server
}

type permissionsService struct {
	v1.UnimplementedPermissionsServiceServer
	*Server
}
