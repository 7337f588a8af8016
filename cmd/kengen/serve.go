package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/kengen/kengen/api"
	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

const (
	defaultDataDir     = "./kengen-data"
	defaultGRPCAddr    = "127.0.0.1:50051"
	defaultMetricsAddr = "127.0.0.1:9090"
	// keyFile and storeDir are the data directory's layout: the generated preshared key and
	// the Pebble store. (Raft's files will sit next to them.)
	keyFile  = "preshared-key"
	storeDir = "store"
	// shutdownGrace is how long a stopping server waits for in-flight requests.
	shutdownGrace = 30 * time.Second
)

type serveFlags struct {
	grpcAddr, metricsAddr string
	keys                  []string
	tlsCert, tlsKey       string
	maxUpdates            int
	maxBulkItems          int
	retention             time.Duration
	maxDepth              int
}

func newServeCmd(c *cli) *cobra.Command {
	var sf serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a kengen node",
		Long: `Run a kengen node: the Authzed v1 gRPC API over the data in --data-dir.

With no flags it is a working embedded node on 127.0.0.1. Without --grpc-preshared-key it
creates a key on first start, stores it in the data directory (mode 0600) and prints it once;
client commands on the same machine find it there. Listening on a non-loopback address needs
--grpc-preshared-key or TLS (--grpc-tls-cert and --grpc-tls-key).

SIGINT or SIGTERM stops the node: in-flight requests finish, then the store is closed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), c, &sf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.grpcAddr, "grpc-addr", defaultGRPCAddr, "address the gRPC API listens on")
	f.StringVar(&sf.metricsAddr, "metrics-addr", defaultMetricsAddr, "address of the Prometheus /metrics listener (empty disables it)")
	f.StringArrayVar(&sf.keys, "grpc-preshared-key", nil, "preshared key clients send as bearer token; repeat for rotation")
	f.StringVar(&sf.tlsCert, "grpc-tls-cert", "", "PEM certificate for gRPC over TLS")
	f.StringVar(&sf.tlsKey, "grpc-tls-key", "", "PEM private key for gRPC over TLS")
	f.IntVar(&sf.maxUpdates, "max-updates-per-write", api.DefaultMaxUpdatesPerWrite, "most updates one WriteRelationships call may carry")
	f.IntVar(&sf.maxBulkItems, "max-check-bulk-items", api.DefaultMaxCheckBulkItems, "most items one CheckBulkPermissions call may carry")
	f.DurationVar(&sf.retention, "retention", store.DefaultRetention, "how long old revisions stay readable (at_exact_snapshot)")
	f.IntVar(&sf.maxDepth, "check-max-depth", check.DefaultMaxDepth, "most relations one check path may traverse")
	return cmd
}

func serve(ctx context.Context, c *cli, sf *serveFlags) error {
	var tlsConf *tls.Config
	if (sf.tlsCert == "") != (sf.tlsKey == "") {
		return errors.New("--grpc-tls-cert and --grpc-tls-key go together; give both or neither")
	}
	if sf.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(sf.tlsCert, sf.tlsKey)
		if err != nil {
			return fmt.Errorf("loading the TLS key pair: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if len(sf.keys) == 0 && tlsConf == nil && !isLoopback(sf.grpcAddr) {
		return fmt.Errorf("refusing to serve on %s, which is not a loopback address, without a preshared key or TLS: add --grpc-preshared-key KEY (and --grpc-tls-cert FILE --grpc-tls-key FILE to encrypt the traffic), or listen on 127.0.0.1", sf.grpcAddr)
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	keys := sf.keys
	if len(keys) == 0 {
		key, created, err := localKey(c.dataDir)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(c.stdout, "kengen: no --grpc-preshared-key given; generated one and stored it in %s (mode 0600).\n", filepath.Join(c.dataDir, keyFile))
			fmt.Fprintf(c.stdout, "kengen: preshared key (shown once): %s\n", key)
		} else {
			fmt.Fprintf(c.stdout, "kengen: using the preshared key stored in %s\n", filepath.Join(c.dataDir, keyFile))
		}
		keys = []string{key}
	}

	st, err := store.Open(filepath.Join(c.dataDir, storeDir), store.Options{Retention: sf.retention})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := api.New(api.Options{
		Store:              st,
		Checker:            check.New(check.Options{MaxDepth: sf.maxDepth}),
		PresharedKeys:      keys,
		TLS:                tlsConf,
		Registerer:         reg,
		Logger:             slog.New(slog.NewTextHandler(c.stderr, nil)),
		MaxUpdatesPerWrite: sf.maxUpdates,
		MaxCheckBulkItems:  sf.maxBulkItems,
	})
	if err != nil {
		return errors.Join(err, st.Close())
	}
	lis, err := net.Listen("tcp", sf.grpcAddr)
	if err != nil {
		return errors.Join(fmt.Errorf("gRPC listener: %w", err), st.Close())
	}
	var (
		metricsSrv  *http.Server
		metricsAddr string
		metricsDone = make(chan error, 1)
	)
	if sf.metricsAddr != "" {
		mlis, err := net.Listen("tcp", sf.metricsAddr)
		if err != nil {
			lis.Close()
			return errors.Join(fmt.Errorf("metrics listener: %w", err), st.Close())
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		metricsAddr = mlis.Addr().String()
		go func() { metricsDone <- metricsSrv.Serve(mlis) }()
	}

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(lis) }()
	fmt.Fprintf(c.stdout, "kengen: serving the Authzed v1 API on %s", lis.Addr())
	if metricsAddr != "" {
		fmt.Fprintf(c.stdout, ", metrics on http://%s/metrics", metricsAddr)
	}
	fmt.Fprintf(c.stdout, ", data in %s\n", c.dataDir)
	if c.serveReady != nil {
		c.serveReady(lis.Addr().String(), metricsAddr)
	}

	var serveErr error
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.stdout, "kengen: stopping: finishing in-flight requests")
	case serveErr = <-serveDone:
		serveDone <- nil
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Stop(stopCtx)
	<-serveDone
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(stopCtx)
		if err := <-metricsDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = errors.Join(serveErr, err)
		}
	}
	if err := st.Close(); err != nil {
		return errors.Join(serveErr, fmt.Errorf("closing the store: %w", err))
	}
	if serveErr == nil {
		fmt.Fprintln(c.stdout, "kengen: stopped; store closed")
	}
	return serveErr
}

// localKey returns the preshared key stored in dataDir, creating it (mode 0600) if absent.
func localKey(dataDir string) (key string, created bool, err error) {
	path := filepath.Join(dataDir, keyFile)
	if b, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", false, fmt.Errorf("%s is empty; delete it to generate a new key", path)
		}
		return key, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	key = "kg_" + base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("storing the generated key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", false, err
	}
	return key, true, f.Close()
}

// isLoopback reports whether addr (host:port) listens only on a loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
