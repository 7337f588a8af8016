package pgsync

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
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

// A kengen outage longer than PostgreSQL's wal_sender_timeout (60s by default, 1s here), after
// which the server ends a replication connection that has said nothing: sync tells the server
// it is alive while it retries the write it holds, so that the stream survives the outage and
// carries on once kengen serves again.
func TestSyncOutlastsWalSenderTimeout(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	opts := c.opts(k)
	opts.ConnString += " options='-c wal_sender_timeout=1s'"
	r := c.start(opts, nil)
	r.wait(t)
	k.stop()
	c.exec(`UPDATE deals SET owner_id = 'kato' WHERE id = 'd1'`)
	kit.Eventually(t, "sync retries the write while kengen is down", func() error {
		if n := testutil.ToFloat64(r.s.metrics.retries); n == 0 {
			return fmt.Errorf("%v retries", n)
		}
		return nil
	})
	time.Sleep(4 * time.Second) // the outage outlasts the timeout several times; not an assertion
	select {
	case err := <-r.done:
		t.Fatalf("sync ended during a kengen outage: %v\n%s", err, c.logs)
	default:
	}
	c.exec(`INSERT INTO deals VALUES ('r1', 'acme', 'ito', 'after the outage')`)
	k.serve()
	tok := r.wait(t)
	if !k.can(t, tok, "d1", "own", "kato") || k.can(t, tok, "d1", "own", "ito") || !k.can(t, tok, "r1", "own", "ito") {
		t.Fatalf("the changes made during and after the outage did not all arrive: %v", k.relationships(t))
	}
	c.agree(k)
}
