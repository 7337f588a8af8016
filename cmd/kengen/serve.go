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
	"net/http/pprof"
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
	"github.com/kengen/kengen/raftnode"
	"github.com/kengen/kengen/store"
)

const (
	defaultDataDir     = "./kengen-data"
	defaultGRPCAddr    = "127.0.0.1:50051"
	defaultMetricsAddr = "127.0.0.1:9090"
	defaultHTTPAddr    = "127.0.0.1:8443"
	defaultRaftAddr    = "127.0.0.1:50052"
	defaultNodeID      = "node1"
	// keyFile, storeDir and raftDir are the data directory's layout: the generated preshared
	// key, the Pebble store, and raft's log and snapshots.
	keyFile  = "preshared-key"
	storeDir = "store"
	raftDir  = "raft"
	// leaderWait is how often serve says why it still waits to be ready.
	leaderWait = 30 * time.Second
	// defaultShutdownTimeout bounds how long a stopping node takes (--shutdown-timeout).
	defaultShutdownTimeout = 10 * time.Second
)

type serveFlags struct {
	grpcAddr, metricsAddr string
	httpAddr              string
	httpAddrSet           bool // --http-addr given: no free port in its place
	pprof                 bool
	blockCacheMiB         int64
	keys                  []string
	tlsCert, tlsKey       string
	maxUpdates            int
	maxImport             int
	maxBulkItems          int
	retention             time.Duration
	maxDepth              int
	segmentMiB            int
	minFreeMiB            int64
	shutdownTimeout       time.Duration

	nodeID, raftAddr, join string
	bootstrap              bool

	raftCert, raftKey, raftCA string
	raftTLS                   *tls.Config // loaded from the three files above by serve
}

func newServeCmd(c *cli) *cobra.Command {
	var sf serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a kengen node",
		Long: `Run a kengen node: the Authzed v1 gRPC API over the data in --data-dir.

With no flags it is a working embedded node on 127.0.0.1. --http-addr serves SpiceDB's
HTTP/JSON API and the AuthZEN Authorization API on the same token and TLS (docs/http.md). Without --grpc-preshared-key it
creates a key on first start, stores it in the data directory (mode 0600) and prints it once;
client commands on the same machine find it there. Listening on a non-loopback address needs
--grpc-preshared-key or TLS (--grpc-tls-cert and --grpc-tls-key).

Every write goes through Raft. Without --join the node bootstraps a cluster of one on its
first start (--bootstrap is implied); with --join ADDR it asks the member whose gRPC address
is ADDR to add it as a voter. Nodes of one cluster share --grpc-preshared-key, which they
also use between themselves.

With --raft-tls-cert, --raft-tls-key and --raft-tls-ca, nodes talk to each other over mutual
TLS: the Raft transport, and the writes and admin calls they forward to each other's gRPC
port. The gRPC port then serves TLS with --grpc-tls-cert if given (it must be signed by the
same CA), else with the Raft certificate.

Below a minimum of free space on the data directory's filesystem (--min-free-mib) writes
fail with RESOURCE_EXHAUSTED naming the filesystem, reads go on, and writes succeed again
once space is freed.

SIGINT or SIGTERM stops the node within --shutdown-timeout: in-flight requests get half of
it to finish and are then cancelled, then raft stops and the store is closed; whatever is
still stuck after the timeout is abandoned and the process exits (raft's log is fsynced and
each entry is applied atomically, so the next start opens the directory and replays what
was not applied). One data directory serves one process: a second one is refused with the
first one's pid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sf.httpAddrSet = cmd.Flags().Changed("http-addr")
			return serve(cmd.Context(), c, &sf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.grpcAddr, "grpc-addr", defaultGRPCAddr, "address the gRPC API listens on")
	f.StringVar(&sf.httpAddr, "http-addr", defaultHTTPAddr, "address of the HTTP listener serving SpiceDB's HTTP/JSON API and the AuthZEN API, with the gRPC port's token and TLS (empty disables it; a free port when --grpc-addr asks for one and this flag is not given)")
	f.StringVar(&sf.metricsAddr, "metrics-addr", defaultMetricsAddr, "address of the Prometheus /metrics listener (empty disables it)")
	f.Int64Var(&sf.blockCacheMiB, "block-cache-mib", store.DefaultCacheSize>>20, "Pebble's block cache in MiB: reads that miss it go to the files")
	f.BoolVar(&sf.pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the metrics listener")
	f.StringArrayVar(&sf.keys, "grpc-preshared-key", nil, "preshared key clients send as bearer token; repeat for rotation")
	f.StringVar(&sf.tlsCert, "grpc-tls-cert", "", "PEM certificate for gRPC over TLS")
	f.StringVar(&sf.tlsKey, "grpc-tls-key", "", "PEM private key for gRPC over TLS")
	f.IntVar(&sf.maxUpdates, "max-updates-per-write", api.DefaultMaxUpdatesPerWrite, "most updates one WriteRelationships call may carry")
	f.IntVar(&sf.maxImport, "max-import-relationships", api.DefaultMaxImportRelationships, "most relationships one ImportBulkRelationships stream (one atomic write) may carry")
	f.IntVar(&sf.maxBulkItems, "max-check-bulk-items", api.DefaultMaxCheckBulkItems, "most items one CheckBulkPermissions call may carry")
	f.DurationVar(&sf.retention, "retention", store.DefaultRetention, "how long old revisions stay readable (at_exact_snapshot)")
	f.IntVar(&sf.maxDepth, "check-max-depth", check.DefaultMaxDepth, "most relations one check path may traverse")
	f.IntVar(&sf.segmentMiB, "raft-segment-mib", raftnode.DefaultSegmentSize>>20, "size in MiB of a raft log segment, allocated whole when it starts; the log is deleted by whole segments")
	f.Int64Var(&sf.minFreeMiB, "min-free-mib", 0, "free space in MiB kept on the data directory's filesystem: below it writes are refused (0: 5% of the filesystem, at least 16 MiB, at most 1 GiB; -1: no minimum)")
	f.DurationVar(&sf.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "longest a stop (SIGINT, SIGTERM) takes; in-flight requests get half of it")
	f.StringVar(&sf.nodeID, "node-id", defaultNodeID, "this node's id in the cluster; never change it for a data directory")
	f.StringVar(&sf.raftAddr, "raft-addr", "", "address of the Raft transport, reachable by the other nodes (default "+defaultRaftAddr+", or a free port when --grpc-addr asks for one)")
	f.BoolVar(&sf.bootstrap, "bootstrap", false, "start a new cluster with this node as its only voter (implied without --join)")
	f.StringVar(&sf.join, "join", "", "gRPC address of any member of the cluster to join")
	f.StringVar(&sf.raftCert, "raft-tls-cert", "", "PEM certificate this node presents to the other nodes (mutual TLS between nodes; needs --raft-tls-key and --raft-tls-ca)")
	f.StringVar(&sf.raftKey, "raft-tls-key", "", "PEM private key of --raft-tls-cert")
	f.StringVar(&sf.raftCA, "raft-tls-ca", "", "PEM CA certificate that signed every node's --raft-tls-cert; peers it did not sign are refused")
	return cmd
}

func serve(ctx context.Context, c *cli, sf *serveFlags) error {
	var tlsConf *tls.Config
	if (sf.tlsCert == "") != (sf.tlsKey == "") {
		return errors.New("--grpc-tls-cert and --grpc-tls-key go together; give both or neither")
	}
	if sf.segmentMiB < 1 {
		return fmt.Errorf("--raft-segment-mib %d: a segment needs at least 1 MiB", sf.segmentMiB)
	}
	if sf.minFreeMiB < -1 {
		return fmt.Errorf("--min-free-mib %d: give a size in MiB, 0 for the default or -1 for no minimum", sf.minFreeMiB)
	}
	if sf.shutdownTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout %s: give a positive duration", sf.shutdownTimeout)
	}
	if sf.blockCacheMiB < 1 {
		return fmt.Errorf("--block-cache-mib %d: the block cache needs at least 1 MiB", sf.blockCacheMiB)
	}
	if sf.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(sf.tlsCert, sf.tlsKey)
		if err != nil {
			return fmt.Errorf("loading the TLS key pair: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if sf.raftCert != "" || sf.raftKey != "" || sf.raftCA != "" {
		var err error
		if sf.raftTLS, err = raftnode.LoadTLS(sf.raftCert, sf.raftKey, sf.raftCA); err != nil {
			return fmt.Errorf("--raft-tls-cert, --raft-tls-key, --raft-tls-ca: %w", err)
		}
		if tlsConf == nil { // the other nodes dial this port over TLS, verified by the CA
			tlsConf = &tls.Config{Certificates: sf.raftTLS.Certificates, MinVersion: tls.VersionTLS12}
		}
	}
	if !sf.httpAddrSet {
		if _, port, err := net.SplitHostPort(sf.grpcAddr); err == nil && port == "0" {
			sf.httpAddr = "127.0.0.1:0" // tests and parallel nodes: no fixed port to collide on
		}
	}
	if len(sf.keys) == 0 && tlsConf == nil && sf.httpAddr != "" && !isLoopback(sf.httpAddr) {
		return fmt.Errorf("refusing to serve HTTP on %s, which is not a loopback address, without a preshared key or TLS: add --grpc-preshared-key KEY (and --grpc-tls-cert FILE --grpc-tls-key FILE to encrypt the traffic), or listen on 127.0.0.1", sf.httpAddr)
	}
	if len(sf.keys) == 0 && tlsConf == nil && !isLoopback(sf.grpcAddr) {
		return fmt.Errorf("refusing to serve on %s, which is not a loopback address, without a preshared key or TLS: add --grpc-preshared-key KEY (and --grpc-tls-cert FILE --grpc-tls-key FILE to encrypt the traffic), or listen on 127.0.0.1", sf.grpcAddr)
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	unlock, err := lockDataDir(c.dataDir) // lock.go: before anything in it is opened
	if err != nil {
		return err
	}
	clean := true // false once a stop timed out: the lock then lasts until the process exits
	defer func() {
		if clean {
			unlock()
		}
	}()
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

	if sf.bootstrap && sf.join != "" {
		return errors.New("--bootstrap starts a new cluster and --join joins one; give one of them")
	}
	lis, err := net.Listen("tcp", sf.grpcAddr)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	// The store does not fsync its own commits: every entry it applies is first fsynced in
	// the Raft log, and a store that lost its last commits in a crash is brought back by
	// raftnode (replaying the log above the last snapshot, or restoring the snapshot when the
	// store is behind it). One fsync per write instead of two per write per node
	// (docs/raft.md has the measured difference).
	stOpts := store.Options{Retention: sf.retention, NoSync: true, CacheSize: sf.blockCacheMiB << 20,
		MinFreeBytes: sf.minFreeMiB << 20}
	if sf.minFreeMiB < 0 {
		stOpts.MinFreeBytes = -1
	}
	if err := store.FinishRestore(filepath.Join(c.dataDir, storeDir), stOpts); err != nil {
		lis.Close()
		return err
	}
	st, err := store.Open(filepath.Join(c.dataDir, storeDir), stOpts)
	if err != nil {
		lis.Close()
		return err
	}
	// When writes are refused for want of space, raft's own entries (read barriers) still
	// append, and its log refuses appends below one segment and 1 MiB (raftnode/wallog.go):
	// the writes' minimum must be above that, two segments.
	if minFree := st.MinFreeBytes(); sf.minFreeMiB >= 0 && minFree > 0 && minFree < 2*uint64(sf.segmentMiB)<<20 {
		lis.Close()
		return errors.Join(fmt.Errorf("the %d MiB kept free on the data directory's filesystem (--min-free-mib) is less than two raft log segments (--raft-segment-mib %d): lower the segment size or raise the minimum", minFree>>20, sf.segmentMiB), st.Close())
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, nil))
	// One registry for every layer: runtime, raft (raftnode/metrics.go), api, check, store.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	node, err := openNode(c, sf, st, lis.Addr().String(), keys[0], logger, reg)
	if err != nil {
		lis.Close()
		return errors.Join(err, st.Close())
	}
	closeAll := func() error { return errors.Join(node.Close(), st.Close()) }
	observeCheck, err := api.CheckObserver(reg) // check metrics (api/metrics.go)
	if err != nil {
		lis.Close()
		return errors.Join(err, closeAll())
	}
	srv, err := api.New(api.Options{
		Store:                  st,
		Writer:                 node.Writer(),
		Checker:                check.New(check.Options{MaxDepth: sf.maxDepth, Observe: observeCheck}),
		PresharedKeys:          keys,
		TLS:                    tlsConf,
		Registerer:             reg,
		Logger:                 logger,
		Ready:                  node.Ready, // leader known, caught up: writes are taken
		MaxUpdatesPerWrite:     sf.maxUpdates,
		MaxImportRelationships: sf.maxImport,
		MaxCheckBulkItems:      sf.maxBulkItems,
	})
	if err != nil {
		lis.Close()
		return errors.Join(err, closeAll())
	}
	srv.RegisterService(&raftnode.ServiceDesc, node)
	web, err := startHTTP(srv, sf.httpAddr) // serve_http.go: nil when --http-addr is empty
	if err != nil {
		lis.Close()
		return errors.Join(err, closeAll())
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
			_ = web.stop(ctx)
			return errors.Join(fmt.Errorf("metrics listener: %w", err), closeAll())
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		// /healthz, /readyz (health.go): ready once a leader is known and this node caught up
		// with it, as the gRPC health service says (srv.Ready includes node.Ready).
		mountHealth(mux, srv.Ready)
		if sf.pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		metricsAddr = mlis.Addr().String()
		go func() { metricsDone <- metricsSrv.Serve(mlis) }()
	}

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(lis) }()
	// The serving line means the node takes writes: a script may write the schema the moment
	// it appears.
	if err := awaitServing(ctx, c, node, srv, sf.join); err != nil {
		fmt.Fprintf(c.stderr, "kengen: %v\n", err)
	} else {
		// One write: the logs go to the same terminal (or file) and must not land inside it.
		serving := fmt.Sprintf("kengen: serving the Authzed v1 API on %s", lis.Addr())
		if metricsAddr != "" {
			serving += fmt.Sprintf(", metrics on http://%s/metrics", metricsAddr)
		}
		if web != nil {
			serving += ", HTTP API on " + web.url
		}
		fmt.Fprintf(c.stdout, "%s, data in %s\n", serving, c.dataDir)
		if c.serveReady != nil {
			c.serveReady(lis.Addr().String(), metricsAddr)
		}
	}

	var serveErr error
	select {
	case <-ctx.Done():
		fmt.Fprintf(c.stdout, "kengen: stopping (within %s): finishing in-flight requests\n", sf.shutdownTimeout)
	case serveErr = <-serveDone:
		serveDone <- nil
	}
	// The whole stop is bounded: requests get half the timeout, then are cancelled; raft and
	// the store get the rest. What is still stuck then (an apply waiting on a disk) is left to
	// the process's exit, which loses nothing: raft's log is fsynced, each entry is applied in
	// one atomic batch, and the next start replays what was not applied.
	stopped := make(chan error, 1)
	go func() {
		requests, cancel := context.WithTimeout(context.Background(), sf.shutdownTimeout/2)
		defer cancel()
		stopped <- stopServing(c, srv, web, serveDone, metricsSrv, metricsDone, node, st, requests)
	}()
	timer := time.NewTimer(sf.shutdownTimeout)
	defer timer.Stop()
	select {
	case err := <-stopped:
		serveErr = errors.Join(serveErr, err)
	case <-timer.C:
		clean = false // parts of this process still hold the directory until it exits
		return errors.Join(serveErr, fmt.Errorf("stopping took longer than --shutdown-timeout %s; exiting without waiting for raft and the store (the next start replays the log)", sf.shutdownTimeout))
	}
	if serveErr == nil {
		fmt.Fprintln(c.stdout, "kengen: stopped; store closed")
	}
	return serveErr
}

// stopServing stops the gRPC and HTTP servers (gracefully until requests ends, then by
// cancelling what is in flight), the metrics listener, raft, and the store, in that order.
func stopServing(c *cli, srv *api.Server, web *httpListener, serveDone chan error, metricsSrv *http.Server, metricsDone chan error,
	node *raftnode.Node, st *store.Store, requests context.Context) error {
	var serveErr error
	webStopped := web.stopAsync(requests) // beside srv.Stop, which ends the streams HTTP waits on
	srv.Stop(requests)
	if err := <-webStopped; err != nil { // nil after a stop
		fmt.Fprintln(c.stderr, "kengen: HTTP serving ended with:", err)
	}
	if err := <-serveDone; err != nil { // nil after a stop
		fmt.Fprintln(c.stderr, "kengen: serving ended with:", err)
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(requests); err != nil {
			_ = metricsSrv.Close()
		}
		if err := <-metricsDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = errors.Join(serveErr, err)
		}
	}
	if err := node.Close(); err != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("stopping raft: %w", err))
	}
	if err := st.Close(); err != nil {
		return errors.Join(serveErr, fmt.Errorf("closing the store: %w", err))
	}
	return serveErr
}

// openNode starts this node's raft, in the data directory's raft folder.
func openNode(c *cli, sf *serveFlags, st *store.Store, grpcAddr, token string, logger *slog.Logger, reg prometheus.Registerer) (*raftnode.Node, error) {
	raftAddr := sf.raftAddr
	if raftAddr == "" {
		raftAddr = defaultRaftAddr
		if _, port, err := net.SplitHostPort(sf.grpcAddr); err == nil && port == "0" {
			raftAddr = "127.0.0.1:0"
		}
	}
	node, err := raftnode.Open(raftnode.Config{
		NodeID:      sf.nodeID,
		RaftAddr:    raftAddr,
		GRPCAddr:    grpcAddr,
		Dir:         filepath.Join(c.dataDir, raftDir),
		Store:       st,
		Bootstrap:   sf.bootstrap || sf.join == "",
		SegmentSize: sf.segmentMiB << 20,
		Token:       token,
		TLS:         sf.raftTLS,
		Logger:      logger,
		Registerer:  reg,
	})
	if errors.Is(err, raftnode.ErrDamagedLog) {
		return nil, fmt.Errorf("refusing to start: %w\nwith the node stopped, repair it: `kengen repair --data-dir %s --from-cluster --node-id %s` on a member of a cluster whose other members are healthy (the leader fills the node again), or `kengen repair --data-dir %s --from-store --node-id %s --raft-addr %s` on a single node (the log restarts from the store); both keep the damaged files beside the new ones (docs/raft.md, \"Repairing a node\")",
			err, c.dataDir, sf.nodeID, c.dataDir, sf.nodeID, raftAddr)
	}
	if err != nil {
		return nil, fmt.Errorf("starting raft on %s: %w", raftAddr, err)
	}
	return node, nil
}

// awaitServing joins the cluster at join (retrying until a member answers) and waits until the
// server is ready (srv.Ready: a leader is known, this node has caught up with it, so that it
// takes writes), however long that takes; every leaderWait it says on stderr why it still
// waits. It returns ctx's error when ctx ends first (the node is being stopped).
func awaitServing(ctx context.Context, c *cli, node *raftnode.Node, srv *api.Server, join string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	report := time.NewTicker(leaderWait)
	defer report.Stop()
	joined := join == ""
	var err error
	for {
		if !joined {
			if err = node.Join(ctx, join); err == nil {
				joined = true
			} else {
				err = fmt.Errorf("joining the cluster through %s: %w", join, err)
			}
		}
		if joined {
			if err = srv.Ready(); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped before the node was ready: %w", err)
		case <-report.C:
			fmt.Fprintf(c.stderr, "kengen: not serving writes yet (%v); still waiting\n", err)
		case <-t.C:
		}
	}
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
