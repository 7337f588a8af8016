// Package pgsync follows a PostgreSQL database through logical replication (pgoutput, a
// publication on the mapped tables, a replication slot) and writes the relationships its
// rows make to an Authzed v1 endpoint: an insert TOUCHes, an update of a mapped column
// DELETEs the old relationship and TOUCHes the new one, a delete DELETEs; one database
// transaction is one WriteRelationships, in commit order.
//
// The first start copies the mapped tables from the snapshot the new slot exports, then
// streams from exactly there. Progress is saved and confirmed to PostgreSQL only after the
// endpoint acknowledged, so a crash anywhere replays without loss; replay is harmless (see
// state). Syncer.WaitFor gives a ZedToken that covers a WAL position, for read-your-writes.
//
// This file is the front door: Options, Syncer, New, Run, WaitFor, WaitForCurrent, Close,
// Check.
package pgsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Syncer.
type Options struct {
	// Mapping says which rows make which relationships (ParseMapping). MappingFile names it
	// in errors. Required.
	Mapping     *Mapping
	MappingFile string
	// ConnString is the PostgreSQL connection string (libpq keywords or a URL). Its user
	// needs the REPLICATION attribute, and CREATE on the database for the publication.
	ConnString string
	// Client is the Authzed endpoint written to. Required.
	Client *authzed.Client
	// StatePath is the file holding the position kengen has reached. Required.
	StatePath string
	// SkipRefused skips a change the endpoint refuses (logging it and counting it in
	// kengen_sync_refused_total) instead of stopping.
	SkipRefused bool
	// Recopy drops the slot and copies the tables anew.
	Recopy bool
	// MaxUpdates bounds the updates of one write; a larger transaction is written in parts.
	// Zero means 1000 (kengen's and SpiceDB's default limit).
	MaxUpdates int
	// StatusInterval is how often progress is confirmed to PostgreSQL. Zero means 1s.
	StatusInterval time.Duration
	// Registerer receives the metrics; nil exports none.
	Registerer prometheus.Registerer
	// Logger receives progress and skipped changes; nil means slog.Default().
	Logger *slog.Logger
	// Progress, when set, logs a progress line every ProgressInterval (default 10s).
	Progress         bool
	ProgressInterval time.Duration
}

// Syncer follows one database into one endpoint.
type Syncer struct {
	opts    Options
	mapping *Mapping
	client  *authzed.Client
	sink    *sink
	metrics *metrics
	log     *slog.Logger

	// afterWrite, when set (tests), runs after the endpoint acknowledged a transaction and
	// before anything records it; an error ends Run there, as a crash would.
	afterWrite func(end pglogrepl.LSN) error
	// slotWait is how long a start waits for the slot to be released by a sync that ended.
	slotWait time.Duration
	// afterCopyPart, when set (tests), runs after each write of the initial copy.
	afterCopyPart func() error

	mu struct {
		sync.Mutex
		covered pglogrepl.LSN // every change at or below is in kengen
		token   *v1.ZedToken
		changed chan struct{} // closed and replaced when covered advances
		running bool
	}
	poke chan struct{} // asks the stream for a fresh position from the server

	lsnConn struct {
		sync.Mutex
		conn *pgx.Conn
	}
}

// New checks opts and returns a Syncer; Run starts it.
func New(opts Options) (*Syncer, error) {
	if opts.Mapping == nil || opts.Client == nil || opts.StatePath == "" {
		return nil, errors.New("pgsync: Options.Mapping, Client and StatePath are required")
	}
	if opts.MaxUpdates <= 0 {
		opts.MaxUpdates = 1000
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Syncer{opts: opts, mapping: opts.Mapping, client: opts.Client, metrics: m, log: opts.Logger, poke: make(chan struct{}, 1), slotWait: 15 * time.Second}
	s.sink = &sink{client: opts.Client, skip: opts.SkipRefused, maxUpdates: opts.MaxUpdates, log: opts.Logger, metrics: m}
	s.mu.changed = make(chan struct{})
	return s, nil
}

// Run follows the database until ctx ends (a clean stop: nil) or something stops it: a
// refused change (ErrRefused, naming the row and the rule), a bad mapping (ErrMapping), a
// lost connection. Running it again resumes where kengen's acknowledged writes end.
func (s *Syncer) Run(ctx context.Context) error {
	err := s.run(ctx)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}

// WaitFor waits until every change at or below the WAL position lsn is in kengen and
// returns a ZedToken that covers them: a read at_least_as_fresh it sees them.
func (s *Syncer) WaitFor(ctx context.Context, lsn pglogrepl.LSN) (*v1.ZedToken, error) {
	for {
		s.mu.Lock()
		covered, token, changed := s.mu.covered, s.mu.token, s.mu.changed
		s.mu.Unlock()
		if covered >= lsn && token != nil {
			return token, nil
		}
		select {
		case s.poke <- struct{}{}:
		default:
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("pgsync: waiting for %s (kengen holds up to %s): %w", lsn, covered, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitForCurrent is WaitFor at the database's current WAL position: called after a
// transaction committed, its answer covers that transaction.
func (s *Syncer) WaitForCurrent(ctx context.Context) (pglogrepl.LSN, *v1.ZedToken, error) {
	lsn, err := s.currentLSN(ctx)
	if err != nil {
		return 0, nil, err
	}
	token, err := s.WaitFor(ctx, lsn)
	return lsn, token, err
}

// currentLSN reads pg_current_wal_lsn() on a connection kept for it (reopened after an
// error), so that a waiter costs one query.
func (s *Syncer) currentLSN(ctx context.Context) (pglogrepl.LSN, error) {
	s.lsnConn.Lock()
	defer s.lsnConn.Unlock()
	if s.lsnConn.conn == nil {
		conn, err := pgx.Connect(ctx, s.opts.ConnString)
		if err != nil {
			return 0, fmt.Errorf("pgsync: connecting to the database: %w", err)
		}
		s.lsnConn.conn = conn
	}
	var lsn pglogrepl.LSN
	if err := s.lsnConn.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()").Scan(&lsn); err != nil {
		_ = s.lsnConn.conn.Close(context.Background())
		s.lsnConn.conn = nil
		return 0, fmt.Errorf("pgsync: reading the WAL position: %w", err)
	}
	return lsn, nil
}

// Close releases the connection WaitForCurrent keeps.
func (s *Syncer) Close() {
	s.lsnConn.Lock()
	defer s.lsnConn.Unlock()
	if s.lsnConn.conn != nil {
		_ = s.lsnConn.conn.Close(context.Background())
		s.lsnConn.conn = nil
	}
}

// Position is the WAL position up to which every change is in kengen, and its token.
func (s *Syncer) Position() (pglogrepl.LSN, *v1.ZedToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.covered, s.mu.token
}

// Check compares the database's current rows with the relationships kengen holds in the
// relations the mapping owns, and lists every difference (in key order). It writes nothing.
func Check(ctx context.Context, opts Options) ([]Difference, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, opts.ConnString)
	if err != nil {
		return nil, fmt.Errorf("pgsync: connecting to the database: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := s.mapping.resolve(ctx, conn, opts.MappingFile); err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	want, err := s.mapping.desired(ctx, tx)
	if err != nil {
		return nil, err
	}
	changes, err := s.diff(ctx, want)
	if err != nil {
		return nil, err
	}
	out := make([]Difference, len(changes))
	for i, c := range changes {
		out[i] = Difference{Op: opName(c.op), Relationship: relText(c.rel), Row: c.row, Rule: c.rule.String()}
	}
	return out, nil
}

// advance records that everything at or below lsn is in kengen, covered by token (nil keeps
// the current one), and wakes the waiters.
func (s *Syncer) advance(lsn pglogrepl.LSN, token *v1.ZedToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token != nil {
		s.mu.token = token
	}
	if lsn > s.mu.covered {
		s.mu.covered = lsn
		s.metrics.position.Set(float64(lsn))
	}
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
}
