package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kengen/kengen/cmd/kengen/internal/pgsync/pgtest"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// TestReadmeSync follows the README's `kengen sync` section on the quick start's schema and
// roles: its SQL makes the tables, its YAML is the mapping, its sync line runs (with this
// test's database, data directory and ports in place of the README's), and the check after
// its DELETE, at the token sync gives, answers as the README says. A deal row and its sub
// assignee, which the README describes in words, are inserted first.
func TestReadmeSync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and kengen processes; skipped in -short mode")
	}
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Following the CRM's database")
	if !ok {
		t.Fatal("README.md has no sync section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	block := func(lang string) string {
		_, rest, ok := strings.Cut(section, "```"+lang+"\n")
		if !ok {
			t.Fatalf("the sync section has no %s block", lang)
		}
		body, _, _ := strings.Cut(rest, "```")
		return body
	}
	var syncLine, checkLine string
	for _, line := range strings.Split(section, "\n") {
		l, ok := strings.CutPrefix(line, "    ")
		if !ok {
			continue
		}
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "./kengen sync "):
			syncLine = l
		case strings.HasPrefix(l, "./kengen check "):
			checkLine = l
		}
	}
	deleteSQL := regexp.MustCompile("`(DELETE FROM [^`]+)`").FindStringSubmatch(section)
	if syncLine == "" || checkLine == "" || deleteSQL == nil {
		t.Fatalf("the sync section lacks its sync line, check line or DELETE: %q %q %v", syncLine, checkLine, deleteSQL)
	}

	pg := pgtest.Shared(t)
	_, conn := pg.NewDatabase(t)
	exec := func(sql string) {
		t.Helper()
		db, err := pgx.Connect(context.Background(), conn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close(context.Background())
		if _, err := db.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(block("sql"))
	exec(`INSERT INTO deals VALUES ('d7', 'acme', 'sato', 'Renewal'); INSERT INTO deal_sub_assignees VALUES ('d7', 'tanaka')`)

	dir := filepath.Join(t.TempDir(), "kengen-data")
	n := startNode(t, dir)
	n.must(t, dir, "schema", "write", "../../schema/examples/prosales.yaml")
	for _, role := range []string{"manager user:yamada", "sales user:sato", "sales user:tanaka"} {
		n.must(t, dir, append([]string{"relationship", "touch", "organization:acme"}, strings.Fields(role)...)...)
	}
	mapping := filepath.Join(t.TempDir(), "crm-sync.yaml")
	if err := os.WriteFile(mapping, []byte(block("yaml")), 0o644); err != nil {
		t.Fatal(err)
	}

	// The README's sync line, its values replaced by this test's.
	args := []string{"--endpoint", n.grpcAddr}
	fields := strings.Fields(strings.TrimPrefix(syncLine, "./kengen "))
	for i := 0; i < len(fields); i++ {
		switch f := fields[i]; f {
		case "--data-dir":
			args, i = append(args, f, dir), i+1
		case "--mapping":
			args, i = append(args, f, mapping), i+1
		case "--postgres":
			// The README's connection string is quoted and may hold spaces.
			i++
			for i < len(fields) && !strings.HasSuffix(fields[i], "'") {
				i++
			}
			args = append(args, f, conn)
		default:
			args = append(args, f)
		}
	}
	args = append(args, "--state", filepath.Join(t.TempDir(), "kengen-sync.state"))
	_, url := startSyncProc(t, args)

	token := func() string {
		t.Helper()
		var tok string
		kit.Eventually(t, "sync gives a token covering the commits", func() error {
			resp, err := http.Get(url + "/zedtoken")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var body map[string]string // what `jq -r .zedtoken` reads
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				return err
			}
			if tok = body["zedtoken"]; tok == "" {
				return os.ErrNotExist
			}
			return nil
		})
		return tok
	}
	check := func(tok string) int {
		t.Helper()
		f := strings.Fields(strings.TrimPrefix(strings.SplitN(checkLine, "#", 2)[0], "./kengen "))
		for i := range f {
			if f[i] == `"$TOKEN"` {
				f[i] = tok
			}
		}
		code, _, errs := n.kengen(t, nil, append([]string{"--data-dir", dir}, f...)...)
		if code != exitOK && code != exitNoPermission {
			t.Fatalf("%s: exit %d: %s", checkLine, code, errs)
		}
		return code
	}
	if code := check(token()); code != exitOK {
		t.Fatalf("before the DELETE, %s exits %d; tanaka is the deal's sub assignee and in sales", checkLine, code)
	}
	exec(deleteSQL[1])
	if code := check(token()); code != exitNoPermission {
		t.Errorf("after the README's DELETE, %s exits %d, the README says 2 (no permission)", checkLine, code)
	}
}
