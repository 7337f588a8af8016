package api

import (
	"fmt"
	"os"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// startAPICluster starts three API nodes over Raft and waits until every node can forward.
func startAPICluster(t *testing.T) []*clusterNode {
	t.Helper()
	return startAPIClusterWith(t, fastRaft())
}

// startAPIClusterWith is startAPICluster with the given raft timeouts.
func startAPIClusterWith(t *testing.T, timings raftTimings) []*clusterNode {
	t.Helper()
	n1 := startClusterNodeWith(t, "n1", true, timings)
	kit.Eventually(t, "n1 leads", func() error {
		if !n1.node.IsLeader() {
			return os.ErrNotExist
		}
		return nil
	})
	nodes := []*clusterNode{n1}
	for _, id := range []string{"n2", "n3"} {
		cn := startClusterNodeWith(t, id, false, timings)
		kit.Eventually(t, id+" joins", func() error { return cn.node.Join(ctxT(t), n1.addr) })
		nodes = append(nodes, cn)
	}
	for _, cn := range nodes {
		kit.Eventually(t, cn.id+" knows every member's gRPC address", func() error {
			st, err := cn.node.Status()
			if err != nil {
				return err
			}
			if len(st.Members) != len(nodes) {
				return fmt.Errorf("%d members", len(st.Members))
			}
			for _, m := range st.Members {
				if m.GRPCAddr == "" {
					return fmt.Errorf("no gRPC address for %s", m.ID)
				}
			}
			return nil
		})
	}
	return nodes
}

// touch writes one TOUCH through cn, retrying while the cluster is unavailable (an election
// on a loaded machine; a TOUCH may be repeated), and returns its token.
func (cn *clusterNode) touch(t *testing.T, r string) *v1.ZedToken {
	t.Helper()
	var tok *v1.ZedToken
	kit.Eventually(t, "a write of "+r+" through "+cn.id, func() error {
		resp, err := cn.client.WriteRelationships(ctxT(t), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
			update(t, v1.RelationshipUpdate_OPERATION_TOUCH, r)}})
		if err != nil && codeOf(err) != codes.Unavailable {
			t.Fatal(err)
		}
		tok = resp.GetWrittenAt()
		return err
	})
	return tok
}

func minimizeLatency() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
}

func (cn *clusterNode) check(t *testing.T, c *v1.Consistency, resource, permission, subject string) (v1.CheckPermissionResponse_Permissionship, error) {
	t.Helper()
	req := checkReq(t, resource, permission, subject)
	req.Consistency = c
	resp, err := cn.client.CheckPermission(ctxT(t), req)
	return resp.GetPermissionship(), err
}

// "Temporary access until Friday" ends on Friday: with no write after it, a relationship
// stops granting at its expiration on every node (minimize_latency), while a check at the
// exact snapshot of its write still grants (that revision's time is before the expiration).
func TestExpirationOverRaftCluster(t *testing.T) {
	nodes := startAPICluster(t)
	kit.Eventually(t, "a schema write through n2", func() error {
		_, err := nodes[1].client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: `use expiration
definition user {}
definition doc {
	relation viewer: user with expiration
	permission view = viewer
}`})
		return err
	})
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
	tok := nodes[2].touch(t, "doc:1#viewer@user:a[expiration:"+exp.UTC().Format(time.RFC3339)+"]")
	if time.Now().After(exp) {
		t.Skip("the write was acknowledged after its own expiration (elections on a loaded machine)")
	}
	has := v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	no := v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	for _, cn := range nodes {
		if p, err := cn.check(t, fresh(tok), "doc:1", "view", "user:a"); err != nil || (p != has && time.Now().Before(exp)) {
			t.Fatalf("%s at the write's token: %v %v", cn.id, p, err)
		}
	}
	for _, cn := range nodes {
		kit.Eventually(t, cn.id+" denies at minimize_latency after the expiration", func() error {
			if p, err := cn.check(t, minimizeLatency(), "doc:1", "view", "user:a"); err != nil || p != no {
				return fmt.Errorf("%v: %w", p, err)
			}
			return nil
		})
	}
	for _, cn := range nodes {
		if p, err := cn.check(t, exact(tok), "doc:1", "view", "user:a"); err != nil || p != has {
			t.Fatalf("%s at the exact snapshot of the write: %v %v, want HAS_PERMISSION", cn.id, p, err)
		}
	}
	// The collected relationship is gone from reads and counts.
	for _, cn := range nodes {
		kit.Eventually(t, cn.id+" counts no relationships", func() error {
			if n := cn.st.Stats().Relationships; n != 0 {
				return fmt.Errorf("%d relationships counted", n)
			}
			return nil
		})
	}
}

// SpiceDB's new-enemy scenario on three nodes: the exclusion is written, then the grant; a
// check at the grant's token must deny on every node (it sees both writes, in order).
func TestNewEnemyOverRaftCluster(t *testing.T) {
	nodes := startAPICluster(t)
	kit.Eventually(t, "a schema write", func() error {
		_, err := nodes[0].client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: `definition user {}
definition doc {
	relation direct: user
	relation excluded: user
	permission allowed = direct - excluded
}`})
		return err
	})
	no := v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	for i := range 5 {
		doc := fmt.Sprint("doc:", i)
		// The two writes through different nodes (forwarded to the leader or not).
		nodes[(i+1)%3].touch(t, doc+"#excluded@user:a")
		grant := nodes[(i+2)%3].touch(t, doc+"#direct@user:a")
		for _, cn := range nodes {
			for _, c := range []*v1.Consistency{fresh(grant), exact(grant)} {
				if p, err := cn.check(t, c, doc, "allowed", "user:a"); err != nil || p != no {
					t.Fatalf("%s on %s at the grant's token (%v): %v %v, want NO_PERMISSION", doc, cn.id, c, p, err)
				}
			}
		}
	}
}
