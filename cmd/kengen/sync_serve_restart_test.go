package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/jackc/pgx/v5"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// Issue 17's `kengen serve` restart during the stream, with real processes: one `kengen
// sync` follows a stream of CRM transactions while the `kengen serve` it writes to is stopped
// with SIGTERM, restarted on the same data directory and gRPC address, then SIGKILLed and
// restarted again, each outage longer than PostgreSQL's wal_sender_timeout. Sync is never
// restarted: it retries the write it holds until kengen serves again (docs/sync.md). Every
// transaction changes a deal's owner to a value of its own, so each one is exactly one
// acknowledged write: at the end sync has applied exactly as many transactions as were
// committed (a lost or doubled one changes the count), and `kengen sync --check` finds kengen
// equal to the rows (a lost change, or an old one replayed over a newer one, leaves a
// difference).
func TestSyncAcrossKengenServeRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, kengen serve and kengen sync processes; skipped in -short mode")
	}
	const key = "sync-restart-key"
	name, conn := syncDatabase(t)
	dataDir := filepath.Join(t.TempDir(), "k1")
	k := startProcIn(t, dataDir, "k1", key)
	addr := k.grpcAddr
	// The restarts name the raft address too: with a fixed --grpc-addr, serve would take the
	// default raft port, which another process may hold.
	var raftAddr string
	kit.Eventually(t, "k1's raft address", func() error {
		st, err := k.status(key)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.ID == "k1" && m.RaftAddr != "" {
				raftAddr = m.RaftAddr
				return nil
			}
		}
		return fmt.Errorf("no raft address for k1 in %+v", st.Members)
	})
	schema, err := os.ReadFile("testdata/crm.zed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.client.WriteSchema(context.Background(), &v1.WriteSchemaRequest{Schema: string(schema)}); err != nil {
		t.Fatal(err)
	}
	mapping := filepath.Join(t.TempDir(), "sync.yaml")
	if err := os.WriteFile(mapping, []byte(fmt.Sprintf(syncMapping, name)), 0o644); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL ends a replication connection silent for wal_sender_timeout (60s by
	// default): 3s here (sync reports every second), so that the outages below outlast it.
	args := []string{"--endpoint", addr, "--token", key, "sync", "--mapping", mapping, "--postgres", conn + " options='-c wal_sender_timeout=3s'",
		"--state", filepath.Join(t.TempDir(), "sync.state")}
	s, url := startSyncProc(t, args)
	syncCaughtUp(t, url) // the initial copy is done: every transaction from here on is streamed

	// The writer: transaction i gives a deal the owner u-i, which no earlier transaction
	// gave, and moves the deal's sub assignees every third time; it goes on while kengen is
	// stopped and restarted.
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
		for i := 1; !stop.Load() && i <= 20000; i++ {
			deal := 1 + i%50
			sql := fmt.Sprintf(`UPDATE deals SET owner_id = 'u-%d' WHERE id = %d`, i, deal)
			if i%3 == 0 {
				sql += fmt.Sprintf(`; DELETE FROM deal_sub_assignees WHERE deal_id = %d; INSERT INTO deal_sub_assignees VALUES (%d, 'u%d')`, deal, deal, i%7)
			}
			if _, err := w.Exec(context.Background(), sql); err != nil {
				writerDone <- err
				return
			}
			committed.Add(1)
			time.Sleep(20 * time.Millisecond) // pacing: the stops land while it writes, and sync catches up
		}
		writerDone <- nil
	}()
	defer stop.Store(true)
	// metric reads a metric of the one sync process, which must not have exited.
	metric := func(name string) (float64, error) {
		t.Helper()
		select {
		case <-s.exited:
			t.Fatalf("sync exited (%v) instead of waiting for kengen to serve again", s.cmd.ProcessState)
		default:
		}
		return syncMetric(url, name)
	}
	mustMetric := func(name string) float64 {
		t.Helper()
		v, err := metric(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// applied waits until sync has applied more than n transactions and answers how many.
	applied := func(what string, n int64) int64 {
		t.Helper()
		var got int64
		kit.Eventually(t, what, func() error {
			v, err := metric("kengen_sync_transactions_applied_total")
			if err != nil {
				return err
			}
			if got = int64(v); got <= n {
				return fmt.Errorf("sync applied %d transactions, waiting for more than %d (%d committed)", got, n, committed.Load())
			}
			return nil
		})
		return got
	}

	done := applied("transactions before the first stop", 20)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		retries := mustMetric("kengen_sync_write_retries_total")
		if err := k.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		<-k.exited
		atStop := committed.Load()
		// While kengen is down the database goes on committing and sync retries.
		kit.Eventually(t, "sync retries while kengen is down", func() error {
			got, err := metric("kengen_sync_write_retries_total")
			if err != nil {
				return err
			}
			if got <= retries || committed.Load() < atStop+20 {
				return fmt.Errorf("%v retries (%v before), %d transactions committed since the stop", got, retries, committed.Load()-atStop)
			}
			return nil
		})
		time.Sleep(5 * time.Second) // the outage outlasts wal_sender_timeout; not an assertion
		k = startProcIn(t, dataDir, "k1", key, "--grpc-addr", addr, "--raft-addr", raftAddr)
		if k.grpcAddr != addr {
			t.Fatalf("kengen restarted on %s, not %s", k.grpcAddr, addr)
		}
		t.Logf("%v: kengen stopped after %d applied transactions, restarted after %d committed", sig, done, committed.Load())
		done = applied("transactions after the restart", committed.Load())
	}
	stop.Store(true)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	syncCaughtUp(t, url)
	if got, want := int64(mustMetric("kengen_sync_transactions_applied_total")), committed.Load(); got != want {
		t.Errorf("sync applied %d transactions, %d were committed: it lost or doubled %d", got, want, got-want)
	}
	code, out, errs := (&node{grpcAddr: addr}).kengen(t, nil, append(args[2:], "--check")...)
	if code != exitOK || !strings.Contains(out, "kengen holds exactly the relationships the rows make") {
		t.Fatalf("sync --check after %d transactions and two kengen restarts: exit %d\n%s%s", committed.Load(), code, out, errs)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("sync exited %d on SIGTERM", code)
	}
}

// syncCaughtUp waits until the sync serving url holds every change committed so far.
func syncCaughtUp(t *testing.T, url string) {
	t.Helper()
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
}

// syncMetric reads one unlabelled metric of the sync serving url.
func syncMetric(url, name string) (float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("/metrics lacks %s:\n%s", name, b)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
