package pgsync

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSyncThroughput: 2·b.N one-row transactions committed back to back while sync
// follows; the time until kengen holds the last gives the throughput (transactions/s).
func BenchmarkSyncThroughput(b *testing.B) {
	c, r := benchSync(b)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		c.exec(fmt.Sprintf(`INSERT INTO deal_sub_assignees VALUES ('d1', 'b%d')`, i%4))
		c.exec(fmt.Sprintf(`DELETE FROM deal_sub_assignees WHERE deal_id = 'd1' AND user_id = 'b%d'`, i%4))
	}
	r.wait(b)
	b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "txn/s")
}

// BenchmarkSyncCommitToVisible: one transaction, then WaitForCurrent: the end-to-end delay
// from a commit to a ZedToken that covers it.
func BenchmarkSyncCommitToVisible(b *testing.B) {
	c, r := benchSync(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.exec(fmt.Sprintf(`UPDATE deals SET owner_id = '%s' WHERE id = 'd1'`, []string{"kato", "ito"}[i%2]))
		r.wait(b)
	}
}

func benchSync(b *testing.B) (*crm, *running) {
	c := newCRM(b)
	c.seed()
	c.exec(`INSERT INTO users VALUES ('b0', 'acme'), ('b1', 'acme'), ('b2', 'acme'), ('b3', 'acme')`)
	k := startKengen(b)
	r := c.start(c.opts(k), nil)
	r.wait(b)
	return c, r
}
