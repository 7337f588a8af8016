package pgsync

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

func (s *Syncer) run(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.opts.ConnString)
	if err != nil {
		return fmt.Errorf("pgsync: connecting to the database: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := s.mapping.resolve(ctx, conn, s.opts.MappingFile); err != nil {
		return err
	}
	if err := s.mapping.ensurePublication(ctx, conn); err != nil {
		return err
	}
	st, err := loadState(s.opts.StatePath)
	if err != nil {
		return err
	}
	// A sync that was just killed leaves its server process for a moment: wait for it.
	var exists bool
	for deadline := time.Now().Add(s.slotWait); ; {
		exists, err = slotExists(ctx, conn, s.mapping.Slot)
		if !errors.Is(err, ErrSlotInUse) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return err
	}
	repl, err := s.replicationConn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = repl.Close(context.Background()) }()

	fp := s.mapping.fingerprint()
	reason := copyReason(s.opts.Recopy, st, s.mapping.Slot, fp)
	if exists && reason == "" {
		// The slot confirms only what the state file recorded, so a slot past the file
		// means the file is older than the slot (restored, or another sync's).
		var confirmed pglogrepl.LSN
		if err := conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn, '0/0') FROM pg_replication_slots WHERE slot_name = $1`, s.mapping.Slot).Scan(&confirmed); err != nil {
			return fmt.Errorf("pgsync: reading replication slot %s: %w", s.mapping.Slot, err)
		}
		if confirmed > st.lsn() {
			reason = fmt.Sprintf("the slot is at %s, past the state file's %s", confirmed, st.Position)
		}
	}
	if !exists || reason != "" {
		if exists {
			s.log.Info("sync: dropping the replication slot to copy anew", "slot", s.mapping.Slot, "reason", reason)
			if err := pglogrepl.DropReplicationSlot(ctx, repl, s.mapping.Slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
				return fmt.Errorf("pgsync: dropping replication slot %s: %w", s.mapping.Slot, err)
			}
		}
		if st, err = s.initialCopy(ctx, conn, repl, fp); err != nil {
			return err
		}
	} else {
		token := st.Token
		if token == "" {
			t, err := s.currentToken(ctx)
			if err != nil {
				return err
			}
			token = t.GetToken()
		}
		s.advance(st.lsn(), &v1.ZedToken{Token: token})
		s.log.Info("sync: resuming", "slot", s.mapping.Slot, "position", st.Position)
	}
	return s.stream(ctx, repl, st)
}

func copyReason(recopy bool, st state, slot, fp string) string {
	switch {
	case recopy:
		return "--recopy"
	case st.Slot != slot:
		return "the state file records no copy for this slot"
	case st.Fingerprint != fp:
		return "the mapping changed since the copy"
	case !st.Copied:
		return "the copy did not finish"
	}
	return ""
}

func (s *Syncer) replicationConn(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(s.opts.ConnString)
	if err != nil {
		return nil, fmt.Errorf("pgsync: connection string: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgsync: opening the replication connection: %w", err)
	}
	return c, nil
}

// initialCopy creates the slot, which exports a snapshot taken at its consistent point, and
// makes kengen's owned relations equal the rows of that snapshot; the stream then starts at
// exactly that point. The snapshot lives until the replication connection's next command.
func (s *Syncer) initialCopy(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, fp string) (state, error) {
	st := state{Slot: s.mapping.Slot, Fingerprint: fp}
	if err := st.save(s.opts.StatePath); err != nil {
		return st, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.mapping.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return st, fmt.Errorf("pgsync: creating replication slot %s: %w", s.mapping.Slot, err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return st, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+res.SnapshotName+"'"); err != nil {
		return st, fmt.Errorf("pgsync: reading the slot's snapshot: %w", err)
	}
	token, err := s.reconcile(ctx, tx)
	if err != nil {
		return st, err
	}
	if token == nil {
		if token, err = s.currentToken(ctx); err != nil {
			return st, err
		}
	}
	st.Copied, st.Position, st.Token = true, res.ConsistentPoint, token.GetToken()
	if err := st.save(s.opts.StatePath); err != nil {
		return st, err
	}
	s.advance(st.lsn(), token)
	s.log.Info("sync: initial copy done; streaming", "slot", s.mapping.Slot, "position", st.Position)
	return st, nil
}

// currentToken is a token for the endpoint's present state.
func (s *Syncer) currentToken(ctx context.Context) (*v1.ZedToken, error) {
	resp, err := s.client.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return nil, fmt.Errorf("pgsync: reading the endpoint's schema: %w", err)
	}
	return resp.GetReadAt(), nil
}

// stream follows the slot from st's position: it decodes pgoutput, folds each transaction's
// row changes into one write, writes it, saves the state and confirms the position.
func (s *Syncer) stream(ctx context.Context, repl *pgconn.PgConn, st state) error {
	err := pglogrepl.StartReplication(ctx, repl, s.mapping.Slot, st.lsn(), pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + s.mapping.Publication + "'"},
	})
	if err != nil {
		return fmt.Errorf("pgsync: starting replication from slot %s: %w", s.mapping.Slot, err)
	}
	f := &follower{s: s, repl: repl, st: st, relations: map[uint32]*relation{}}
	// confirm tells PostgreSQL what kengen holds. A position the server's keepalives
	// advanced (no mapped change below it) is saved first, so the slot is never confirmed
	// past the state file: a slot past it means a state file older than the slot.
	confirm := func(ctx context.Context, reply bool) error {
		covered, token := s.Position()
		if covered > f.st.lsn() {
			f.st.Position, f.st.Token = covered.String(), token.GetToken()
			if err := f.st.save(s.opts.StatePath); err != nil {
				return err
			}
		}
		return pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: f.st.lsn(), ReplyRequested: reply})
	}
	defer func() {
		// A clean stop confirms what kengen holds.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = confirm(cctx, false)
	}()
	nextStatus := time.Now().Add(s.opts.StatusInterval)
	nextProgress := time.Now().Add(s.opts.ProgressInterval)
	var poked atomic.Bool
	for {
		if poked.Swap(false) {
			if err := confirm(ctx, true); err != nil {
				return fmt.Errorf("pgsync: confirming progress: %w", err)
			}
		}
		if now := time.Now(); !now.Before(nextStatus) {
			if err := confirm(ctx, false); err != nil {
				return fmt.Errorf("pgsync: confirming progress: %w", err)
			}
			nextStatus = now.Add(s.opts.StatusInterval)
			if s.opts.Progress && !now.Before(nextProgress) {
				covered, _ := s.Position()
				s.log.Info("sync: progress", "position", covered.String(), "transactions", f.applied, "lag_bytes", f.lagBytes)
				nextProgress = now.Add(s.opts.ProgressInterval)
			}
		}
		// A waiter's poke ends the receive at once, so that its position is asked for now.
		rctx, cancel := context.WithTimeout(ctx, time.Until(nextStatus))
		received := make(chan struct{})
		go func() {
			select {
			case <-s.poke:
				poked.Store(true)
				cancel()
			case <-received:
			}
		}()
		msg, err := repl.ReceiveMessage(rctx)
		close(received)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A timeout (the status interval) or a poke's cancellation leaves the connection
			// usable.
			if pgconn.Timeout(err) || errors.Is(err, context.Canceled) {
				if repl.IsClosed() {
					return fmt.Errorf("pgsync: replication stream: %w", err)
				}
				continue
			}
			return fmt.Errorf("pgsync: replication stream: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("pgsync: replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyData:
			if err := f.copyData(ctx, msg.Data); err != nil {
				return err
			}
			if f.replyRequested {
				f.replyRequested = false
				if err := confirm(ctx, false); err != nil {
					return fmt.Errorf("pgsync: confirming progress: %w", err)
				}
			}
		}
	}
}
