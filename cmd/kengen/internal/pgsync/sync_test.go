package pgsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/jackc/pglogrepl"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Existing rows are copied, then every kind of record change follows, each visible to a
// check at the token WaitForCurrent gives right after the commit.
func TestSyncFollowsCRM(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	r := c.start(c.opts(k), nil)

	tok := r.wait(t)
	if !k.can(t, tok, "d1", "own", "ito") || !k.can(t, tok, "d1", "edit", "kato") || !k.can(t, tok, "d1", "edit", "sato") {
		t.Fatalf("the initial copy is not in kengen: %v", k.relationships(t))
	}
	if k.can(t, tok, "d2", "view", "ito") {
		t.Fatal("ito sees globex's deal")
	}

	// A new deal with an owner; a NULL owner makes no relationship.
	c.exec(`INSERT INTO deals VALUES ('d3', 'acme', 'kato', 'third'), ('d4', 'acme', NULL, 'ownerless')`)
	tok = r.wait(t)
	if !k.can(t, tok, "d3", "own", "kato") {
		t.Fatal("the inserted deal's owner is not in kengen")
	}
	// Reassignment: the owner moves (DELETE old + TOUCH new in one write, under limit 1).
	c.exec(`UPDATE deals SET owner_id = 'mori' WHERE id = 'd3'`)
	tok = r.wait(t)
	if k.can(t, tok, "d3", "own", "kato") || !k.can(t, tok, "d3", "own", "mori") {
		t.Fatal("the owner did not move")
	}
	// An update of an unmapped column changes nothing; a NULL owner gets one.
	c.exec(`UPDATE deals SET title = 'renamed' WHERE id = 'd1'; UPDATE deals SET owner_id = 'ito' WHERE id = 'd4'`)
	tok = r.wait(t)
	if !k.can(t, tok, "d1", "own", "ito") || !k.can(t, tok, "d4", "own", "ito") {
		t.Fatal("updates lost an owner")
	}
	// A sub assignee is removed: never seen again after the commit.
	c.exec(`DELETE FROM deal_sub_assignees WHERE deal_id = 'd1' AND user_id = 'kato'`)
	tok = r.wait(t)
	if k.can(t, tok, "d1", "view", "kato") {
		t.Fatal("a removed sub assignee still sees the deal")
	}
	// A user moves to another organization; a manager is removed.
	c.exec(`UPDATE users SET organization_id = 'globex' WHERE id = 'kato'; DELETE FROM organization_managers WHERE user_id = 'sato'`)
	tok = r.wait(t)
	if k.can(t, tok, "d1", "edit", "sato") {
		t.Fatal("a removed manager still edits")
	}
	// A deletion cascades to its sub assignees.
	c.exec(`INSERT INTO deal_sub_assignees VALUES ('d2', 'ito'); DELETE FROM deals WHERE id = 'd2'`)
	tok = r.wait(t)
	if k.can(t, tok, "d2", "view", "mori") || k.can(t, tok, "d2", "view", "ito") {
		t.Fatal("a deleted deal is still visible")
	}
	c.agree(k)
	if got := testutil.ToFloat64(r.s.metrics.transactions); got != 6 {
		t.Errorf("kengen_sync_transactions_applied_total = %v, want 6 (one per transaction)", got)
	}
	if err := r.halt(); err != nil {
		t.Fatalf("a clean stop returned %v", err)
	}
}

// A sub assignee moved in one transaction is, at every revision kengen serves, assigned to
// exactly one of the two; the owner, under limit 1, too.
func TestSyncReassignmentIsAtomic(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	r := c.start(c.opts(k), nil)
	r.wait(t)

	var stop atomic.Bool
	bad := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			resp, err := k.client.CheckBulkPermissions(context.Background(), &v1.CheckBulkPermissionsRequest{
				Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
				Items: []*v1.CheckBulkPermissionsRequestItem{
					{Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "d1"}, Permission: "own", Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ito"}}},
					{Resource: &v1.ObjectReference{ObjectType: "deal", ObjectId: "d1"}, Permission: "own", Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "kato"}}},
				},
			})
			if err != nil {
				continue
			}
			n := 0
			for _, p := range resp.GetPairs() {
				if p.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
					n++
				}
			}
			if n != 1 {
				select {
				case bad <- resp.GetCheckedAt().GetToken():
				default:
				}
			}
		}
	}()
	for i := range 30 {
		owner := []string{"kato", "ito"}[i%2]
		c.exec(`UPDATE deals SET owner_id = $1 WHERE id = 'd1'`, owner)
	}
	r.wait(t)
	stop.Store(true)
	<-done
	select {
	case tok := <-bad:
		t.Fatalf("at revision %s deal d1 had not exactly one owner", tok)
	default:
	}
	c.agree(k)
}

// sync dies after kengen acknowledged a transaction and before anything recorded it; the
// restart replays that one transaction and nothing older, so nothing is lost, nothing is
// applied twice in effect, and no reader sees a removed assignee come back.
func TestSyncCrashBetweenWriteAndConfirm(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	errCrash := errors.New("crash")
	var crashedAt pglogrepl.LSN
	for round := range 3 {
		var writes []pglogrepl.LSN
		crashOn := 3 // the replayed transaction, then this round's two
		if round == 0 {
			crashOn = 2
		}
		r := c.start(c.opts(k), func(s *Syncer) {
			s.afterWrite = func(end pglogrepl.LSN) error {
				writes = append(writes, end)
				if len(writes) == crashOn {
					crashedAt = end
					return errCrash
				}
				return nil
			}
		})
		if round == 0 {
			r.wait(t) // the initial copy
		}
		c.exec(`INSERT INTO deal_sub_assignees VALUES ('d1', 'sato')`)
		c.exec(fmt.Sprintf(`DELETE FROM deal_sub_assignees WHERE deal_id = 'd1' AND user_id = 'sato'; UPDATE deals SET owner_id = '%s' WHERE id = 'd1'`,
			[]string{"kato", "ito", "mori"}[round]))
		prev := crashedAt
		if err := r.end(t); !errors.Is(err, errCrash) {
			t.Fatalf("round %d: Run returned %v, want the crash", round, err)
		}
		// Exactly the unrecorded transaction was replayed, nothing older (which would bring
		// the removed assignee back for a moment).
		if round > 0 && writes[0] != prev {
			t.Fatalf("round %d: the restart wrote %s first, want the unrecorded %s", round, writes[0], prev)
		}
		if slices.Contains(k.relationships(t), "deal:d1#sub_assignee@user:sato") {
			t.Fatal("the crashed transaction was not written before the crash")
		}
	}
	r := c.start(c.opts(k), nil)
	tok := r.wait(t)
	if !k.can(t, tok, "d1", "own", "mori") || k.can(t, tok, "d1", "own", "ito") {
		t.Fatalf("after the replays the owner is wrong: %v", k.relationships(t))
	}
	if strings.Count(c.logs.String(), "initial copy done") != 1 {
		t.Errorf("a restart copied the tables again:\n%s", c.logs)
	}
	c.agree(k)
}
