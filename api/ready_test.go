package api

import (
	"errors"
	"sync/atomic"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// TestHealthFollowsReady: with Options.Ready the health service says NOT_SERVING until Ready
// returns nil, SERVING while it does, and NOT_SERVING again when it fails (a lost leader).
func TestHealthFollowsReady(t *testing.T) {
	var notReady atomic.Pointer[error]
	why := errors.New("raftnode: not ready: no leader is known")
	notReady.Store(&why)
	env := startServer(t, Options{Ready: func() error { return *notReady.Load() }})
	hc := healthpb.NewHealthClient(rawConn(t, env.addr))
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := hc.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: v1.PermissionsService_ServiceDesc.ServiceName})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if got := status(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health before ready: %v, want NOT_SERVING", got)
	}
	if err := env.srv.Ready(); !errors.Is(err, why) {
		t.Errorf("Ready before ready: %v", err)
	}
	var none error
	notReady.Store(&none)
	if err := env.srv.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := status(); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health once Ready returned nil: %v, want SERVING", got)
	}
	notReady.Store(&why)
	kit.Eventually(t, "health NOT_SERVING after readiness is lost", func() error {
		if status() != healthpb.HealthCheckResponse_NOT_SERVING {
			return errors.New("still SERVING")
		}
		return nil
	})
}

// TestHealthBeforeLeadership: over real raft nodes, a node that is in no cluster yet (no
// leader) is NOT_SERVING; once it has joined one and caught up it is SERVING.
func TestHealthBeforeLeadership(t *testing.T) {
	n2 := startClusterNode(t, "n2", false)
	hc := healthpb.NewHealthClient(rawConn(t, n2.addr))
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := hc.Check(ctxT(t), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if got := check(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health of a node without a leader: %v, want NOT_SERVING", got)
	}
	if err := n2.srv.Ready(); err == nil {
		t.Error("Ready of a node without a leader: nil")
	}
	n1 := startClusterNode(t, "n1", true)
	kit.Eventually(t, "n2 joins", func() error { return n2.node.Join(ctxT(t), n1.addr) })
	kit.Eventually(t, "n2 SERVING", func() error {
		if got := check(); got != healthpb.HealthCheckResponse_SERVING {
			return errors.New(got.String())
		}
		return nil
	})
}
