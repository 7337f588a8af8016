package pgsync

import (
	"errors"
	"strings"
	"testing"
)

// TRUNCATE names no rows: sync stops and says to recopy; --recopy (Options.Recopy) makes
// kengen equal the rows again. A second sync on a slot in use is refused.
func TestSyncTruncateAndRecopy(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	r := c.start(c.opts(k), nil)
	r.wait(t)

	second := c.opts(k)
	second.StatePath = c.state + ".other"
	r2 := c.start(second, func(s *Syncer) { s.slotWait = 0 })
	if err := r2.end(t); !errors.Is(err, ErrSlotInUse) {
		t.Fatalf("a second sync on the slot: %v, want ErrSlotInUse", err)
	}

	c.exec(`TRUNCATE deal_sub_assignees`)
	err := r.end(t)
	if err == nil || !strings.Contains(err.Error(), "TRUNCATE of deal_sub_assignees") || !strings.Contains(err.Error(), "--recopy") {
		t.Fatalf("Run after a TRUNCATE: %v", err)
	}
	opts := c.opts(k)
	opts.Recopy = true
	r = c.start(opts, nil)
	tok := r.wait(t)
	if k.can(t, tok, "d1", "edit", "kato") {
		t.Fatal("the truncated sub assignee is still in kengen")
	}
	c.agree(k)
}
