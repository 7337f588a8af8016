package api

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

// TestWatchAcrossLeaderFailover: a Watch stream on a follower delivers every relationship
// change exactly once, in revision order, while the leader is stopped and another takes
// over. Three nodes on real TCP; the writes go through whichever node leads (the survivor
// the stream is on while none does), before, during and after the failover; a write is
// retried until acknowledged, and an ALREADY_EXISTS on a retry counts as acknowledged (an
// earlier attempt was applied).
func TestWatchAcrossLeaderFailover(t *testing.T) {
	nodes := []*clusterNode{startClusterNode(t, "n1", true)}
	kit.Eventually(t, "n1 leads", func() error {
		if !nodes[0].node.IsLeader() {
			return os.ErrNotExist
		}
		return nil
	})
	for _, id := range []string{"n2", "n3"} {
		cn := startClusterNode(t, id, false)
		kit.Eventually(t, id+" joins", func() error { return cn.node.Join(ctxT(t), nodes[0].addr) })
		nodes = append(nodes, cn)
	}
	kit.Eventually(t, "the schema", func() error {
		_, err := nodes[0].client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc { relation viewer: user }"})
		return err
	})
	var mu sync.Mutex // guards live
	live := append([]*clusterNode(nil), nodes...)
	leading := func() *clusterNode {
		mu.Lock()
		defer mu.Unlock()
		for _, cn := range live {
			if cn.node.IsLeader() {
				return cn
			}
		}
		return nil
	}
	old := leading()
	var watcher *clusterNode
	for _, cn := range nodes {
		if cn != old {
			watcher = cn
			break
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startRev := watcher.st.Revision()
	stream, err := watcher.client.Watch(ctx, &v1.WatchRequest{OptionalObjectTypes: []string{"doc"}, OptionalStartCursor: encodeZedToken(startRev)})
	if err != nil {
		t.Fatal(err)
	}

	var (
		acked   = map[string]bool{}
		lastRev store.Revision
	)
	write := func(doc string) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			target := leading()
			if target == nil {
				target = watcher // no leader: the write waits for one there
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := target.client.WriteRelationships(wctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
				update(t, v1.RelationshipUpdate_OPERATION_CREATE, "doc:"+doc+"#viewer@user:sato")}})
			cancel()
			if err == nil || (attempt > 0 && status.Code(err) == codes.AlreadyExists) {
				acked[doc] = true
				if err == nil {
					rev, derr := decodeZedToken("written_at", resp.GetWrittenAt())
					if derr != nil {
						t.Fatal(derr)
					}
					lastRev = max(lastRev, rev)
				}
				return
			}
			if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
				t.Fatalf("write %s through %s: %v", doc, target.id, err)
			}
			if attempt > 50 {
				t.Fatalf("write %s not acknowledged after %d attempts: %v", doc, attempt, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 20 {
		write(fmt.Sprint("before-", i))
	}
	// The failover: stop the leader while writes go on.
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		mu.Lock()
		for i, cn := range live {
			if cn == old {
				live = append(live[:i:i], live[i+1:]...)
				break
			}
		}
		mu.Unlock()
		old.stop()
	}()
	for i := range 20 {
		write(fmt.Sprint("during-", i))
	}
	<-stopped
	kit.Eventually(t, "a new leader", func() error {
		if leading() == nil {
			return os.ErrNotExist
		}
		return nil
	})
	for i := range 20 {
		write(fmt.Sprint("after-", i))
	}
	// The last write is acknowledged at lastRev or before it; wait for the stream to pass the
	// revision the watcher has applied by now, which includes every acknowledged write.
	if err := watcher.node.WaitApplied(ctx, lastRev); err != nil {
		t.Fatal(err)
	}
	through := watcher.st.Revision()

	seen := map[string]int{}
	prev := startRev
	for prev < through {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Watch on %s after revision %d: %v", watcher.id, prev, err)
		}
		rev, err := decodeZedToken("changes_through", resp.GetChangesThrough())
		if err != nil {
			t.Fatal(err)
		}
		if rev <= prev {
			t.Errorf("changes_through %d after %d: not in revision order", rev, prev)
		}
		prev = rev
		for _, u := range resp.GetUpdates() {
			if u.GetOperation() != v1.RelationshipUpdate_OPERATION_CREATE {
				t.Errorf("revision %d: unexpected %v", rev, u)
			}
			seen[u.GetRelationship().GetResource().GetObjectId()]++
		}
	}
	for doc := range acked {
		if seen[doc] != 1 {
			t.Errorf("the stream delivered acknowledged %s %d times, want once", doc, seen[doc])
		}
	}
	for doc := range seen {
		if !acked[doc] {
			t.Errorf("the stream delivered %s, which was never acknowledged", doc)
		}
	}
	if len(acked) != 60 {
		t.Errorf("%d writes acknowledged, want 60", len(acked))
	}
}
