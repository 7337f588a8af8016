package api

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

func TestZedTokensAndConsistency(t *testing.T) {
	env := crmEnv(t)
	t1 := env.touch("deal:1#owner@user:sato")
	t2 := env.touch("deal:1#follower@user:ito")
	if t1.GetToken() == t2.GetToken() {
		t.Fatalf("two writes returned the same token %q", t1.GetToken())
	}
	has := v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	no := v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	latency := &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}

	for _, tc := range []struct {
		name string
		c    *v1.Consistency
		want v1.CheckPermissionResponse_Permissionship
	}{
		{"unset", nil, has},
		{"minimize_latency", latency, has},
		{"fully_consistent", full(), has},
		{"at_least_as_fresh t1", fresh(t1), has},
		{"at_least_as_fresh t2", fresh(t2), has},
		{"at_exact_snapshot t1", exact(t1), no},
		{"at_exact_snapshot t2", exact(t2), has},
	} {
		req := checkReq(t, "deal:1", "view", "user:ito")
		req.Consistency = tc.c
		resp, err := env.client.CheckPermission(ctxT(t), req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.GetPermissionship() != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, resp.GetPermissionship(), tc.want)
		}
		if tc.c.GetAtExactSnapshot() != nil && resp.GetCheckedAt().GetToken() != tc.c.GetAtExactSnapshot().GetToken() {
			t.Errorf("%s: checked_at %q, want the snapshot's token", tc.name, resp.GetCheckedAt().GetToken())
		}
	}

	// Reads at an exact snapshot see the relationships of that revision.
	got, err := env.read(&v1.RelationshipFilter{ResourceType: "deal"}, exact(t1))
	if err != nil {
		t.Fatal(err)
	}
	wantRels(t, got, "deal:1#owner@user:sato")

	// A token from the future, garbage, an empty token.
	// A token from the future waits for the node to catch up, within the request's deadline.
	future := encodeZedToken(1_000_000)
	short, cancel := context.WithTimeout(ctxT(t), 100*time.Millisecond)
	defer cancel()
	req := checkReq(t, "deal:1", "view", "user:ito")
	req.Consistency = fresh(future)
	_, err = env.client.CheckPermission(short, req)
	wantCode(t, err, codes.DeadlineExceeded)
	// A token the node reaches while the read waits is answered.
	next := encodeZedToken(env.st.Revision() + 1)
	done := make(chan error, 1)
	go func() {
		_, err := env.check(fresh(next), "deal:1", "view", "user:ito")
		done <- err
	}()
	t2 = env.touch("deal:2#owner@user:sato")
	if err := <-done; err != nil {
		t.Fatalf("at_least_as_fresh of the next revision: %v", err)
	}
	_, err = env.check(exact(future), "deal:1", "view", "user:ito")
	wantCode(t, err, codes.FailedPrecondition)
	// The token of revision 0 ("AQA") names the empty store before any write: it is not the
	// latest revision, and reading there fails like any revision that is not kept.
	if zero := encodeZedToken(0); zero.GetToken() != "AQA" {
		t.Fatalf("the token of revision 0 is %q, want AQA", zero.GetToken())
	}
	_, err = env.check(exact(encodeZedToken(0)), "deal:1", "view", "user:ito")
	wantCode(t, err, codes.FailedPrecondition, "revision 0")
	_, err = env.check(exact(&v1.ZedToken{Token: "GARBAGE!"}), "deal:1", "view", "user:ito")
	wantCode(t, err, codes.InvalidArgument, "at_exact_snapshot", "zedtoken")

	// Once the garbage collector has moved past t1, reading there fails clearly.
	if _, err := env.st.CollectGarbage(time.Now().Add(48 * time.Hour)); err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}
	_, err = env.check(exact(t1), "deal:1", "view", "user:ito")
	wantCode(t, err, codes.FailedPrecondition, "retained")
	if p, err := env.check(exact(t2), "deal:1", "view", "user:ito"); err != nil || p != has {
		t.Fatalf("at the latest revision after GC: %v %v", p, err)
	}
}

// cancelledStream is a server stream whose client has gone: the handlers see only its context.
type cancelledStream[T any] struct {
	grpc.ServerStream
	ctx context.Context
}

func (s cancelledStream[T]) Context() context.Context { return s.ctx }
func (s cancelledStream[T]) Send(*T) error            { return s.ctx.Err() }

// TestReadsKeepTheClientsContext: every read that waits for a revision waits within the
// request's own context. A read whose client has gone returns context.Canceled at once; before
// lookups and Expand had a door of their own that dropped the context and waited out a fixed
// 10 s, then answered DEADLINE_EXCEEDED.
func TestReadsKeepTheClientsContext(t *testing.T) {
	env := crmEnv(t)
	env.touch("deal:1#owner@user:sato")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	future := fresh(encodeZedToken(env.st.Revision() + 1_000))
	ps := permissionsService{Server: env.srv}

	_, err := ps.ExpandPermissionTree(gone, &v1.ExpandPermissionTreeRequest{Consistency: future,
		Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "1"}, Permission: "view"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ExpandPermissionTree with a cancelled client: %v, want context.Canceled", err)
	}
	err = ps.LookupResources(&v1.LookupResourcesRequest{Consistency: future, ResourceObjectType: "deal", Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}}},
		cancelledStream[v1.LookupResourcesResponse]{ctx: gone})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("LookupResources with a cancelled client: %v, want context.Canceled", err)
	}
	err = ps.LookupSubjects(&v1.LookupSubjectsRequest{Consistency: future, SubjectObjectType: "user", Permission: "view",
		Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "1"}},
		cancelledStream[v1.LookupSubjectsResponse]{ctx: gone})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("LookupSubjects with a cancelled client: %v, want context.Canceled", err)
	}
	_, err = ps.CheckPermission(gone, &v1.CheckPermissionRequest{Consistency: future,
		Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "1"}, Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CheckPermission with a cancelled client: %v, want context.Canceled", err)
	}
}

// A client that cancels a read waiting for a revision ends the server's wait, through the
// real client and server: the call returns Canceled and no handler is left waiting in
// store.WaitApplied.
func TestCancelledClientEndsTheWait(t *testing.T) {
	env := crmEnv(t)
	env.touch("deal:1#owner@user:sato")
	waiting := func() int {
		buf := make([]byte, 1<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "store.(*Store).WaitApplied")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := env.client.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: fresh(encodeZedToken(env.st.Revision() + 1_000)),
			Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "1"}, Permission: "view",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "sato"}}})
		done <- err
	}()
	kit.Eventually(t, "the server waits for the revision", func() error {
		if waiting() == 0 {
			return errors.New("no handler in store.WaitApplied yet")
		}
		return nil
	})
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("the cancelled call: %v, want Canceled", err)
	}
	kit.Eventually(t, "the server's wait ends", func() error {
		if n := waiting(); n > 0 {
			return fmt.Errorf("%d handlers still in store.WaitApplied", n)
		}
		return nil
	})
}
