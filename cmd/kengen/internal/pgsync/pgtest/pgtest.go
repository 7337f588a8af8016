// Package pgtest starts a throw-away PostgreSQL cluster with wal_level=logical for tests: the
// server binaries of the machine (PATH, else /usr/lib/postgresql/*/bin), initdb into a new
// temporary directory, a unix socket only. Tests skip, saying why, when PostgreSQL is absent.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dir    string
	socket string
	cmd    *exec.Cmd
	log    string
	n      atomic.Int64
}

var (
	once    sync.Once
	shared  *Cluster
	failure error
)

// Shared starts the package's cluster on first use (one per test binary; Stop it from
// TestMain) or skips t when PostgreSQL is not installed.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() { shared, failure = start() })
	if errors.Is(failure, errNoPostgres) {
		t.Skipf("pgtest: %v (install Debian's postgresql package; .ci/run does)", failure)
	}
	if failure != nil {
		t.Fatalf("pgtest: %v", failure)
	}
	return shared
}

// StopShared stops the shared cluster if one started.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

var errNoPostgres = errors.New("PostgreSQL server binaries (initdb, postgres) are not installed")

func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errNoPostgres
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// asUser runs PostgreSQL as an unprivileged user when the tests run as root (initdb and
// postgres refuse root): postgres if it exists, else nobody.
func asUser(cmd *exec.Cmd, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return fmt.Errorf("running as root and no postgres or nobody user to run PostgreSQL as: %w", err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

func start() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kengen-pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, socket: filepath.Join(dir, "sock"), log: filepath.Join(dir, "postgres.log")}
	if err := os.Mkdir(c.socket, 0o755); err != nil {
		return nil, err
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "--no-sync")
	if err := asUser(initdb, dir); err != nil {
		return nil, err
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	logf, err := os.Create(c.log)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"), "-k", c.socket,
		"-c", "listen_addresses=", "-c", "wal_level=logical", "-c", "max_wal_senders=20", "-c", "max_replication_slots=20",
		"-c", "fsync=off", "-c", "max_connections=200", "-c", "wal_sender_timeout=10s")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := asUser(c.cmd, dir); err != nil {
		return nil, err
	}
	// A test binary that dies (a panic, a timeout) takes its server along.
	if c.cmd.SysProcAttr == nil {
		c.cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting postgres: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), c.ConnString("postgres"))
		if err == nil {
			_ = conn.Close(context.Background())
			return c, nil
		}
		if time.Now().After(deadline) {
			c.Stop()
			b, _ := os.ReadFile(c.log)
			return nil, fmt.Errorf("postgres did not accept connections: %w\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ConnString is the connection string of database db.
func (c *Cluster) ConnString(db string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", c.socket, db)
}

// NewDatabase creates a fresh database for t and returns its name and connection string;
// its replication slots are dropped when t ends.
func (c *Cluster) NewDatabase(t testing.TB) (name, conn string) {
	t.Helper()
	name = fmt.Sprintf("t%d_%s", c.n.Add(1), strings.ToLower(sanitize(t.Name())))
	if len(name) > 50 {
		name = name[:50]
	}
	admin, err := pgx.Connect(context.Background(), c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close(context.Background()) }()
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a, err := pgx.Connect(context.Background(), c.ConnString("postgres"))
		if err != nil {
			return
		}
		defer func() { _ = a.Close(context.Background()) }()
		_, _ = a.Exec(context.Background(), "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL", name)
		_, _ = a.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1", name)
	})
	return name, c.ConnString(name)
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Stop ends the server (fast shutdown) and removes its directory.
func (c *Cluster) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	_ = os.RemoveAll(c.dir)
}
