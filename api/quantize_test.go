package api

import (
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// With a quantization window, minimize_latency reads share one revision until the window
// passes, so they may miss a newer write; a ZedToken still reads it at once. Without a
// window they read the latest revision.
func TestQuantizeWindow(t *testing.T) {
	latency := &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
	for _, tc := range []struct {
		window   time.Duration
		seesLate bool
	}{{0, true}, {time.Hour, false}} {
		env := startServer(t, Options{QuantizeWindow: tc.window})
		env.writeSchema(readFile(t, "testdata/crm.zed"))
		env.touch("deal:1#owner@user:sato")
		if got, err := env.check(latency, "deal:1", "view", "user:sato"); err != nil || got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
			t.Fatalf("window %v: first read: %v %v", tc.window, got, err)
		}
		tok := env.touch("deal:1#sub_assignee@user:tanaka")
		got, err := env.check(latency, "deal:1", "view", "user:tanaka")
		if err != nil {
			t.Fatal(err)
		}
		if seen := got == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION; seen != tc.seesLate {
			t.Errorf("window %v: minimize_latency sees the newer write: %v, want %v", tc.window, seen, tc.seesLate)
		}
		fresh := &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: tok}}
		if got, err := env.check(fresh, "deal:1", "view", "user:tanaka"); err != nil || got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
			t.Errorf("window %v: at_least_as_fresh: %v %v", tc.window, got, err)
		}
	}
}
