package raftnode

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

const newEnemySchema = `definition user {}
definition doc {
	relation direct: user
	relation excluded: user
	permission allowed = direct - excluded
}`

func docRel(doc, relation, user string) store.Update {
	return store.Update{Op: store.OpTouch, Relationship: store.Relationship{ResourceType: "doc", ResourceID: doc, Relation: relation, SubjectType: "user", SubjectID: user}}
}

// allowed evaluates doc#allowed (direct - excluded) for user:a on fn at rev (0: latest).
func (tn *testNode) allowed(rev store.Revision, doc string) (bool, error) {
	rd, err := tn.st.Reader(rev)
	if err != nil {
		return false, err
	}
	defer rd.Close()
	_, direct, err := rd.Get("doc", doc, "direct", "user", "a", "")
	if err != nil || !direct {
		return false, err
	}
	_, excluded, err := rd.Get("doc", doc, "excluded", "user", "a", "")
	return !excluded, err
}

// SpiceDB's new-enemy scenario on three nodes, under faults: the exclusion is written, the
// leader changes, then the grant is written; a check at the grant's revision must deny on
// every node: at that exact revision, and at_least_as_fresh (wait for it, read the latest)
// on a follower that was partitioned away during both writes and lags behind. The lagging
// follower must not answer the token before it has caught up.
func TestNewEnemyUnderFaults(t *testing.T) {
	rounds := 2
	if longFaultTests() {
		rounds = 6
	}
	nodes := startFaultCluster(t)
	ctx := ctxT(t)
	if _, err := faultLeader(t, nodes).node.Writer().WriteSchema(ctx, newEnemySchema); err != nil {
		t.Fatal(err)
	}
	retry := func(what string, fn func() (store.Result, error)) store.Result {
		t.Helper()
		var res store.Result
		kit.Eventually(t, what, func() error {
			var err error
			res, err = fn()
			return err
		})
		return res
	}
	for round := range rounds {
		doc := fmt.Sprint("r", round)
		l := faultLeader(t, nodes)
		var lagging, other *faultNode
		for _, fn := range nodes {
			switch {
			case fn == l:
			case lagging == nil:
				lagging = fn
			default:
				other = fn
			}
		}
		lagging.cut()
		// TOUCH is idempotent, so a write retried after an unacknowledged attempt is safe.
		excl := retry("the exclusion", func() (store.Result, error) {
			return l.node.Writer().Apply(ctx, &store.Batch{Updates: []store.Update{docRel(doc, "excluded", "a")}})
		})
		// The leader changes between the two writes.
		kit.Eventually(t, "leadership to "+other.id, func() error { return l.node.TransferLeadership(ctx, other.id) })
		kit.Eventually(t, other.id+" leads", func() error {
			if !other.node.IsLeader() {
				return errors.New("not yet")
			}
			return nil
		})
		grant := retry("the grant", func() (store.Result, error) {
			return other.node.Writer().Apply(ctx, &store.Batch{Updates: []store.Update{docRel(doc, "direct", "a")}})
		})
		if grant.Revision <= excl.Revision {
			t.Fatalf("grant at revision %d, not after the exclusion's %d", grant.Revision, excl.Revision)
		}
		// The lagging follower cannot answer at the grant's token yet.
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := lagging.node.WaitApplied(wctx, grant.Revision)
		cancel()
		if !errors.Is(err, store.ErrRevisionNotApplied) {
			t.Fatalf("round %d: the partitioned %s answered at revision %d: %v", round, lagging.id, grant.Revision, err)
		}
		lagging.heal()
		for _, fn := range nodes {
			if err := fn.node.WaitApplied(ctx, grant.Revision); err != nil {
				t.Fatalf("round %d: %s waiting for the grant: %v", round, fn.id, err)
			}
			for _, rev := range []store.Revision{grant.Revision, 0} {
				if ok, err := fn.allowed(rev, doc); err != nil || ok {
					t.Fatalf("round %d: %s allows at revision %d (0: latest) after the exclusion: %v, %v", round, fn.id, rev, ok, err)
				}
			}
		}
	}
	// The check can say yes: a grant without an exclusion allows everywhere.
	res := retry("a grant alone", func() (store.Result, error) {
		return faultLeader(t, nodes).node.Writer().Apply(ctx, &store.Batch{Updates: []store.Update{docRel("control", "direct", "a")}})
	})
	for _, fn := range nodes {
		if err := fn.node.WaitApplied(ctx, res.Revision); err != nil {
			t.Fatal(err)
		}
		if ok, err := fn.allowed(res.Revision, "control"); err != nil || !ok {
			t.Fatalf("%s denies a grant without exclusion: %v", fn.id, err)
		}
	}
}
