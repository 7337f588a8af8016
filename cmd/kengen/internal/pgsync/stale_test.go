package pgsync

import (
	"os"
	"strings"
	"testing"
)

// A state file older than the slot (restored from a backup) would skip less than kengen
// holds or more: sync notices the slot is past it and copies anew. A plain restart does not.
func TestSyncStateFileOlderThanSlot(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	r := c.start(c.opts(k), nil)
	r.wait(t)
	old, err := os.ReadFile(c.state)
	if err != nil {
		t.Fatal(err)
	}
	c.exec(`UPDATE deals SET owner_id = 'kato' WHERE id = 'd1'`)
	r.wait(t)
	if err := r.halt(); err != nil {
		t.Fatal(err)
	}
	r = c.start(c.opts(k), nil)
	r.wait(t)
	if n := strings.Count(c.logs.String(), "initial copy done"); n != 1 {
		t.Fatalf("a plain restart copied anew (%d copies):\n%s", n, c.logs)
	}
	if err := r.halt(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.state, old, 0o644); err != nil {
		t.Fatal(err)
	}
	c.exec(`UPDATE deals SET owner_id = 'mori' WHERE id = 'd1'`)
	r = c.start(c.opts(k), nil)
	tok := r.wait(t)
	if !strings.Contains(c.logs.String(), "past the state file") {
		t.Errorf("the restored state file was not noticed:\n%s", c.logs)
	}
	if !k.can(t, tok, "d1", "own", "mori") {
		t.Fatal("the change after the restore is not in kengen")
	}
	c.agree(k)
}
