package pgsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A sixth sub assignee against `limit 5` stops the stream with an error naming the row and
// the rule; with SkipRefused the change is skipped, logged with its row and counted, and the
// changes after it flow.
func TestSyncRefusedChange(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	c.exec(`INSERT INTO users VALUES ('u1', 'acme'), ('u2', 'acme'), ('u3', 'acme'), ('u4', 'acme'), ('u5', 'acme')`)
	r := c.start(c.opts(k), nil)
	r.wait(t)
	c.exec(`INSERT INTO deal_sub_assignees VALUES ('d1', 'u1'), ('d1', 'u2'), ('d1', 'u3'), ('d1', 'u4')`) // five with kato
	r.wait(t)
	c.exec(`INSERT INTO deal_sub_assignees VALUES ('d1', 'u5')`)
	err := r.end(t)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Run returned %v, want ErrRefused", err)
	}
	for _, want := range []string{"row deal_sub_assignees deal_id=d1 user_id=u5", "deal:{deal_id}#sub_assignee@user:{user_id} (mapping line 17)", "limit is 5", "FailedPrecondition"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}
	// A restart stops at the same change: nothing was skipped silently.
	r = c.start(c.opts(k), nil)
	if err := r.end(t); !errors.Is(err, ErrRefused) {
		t.Fatalf("the restart returned %v, want the same refusal", err)
	}

	opts := c.opts(k)
	opts.SkipRefused = true
	r = c.start(opts, nil)
	c.exec(`INSERT INTO deals VALUES ('d9', 'acme', 'u5', 'after')`)
	tok := r.wait(t)
	if !k.can(t, tok, "d9", "own", "u5") {
		t.Fatal("the change after the skipped one did not flow")
	}
	if k.can(t, tok, "d1", "edit", "u5") {
		t.Fatal("the refused sub assignee is in kengen")
	}
	// Only the refused change leaves its transaction; the rest is written.
	c.exec(`INSERT INTO deal_sub_assignees VALUES ('d1', 'sato'), ('d2', 'ito')`)
	tok = r.wait(t)
	if !k.can(t, tok, "d2", "edit", "ito") {
		t.Fatal("the change sharing a transaction with a refused one was dropped too")
	}
	if got := testutil.ToFloat64(r.s.metrics.refused.WithLabelValues("deal_sub_assignees")); got != 2 {
		t.Errorf("kengen_sync_refused_total{table=deal_sub_assignees} = %v, want 2", got)
	}
	if !strings.Contains(c.logs.String(), "deal_sub_assignees deal_id=d1 user_id=u5") {
		t.Errorf("no log line names the skipped row:\n%s", c.logs)
	}
	// --check reports the divergence the skip left.
	diffs, err := Check(context.Background(), c.opts(k))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 2 || !strings.Contains(diffs[0].String(), "deal:d1#sub_assignee@user:sato") || !strings.Contains(diffs[1].String(), "missing in kengen: deal:d1#sub_assignee@user:u5 (row deal_sub_assignees deal_id=d1 user_id=u5") {
		t.Fatalf("Check: %v, want the two skipped relationships", diffs)
	}
}

// Mapping files with mistakes: every one reported with its line.
func TestMappingErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"syntax", "tables:\n  - table: deals\n    relationships: [\n", []string{"m.yaml:"}},
		{"empty", "", []string{"empty"}},
		{"no tables", "slot: s\n", []string{"1:1: missing tables"}},
		{"unknown key", "slot: s\ntabels: []\n", []string{`2:1: unknown key "tabels"`, "missing tables"}},
		{"bad template", "tables:\n  - table: deals\n    relationships:\n      - deal:{id}#owner\n      - deal:{id#owner@user:{x}\n      - 'Deal:{id}#owner@user:{o}'\n",
			[]string{"4:9: relationship \"deal:{id}#owner\"", "5:9:", "unclosed", "6:9:", "not a definition name"}},
		{"twice", "tables:\n  - table: deals\n    relationships: ['deal:{id}#owner@user:{o}']\n  - table: public.deals\n    relationships:\n      - deal:{id}#owner@user:{o}\n",
			[]string{"4:5: table public.deals is mapped twice (first at line 2)"}},
		{"no columns", "tables:\n  - table: deals\n    relationships: [deal:x#owner@user:y]\n", []string{"3:21:", "names no {column}"}},
		{"caveat context alone", "tables:\n  - table: deals\n    relationships:\n      - relationship: deal:{id}#owner@user:{o}\n        caveat_context: ctx\n", []string{"4:9: caveat_context ctx is given without a caveat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMapping("m.yaml", []byte(tc.text))
			if !errors.Is(err, ErrMapping) {
				t.Fatalf("ParseMapping: %v, want ErrMapping", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// A mapping that does not fit the database: a missing table, a missing column, a column an
// update would not reveal (no REPLICA IDENTITY FULL), each with its line, before anything is
// created.
func TestMappingAgainstTheDatabase(t *testing.T) {
	c := newCRM(t)
	k := startKengen(t)
	text := `tables:
  - table: deals
    relationships:
      - deal:{id}#owner@user:{owner_uid}
  - table: deal_stages
    relationships:
      - deal:{deal_id}#owner@user:{user_id}
  - table: organization_managers
    relationships:
      - organization:{organization_id}#manager@user:{user_id}
  - table: deal_sub_assignees
    relationships:
      - deal:{deal_id}#sub_assignee@user:{user_id}
`
	c.exec(`CREATE TABLE notes (id text PRIMARY KEY, deal_id text, author text)`)
	text += "  - table: notes\n    relationships:\n      - deal:{deal_id}#owner@user:{author}\n"
	file := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseMapping(file, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	opts := c.opts(k)
	opts.Mapping, opts.MappingFile = m, file
	r := c.start(opts, nil)
	err = r.end(t)
	if !errors.Is(err, ErrMapping) {
		t.Fatalf("Run: %v, want ErrMapping", err)
	}
	for _, want := range []string{"bad.yaml:4:1: table deals has no column owner_uid", "bad.yaml:5:1: table public.deal_stages does not exist",
		"bad.yaml:16:1: column deal_id of notes is not in its replica identity", "REPLICA IDENTITY FULL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	var pub bool
	if err := c.db.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_publication)").Scan(&pub); err != nil || pub {
		t.Errorf("a bad mapping created a publication (%v)", err)
	}
}

// A rule that makes a subject type the schema does not allow is refused in the initial copy
// too, naming the row and the rule.
func TestSyncRefusedTypeInCopy(t *testing.T) {
	c := newCRM(t)
	c.seed()
	k := startKengen(t)
	text := "slot: " + c.mapping.Slot + "\npublication: " + c.mapping.Publication + `
tables:
  - table: deals
    relationships:
      - deal:{id}#owner@organization:{organization_id}
`
	m, err := ParseMapping("wrong.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	opts := c.opts(k)
	opts.Mapping, opts.MappingFile = m, "wrong.yaml"
	err = c.start(opts, nil).end(t)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Run: %v, want ErrRefused", err)
	}
	for _, want := range []string{"initial copy", "row deals id=d1", "deal:{id}#owner@organization:{organization_id} (mapping line 6)", "InvalidArgument"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}
}
