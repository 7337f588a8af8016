package pgsync

import (
	"fmt"
	"testing"
)

// kengen stops while the database keeps committing; sync retries the write it holds, and once
// kengen serves again every change arrives, in order.
func TestSyncAcrossAKengenRestart(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	r := c.start(c.opts(k), nil)
	r.wait(t)
	k.stop()
	for i := range 5 {
		c.exec(fmt.Sprintf(`INSERT INTO deals VALUES ('r%d', 'acme', 'ito', 'during the restart')`, i))
	}
	c.exec(`UPDATE deals SET owner_id = 'kato' WHERE id = 'r0'`)
	k.serve()
	tok := r.wait(t)
	if !k.can(t, tok, "r0", "own", "kato") || k.can(t, tok, "r0", "own", "ito") || !k.can(t, tok, "r4", "own", "ito") {
		t.Fatalf("the changes made while kengen was down did not all arrive: %v", k.relationships(t))
	}
	c.agree(k)
}
