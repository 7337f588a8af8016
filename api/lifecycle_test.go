package api

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

func TestMetrics(t *testing.T) {
	env := crmEnv(t)
	env.touch("deal:1#owner@user:sato")
	for range 3 {
		if _, err := env.check(full(), "deal:1", "view", "user:sato"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := dial(t, env.addr, "wrong").ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.Unauthenticated)

	// The gRPC request metrics are go-grpc-middleware's, the names gRPC dashboards know.
	checkLabels := map[string]string{"grpc_type": "unary", "grpc_service": "authzed.api.v1.PermissionsService", "grpc_method": "CheckPermission"}
	withCode := func(l map[string]string, code string) map[string]string {
		out := map[string]string{"grpc_code": code}
		for k, v := range l {
			out[k] = v
		}
		return out
	}
	if got := counterValue(t, env.reg, "grpc_server_handled_total", withCode(checkLabels, "OK")); got != 3 {
		t.Errorf("CheckPermission OK count = %v, want 3", got)
	}
	if got := counterValue(t, env.reg, "grpc_server_started_total", checkLabels); got != 3 {
		t.Errorf("CheckPermission started = %v, want 3", got)
	}
	readSchema := map[string]string{"grpc_type": "unary", "grpc_service": "authzed.api.v1.SchemaService", "grpc_method": "ReadSchema"}
	if got := counterValue(t, env.reg, "grpc_server_handled_total", withCode(readSchema, "Unauthenticated")); got != 1 {
		t.Errorf("ReadSchema Unauthenticated count = %v, want 1", got)
	}
	if got := counterValue(t, env.reg, "grpc_server_handling_seconds", checkLabels); got != 3 {
		t.Errorf("CheckPermission latency samples = %v, want 3", got)
	}
	// Every method's series exists before its first call, at zero.
	const watch = `grpc_server_started_total{grpc_method="Watch",grpc_service="authzed.api.v1.WatchService",grpc_type="server_stream"}`
	if v, ok := gather(t, env.reg)[watch]; !ok || v != 0 {
		t.Errorf("%s = %v (present %v) before any call, want 0", watch, v, ok)
	}

	// Two servers registering on one registry collide; on their own registries they do not.
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(Options{Store: st, PresharedKeys: []string{"k"}, Registerer: env.reg}); err == nil {
		t.Error("a second server on the same registry: no error")
	}
	if _, err := New(Options{Store: st, PresharedKeys: []string{"k"}, Registerer: prometheus.NewRegistry()}); err != nil {
		t.Errorf("a second server on its own registry: %v", err)
	}
}

// counterValue returns a counter's value, or a histogram's sample count, for the labels.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestTLS(t *testing.T) {
	ca := kit.NewCA(t, "kengen test CA")
	cert, pool := ca.Issue(t, "kengen-test"), ca.Pool
	env := startServer(t, Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	client, err := authzed.NewClient(env.addr,
		grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")),
		grpc.WithPerRPCCredentials(bearer(testKey)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: "definition user {}"}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	// A plaintext client does not get through.
	_, err = env.client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.Unavailable)
}

// TestStop: after Stop, in-flight work has finished and new calls are refused; the store can
// be closed and reopened with everything in it.
func TestStop(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Store: st, PresharedKeys: []string{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	client := dial(t, lis.Addr().String(), testKey)
	if _, err := client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: "definition user {}"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Stop(ctx)
	if err := <-done; err != nil {
		t.Fatalf("Serve after Stop: %v", err)
	}
	_, err = client.ReadSchema(ctxT(t), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.Unavailable)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close()
	if _, text, _ := st.Schema(); text != "definition user {}" {
		t.Fatalf("schema after reopen: %q", text)
	}
}
