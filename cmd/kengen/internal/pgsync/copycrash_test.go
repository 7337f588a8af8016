package pgsync

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sync dies in the middle of the initial copy; before it restarts, rows it had copied are
// deleted and others added. The restart drops the slot, copies anew from a fresh snapshot
// (removing what no row makes any more) and streams from there.
func TestSyncCrashDuringInitialCopy(t *testing.T) {
	c := newCRM(t)
	c.seed()
	var rows []string
	for d := range 10 {
		rows = append(rows, fmt.Sprintf("('c%d', 'acme', 'ito', 'copy')", d))
	}
	c.exec(`INSERT INTO deals VALUES ` + strings.Join(rows, ", "))
	c.exec(`INSERT INTO deal_sub_assignees SELECT id, u FROM deals, unnest(ARRAY['kato', 'sato', 'mori']) u WHERE id LIKE 'c%'`)
	k := startKengen(t)

	errCrash := errors.New("crash in the copy")
	opts := c.opts(k)
	opts.MaxUpdates = 5
	parts := 0
	r := c.start(opts, func(s *Syncer) {
		s.afterCopyPart = func() error {
			if parts++; parts == 3 {
				return errCrash
			}
			return nil
		}
	})
	if err := r.end(t); !errors.Is(err, errCrash) {
		t.Fatalf("Run: %v, want the crash", err)
	}
	copied := k.relationships(t)
	if len(copied) == 0 || len(copied) >= 40 {
		t.Fatalf("the crash was not in the middle of the copy: %d relationships", len(copied))
	}
	// The relationships sorted first are the copied ones; delete their rows.
	c.exec(`DELETE FROM deals WHERE id IN ('c0', 'c1', 'd1'); INSERT INTO deals VALUES ('n1', 'acme', 'kato', 'new')`)

	r = c.start(opts, nil)
	tok := r.wait(t)
	if !strings.Contains(c.logs.String(), "dropping the replication slot to copy anew") {
		t.Errorf("the restart did not copy anew:\n%s", c.logs)
	}
	if k.can(t, tok, "c0", "view", "kato") || k.can(t, tok, "d1", "view", "ito") || !k.can(t, tok, "n1", "own", "kato") {
		t.Fatalf("the second copy does not match the rows: %v", k.relationships(t))
	}
	c.agree(k)
	c.exec(`UPDATE deals SET owner_id = 'mori' WHERE id = 'n1'`)
	tok = r.wait(t)
	if !k.can(t, tok, "n1", "own", "mori") {
		t.Fatal("the stream after the second copy does not follow")
	}
}
