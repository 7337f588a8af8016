package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kengen/kengen/cmd/kengen/internal/pgsync/pgtest"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

const syncMapping = `slot: %[1]s
publication: %[1]s
tables:
  - table: deals
    relationships:
      - deal:{id}#owner@user:{owner_id}
      - deal:{id}#organization@organization:{organization_id}
  - table: deal_sub_assignees
    relationships:
      - deal:{deal_id}#sub_assignee@user:{user_id}
`

var syncHTTPLine = regexp.MustCompile(`metrics and /zedtoken on (http://\S+)`)

// `kengen sync` processes SIGKILLed at random moments of a stream of CRM transactions and
// restarted: at the end `kengen sync --check` finds kengen equal to the rows, row by row.
func TestSyncProcessSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and kengen processes; skipped in -short mode")
	}
	name, conn := syncDatabase(t)
	dir := filepath.Join(t.TempDir(), "kengen-data")
	n := startNode(t, dir)
	n.must(t, dir, "schema", "write", "testdata/crm.zed")
	mapping := filepath.Join(t.TempDir(), "sync.yaml")
	if err := os.WriteFile(mapping, []byte(fmt.Sprintf(syncMapping, name)), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "sync.state")
	args := []string{"--endpoint", n.grpcAddr, "--data-dir", dir, "sync", "--mapping", mapping, "--postgres", conn, "--state", state}

	startSync := func() (*proc, string) { return startSyncProc(t, args) }

	// The writer: transactions that add and remove sub assignees and move owners, going on
	// while sync is killed and restarted.
	var stop atomic.Bool
	var committed atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		w, err := pgx.Connect(context.Background(), conn)
		if err != nil {
			writerDone <- err
			return
		}
		defer w.Close(context.Background())
		rng := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() && committed.Load() < 1000 {
			deal := 1 + rng.IntN(50)
			var sql string
			switch rng.IntN(3) {
			case 0:
				sql = fmt.Sprintf(`UPDATE deals SET owner_id = 'u%d' WHERE id = %d`, rng.IntN(7), deal)
			case 1:
				sql = fmt.Sprintf(`DELETE FROM deal_sub_assignees WHERE deal_id = %d; INSERT INTO deal_sub_assignees VALUES (%d, 'u%d'), (%d, 'u%d') ON CONFLICT DO NOTHING`,
					deal, deal, rng.IntN(7), deal, 7+rng.IntN(7))
			default:
				sql = fmt.Sprintf(`DELETE FROM deal_sub_assignees WHERE deal_id = %d AND user_id = 'u%d'`, deal, rng.IntN(14))
			}
			if _, err := w.Exec(context.Background(), sql); err != nil {
				writerDone <- err
				return
			}
			committed.Add(1)
			time.Sleep(2 * time.Millisecond) // pacing, so that the kills land while it writes
		}
		writerDone <- nil
	}()

	rng := rand.New(rand.NewPCG(3, 4))
	for kill := range 4 {
		p, _ := startSync()
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond) // a random moment, not an assertion
		p.kill()
		t.Logf("SIGKILL %d after %d committed transactions", kill+1, committed.Load())
	}
	stop.Store(true)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	last, url := startSync()
	resp, err := http.Get(url + "/zedtoken?timeout=60s")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ LSN, Zedtoken string }
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || body.Zedtoken == "" {
		t.Fatalf("/zedtoken: %s %+v %v", resp.Status, body, err)
	}
	code, out, errs := n.kengen(t, nil, append(args[2:], "--check")...)
	if code != exitOK || !strings.Contains(out, "kengen holds exactly the relationships the rows make") {
		t.Fatalf("sync --check after %d transactions and 4 SIGKILLs: exit %d\n%s%s", committed.Load(), code, out, errs)
	}
	// Its metrics, then SIGTERM: a clean stop, exit 0.
	resp, err = http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"kengen_sync_transactions_applied_total", "kengen_sync_lag_bytes", "kengen_sync_lag_seconds", "kengen_sync_changes_applied_total"} {
		if !strings.Contains(string(metrics), "\n"+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if err := last.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-last.exited:
		if code := last.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("sync exited %d on SIGTERM:\n%s", code, last.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sync did not stop on SIGTERM")
	}
	// And --check does see a difference when there is one.
	n.must(t, dir, "relationship", "delete", "deal:1", "organization", "organization:acme")
	code, out, _ = n.kengen(t, nil, append(args[2:], "--check")...)
	if code != exitError || !strings.Contains(out, "missing in kengen: deal:1#organization@organization:acme (row deals id=1") {
		t.Fatalf("sync --check after a deletion behind its back: exit %d\n%s", code, out)
	}
}

// syncDatabase is a new database of the shared PostgreSQL holding the CRM tables the
// mapping syncMapping reads, with 50 deals; it answers the database's name and connection
// string. It skips the test when PostgreSQL is absent.
func syncDatabase(t *testing.T) (name, conn string) {
	t.Helper()
	pg := pgtest.Shared(t)
	name, conn = pg.NewDatabase(t)
	db, err := pgx.Connect(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(context.Background(), `
		CREATE TABLE deals (id int PRIMARY KEY, organization_id text, owner_id text);
		ALTER TABLE deals REPLICA IDENTITY FULL;
		CREATE TABLE deal_sub_assignees (deal_id int REFERENCES deals ON DELETE CASCADE, user_id text, PRIMARY KEY (deal_id, user_id));
		INSERT INTO deals SELECT i, 'acme', 'u' || (i % 7) FROM generate_series(1, 50) i;`); err != nil {
		t.Fatal(err)
	}
	return name, conn
}

// startSyncProc starts `kengen sync` with args in a new process and answers it with the URL
// of its /metrics and /zedtoken.
func startSyncProc(t *testing.T, args []string) (*proc, string) {
	t.Helper()
	p := &proc{id: "sync", out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = kengenProc(append(args, "--http-addr", "127.0.0.1:0")...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("sync output:\n%s", p.out)
		}
	})
	var url string
	kit.Eventually(t, "sync serves /zedtoken", func() error {
		m := syncHTTPLine.FindStringSubmatch(p.out.String())
		if m == nil {
			return fmt.Errorf("not yet:\n%s", p.out)
		}
		url = m[1]
		return nil
	})
	return p, url
}
