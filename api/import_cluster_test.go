package api

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// TestImportThroughFollower imports a stream of the default bound, with UUID ids, through a
// follower: it is forwarded to the leader as one entry and every node stores all of it. A
// stream whose one entry would be too large to forward is refused on the follower with a
// message that says to split it, and nothing of it is stored anywhere. The cluster runs with
// raft's default timeouts: the three nodes share this process, and applying the one large
// entry on each of them at once can hold the CPU for longer than fastRaft's 100 ms lease on a
// loaded machine, which is a leader change, not what this test is about.
func TestImportThroughFollower(t *testing.T) {
	nodes := startAPIClusterWith(t, raftTimings{})
	follower := nodes[2]
	kit.Eventually(t, "a schema write through a follower", func() error {
		_, err := follower.client.WriteSchema(ctxT(t), &v1.WriteSchemaRequest{Schema: lookupTestSchema})
		return err
	})
	env := &testEnv{t: t, client: follower.client}
	var rels []string
	for i := range DefaultMaxImportRelationships {
		rels = append(rels, fmt.Sprintf("deal:3f2b9c4e-1a2b-4c3d-9e8f-%012d#viewer@user:7a6b5c4d-1a2b-4c3d-9e8f-%012d", i, i%97))
	}
	n, err := env.importRels(rels, 1_000)
	if err != nil || n != uint64(len(rels)) {
		t.Fatalf("import of %d through a follower: %d loaded, %v", len(rels), n, err)
	}
	for _, cn := range nodes {
		got, _ := (&testEnv{t: t, client: cn.client}).export(5_000, nil)
		if len(got) != len(rels) {
			t.Errorf("%s stores %d relationships after the import, want %d", cn.id, len(got), len(rels))
		}
	}

	// Long ids: each relationship encodes to about 1 KiB, so 5,000 of them exceed what one
	// entry can carry though the count is within the bound.
	long := strings.Repeat("x", 480)
	var big []string
	for i := range 5_000 {
		big = append(big, fmt.Sprintf("deal:big-%s-%05d#viewer@user:%s-%d", long, i, long, i))
	}
	_, err = env.importRels(big, 500)
	wantCode(t, err, codes.InvalidArgument)
	if err != nil && !strings.Contains(err.Error(), "split it") {
		t.Errorf("refusal of an oversized import %q does not say to split it", err)
	}
	for _, cn := range nodes {
		got, _ := (&testEnv{t: t, client: cn.client}).export(5_000, nil)
		if len(got) != len(rels) {
			t.Errorf("%s stores %d relationships after the refused import, want %d", cn.id, len(got), len(rels))
		}
	}
}
