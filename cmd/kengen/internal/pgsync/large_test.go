package pgsync

import "testing"

// A transaction with more relationship changes than the default 1,000 per write is one
// atomic write when the endpoint takes that many (MaxUpdates set to the server's limit): one
// revision. With the default it is written in parts, several revisions, and a warning.
func TestSyncLargeTransactionIsOneWrite(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxUpdates int
		oneWrite   bool
	}{
		{"within the endpoint's limit", 4_000, true},
		{"over the default limit", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCRM(t)
			c.seed()
			k := startKengenWith(t, tc.maxUpdates)
			opts := c.opts(k)
			opts.MaxUpdates = tc.maxUpdates
			r := c.start(opts, nil)
			r.wait(t)
			before := k.st.Revision()
			// 1,500 deals in one statement: 3,000 relationship changes (organization, owner).
			c.exec(`INSERT INTO deals SELECT 'big' || g, 'acme', 'ito', 'bulk' FROM generate_series(1, 1500) g`)
			tok := r.wait(t)
			writes := k.st.Revision() - before
			if tc.oneWrite && writes != 1 {
				t.Errorf("a 3,000-change transaction took %d writes, want one", writes)
			}
			if !tc.oneWrite && writes < 3 {
				t.Errorf("a 3,000-change transaction took %d writes with the default limit, want parts of 1,000", writes)
			}
			if !k.can(t, tok, "big1", "own", "ito") || !k.can(t, tok, "big1500", "own", "ito") {
				t.Errorf("the transaction's deals are not all owned: %d relationships", len(k.relationships(t)))
			}
			c.agree(k)
		})
	}
}
