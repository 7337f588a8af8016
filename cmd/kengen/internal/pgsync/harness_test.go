package pgsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kengen/kengen/api"
	"github.com/kengen/kengen/cmd/kengen/internal/pgsync/pgtest"
	kit "github.com/kengen/kengen/raftnode/raftnodetest"
	"github.com/kengen/kengen/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

const testKey = "pgsync-test-key"

// crmSchema is the ProSales seed model: organizations with members and managers, deals with
// one owner and at most five sub assignees.
const crmSchema = `definition user {}

definition organization {
	relation member: user
	relation manager: user
}

definition deal {
	relation organization: organization
	relation owner: user limit 1
	relation sub_assignee: user limit 5

	permission own = owner
	permission edit = owner + sub_assignee + organization->manager
	permission view = edit
}`

const crmTables = `
CREATE TABLE organizations (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (id text PRIMARY KEY, organization_id text REFERENCES organizations, role text NOT NULL DEFAULT 'member');
CREATE TABLE organization_managers (organization_id text REFERENCES organizations, user_id text REFERENCES users, PRIMARY KEY (organization_id, user_id));
CREATE TABLE deals (id text PRIMARY KEY, organization_id text REFERENCES organizations, owner_id text REFERENCES users, title text);
CREATE TABLE deal_sub_assignees (deal_id text REFERENCES deals ON DELETE CASCADE, user_id text REFERENCES users, PRIMARY KEY (deal_id, user_id));
ALTER TABLE users REPLICA IDENTITY FULL;
ALTER TABLE deals REPLICA IDENTITY FULL;
`

const crmMapping = `# ProSales: which rows make which relationships
slot: %s
publication: %s
tables:
  - table: users
    relationships:
      - organization:{organization_id}#member@user:{id}
  - table: organization_managers
    relationships:
      - organization:{organization_id}#manager@user:{user_id}
  - table: deals
    relationships:
      - deal:{id}#organization@organization:{organization_id}
      - deal:{id}#owner@user:{owner_id}
  - table: deal_sub_assignees
    relationships:
      - deal:{deal_id}#sub_assignee@user:{user_id}
`

// kengen is an Authzed endpoint: the real api server over a real store on disk, on a real
// listener; restart stops it and serves the same directory on the same address again.
type kengen struct {
	t      testing.TB
	dir    string
	addr   string
	mu     sync.Mutex
	srv    *api.Server
	st     *store.Store
	done   chan error
	client *authzed.Client
	// maxUpdates is the server's MaxUpdatesPerWrite; zero is api's default.
	maxUpdates int
}

func startKengen(t testing.TB) *kengen {
	t.Helper()
	return startKengenWith(t, 0)
}

// startKengenWith is startKengen with the server taking maxUpdates updates per write (zero
// for api's default).
func startKengenWith(t testing.TB, maxUpdates int) *kengen {
	t.Helper()
	k := &kengen{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", maxUpdates: maxUpdates}
	k.serve()
	var err error
	k.client, err = authzed.NewClient(k.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(testKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.client.Close(); k.stop() })
	if _, err := k.client.WriteSchema(context.Background(), &v1.WriteSchemaRequest{Schema: crmSchema}); err != nil {
		t.Fatalf("WriteSchema: %v", err)
	}
	return k
}

func (k *kengen) serve() {
	k.t.Helper()
	st, err := store.Open(k.dir, store.Options{GCInterval: -1})
	if err != nil {
		k.t.Fatalf("store.Open: %v", err)
	}
	srv, err := api.New(api.Options{Store: st, PresharedKeys: []string{testKey}, MaxUpdatesPerWrite: k.maxUpdates, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		k.t.Fatal(err)
	}
	var lis net.Listener
	kit.Eventually(k.t, "listening on "+k.addr, func() error {
		lis, err = net.Listen("tcp", k.addr)
		return err
	})
	k.mu.Lock()
	k.addr, k.srv, k.st, k.done = lis.Addr().String(), srv, st, make(chan error, 1)
	k.mu.Unlock()
	go func() { k.done <- srv.Serve(lis) }()
}

func (k *kengen) stop() {
	k.mu.Lock()
	srv, st, done := k.srv, k.st, k.done
	k.srv = nil
	k.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Stop(ctx)
	<-done
	_ = st.Close()
}

// relationships is every relationship kengen holds of the deal, organization types, sorted.
func (k *kengen) relationships(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, typ := range []string{"deal", "organization"} {
		stream, err := k.client.ReadRelationships(context.Background(), &v1.ReadRelationshipsRequest{
			Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: typ},
		})
		if err != nil {
			t.Fatal(err)
		}
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, relText(r.GetRelationship()))
		}
	}
	sort.Strings(out)
	return out
}

// can asks whether user has permission on deal at a revision at least as fresh as token.
func (k *kengen) can(t testing.TB, token *v1.ZedToken, deal, perm, user string) bool {
	t.Helper()
	resp, err := k.client.CheckPermission(context.Background(), &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: token}},
		Resource:    &v1.ObjectReference{ObjectType: "deal", ObjectId: deal},
		Permission:  perm,
		Subject:     &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: user}},
	})
	if err != nil {
		t.Fatalf("check deal:%s %s user:%s: %v", deal, perm, user, err)
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
}

// crm is one test's database with the ProSales tables and a mapping over them.
type crm struct {
	t       testing.TB
	conn    string
	db      *pgx.Conn
	mapping *Mapping
	file    string
	state   string
	logs    *testWriter
}

func newCRM(t testing.TB) *crm {
	t.Helper()
	pg := pgtest.Shared(t)
	name, conn := pg.NewDatabase(t)
	db, err := pgx.Connect(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	c := &crm{t: t, conn: conn, db: db, state: filepath.Join(t.TempDir(), "sync.state"), logs: &testWriter{t: t}}
	c.exec(crmTables)
	c.file = filepath.Join(t.TempDir(), "mapping.yaml")
	text := fmt.Sprintf(crmMapping, name, name)
	if err := os.WriteFile(c.file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if c.mapping, err = ParseMapping(c.file, []byte(text)); err != nil {
		t.Fatal(err)
	}
	return c
}

// exec runs statements as one transaction.
func (c *crm) exec(sql string, args ...any) {
	c.t.Helper()
	tx, err := c.db.Begin(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), sql, args...); err != nil {
		_ = tx.Rollback(context.Background())
		c.t.Fatalf("%s: %v", strings.TrimSpace(sql), err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		c.t.Fatal(err)
	}
}

func (c *crm) seed() {
	c.exec(`INSERT INTO organizations VALUES ('acme', 'Acme'), ('globex', 'Globex');
		INSERT INTO users VALUES ('sato', 'acme', 'manager'), ('ito', 'acme', 'member'), ('kato', 'acme', 'member'), ('mori', 'globex', 'member');
		INSERT INTO organization_managers VALUES ('acme', 'sato');
		INSERT INTO deals VALUES ('d1', 'acme', 'ito', 'first'), ('d2', 'globex', 'mori', 'second');
		INSERT INTO deal_sub_assignees VALUES ('d1', 'kato');`)
}

// running is a Syncer's Run in a goroutine.
type running struct {
	s    *Syncer
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

func (c *crm) opts(k *kengen) Options {
	return Options{Mapping: c.mapping, MappingFile: c.file, ConnString: c.conn, Client: k.client, StatePath: c.state,
		StatusInterval: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(c.logs, nil))}
}

func (c *crm) start(opts Options, hook func(*Syncer)) *running {
	c.t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	s, err := New(opts)
	if err != nil {
		c.t.Fatal(err)
	}
	if hook != nil {
		hook(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, reg: reg, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-r.done; s.Close() })
	return r
}

// wait blocks until kengen holds every change committed so far and returns the token.
func (r *running) wait(t testing.TB) *v1.ZedToken {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type answer struct {
		tok *v1.ZedToken
		err error
	}
	ch := make(chan answer, 1)
	go func() { _, tok, err := r.s.WaitForCurrent(ctx); ch <- answer{tok, err} }()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("WaitForCurrent: %v", a.err)
		}
		return a.tok
	case err := <-r.done:
		r.done <- err
		t.Fatalf("sync stopped while waited for: %v", err)
	}
	return nil
}

// end waits for Run to return on its own and gives its error.
func (r *running) end(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("sync did not stop")
		return nil
	}
}

func (r *running) halt() error {
	r.stop()
	err := <-r.done
	r.done <- err
	return err
}

// agree asserts that kengen holds exactly the relationships the rows make.
func (c *crm) agree(k *kengen) {
	c.t.Helper()
	diffs, err := Check(context.Background(), c.opts(k))
	if err != nil {
		c.t.Fatalf("Check: %v", err)
	}
	if len(diffs) > 0 {
		c.t.Fatalf("kengen differs from the rows:\n%v", diffs)
	}
}

type testWriter struct {
	mu sync.Mutex
	t  testing.TB
	b  strings.Builder
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	return len(p), nil
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
