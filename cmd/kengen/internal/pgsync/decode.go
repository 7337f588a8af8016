package pgsync

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// follower turns the pgoutput messages of the stream into writes, one per transaction.
type follower struct {
	s         *Syncer
	repl      *pgconn.PgConn // the replication connection, nil in tests of the decoding alone
	st        state
	relations map[uint32]*relation

	tx       *txn // the open transaction, nil between them
	txSkip   bool // the open transaction is at or below the saved position
	applied  int64
	lagBytes uint64

	replyRequested bool
}

// relation is a table the stream described, and its mapping (nil when not mapped).
type relation struct {
	msg   *pglogrepl.RelationMessage
	table *Table
}

func (f *follower) copyData(ctx context.Context, data []byte) error {
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("pgsync: replication stream: %w", err)
		}
		// Every transaction that committed below the server's position has been sent, and
		// with none open here every one sent is in kengen: that position is covered.
		if f.tx == nil {
			f.s.advance(ka.ServerWALEnd, nil)
		}
		f.lag(ka.ServerWALEnd)
		f.replyRequested = f.replyRequested || ka.ReplyRequested
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("pgsync: replication stream: %w", err)
		}
		f.lag(xld.ServerWALEnd)
		msg, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return fmt.Errorf("pgsync: decoding pgoutput at %s: %w", xld.WALStart, err)
		}
		return f.message(ctx, msg, xld.WALStart)
	}
	return nil
}

func (f *follower) lag(serverEnd pglogrepl.LSN) {
	covered, _ := f.s.Position()
	if serverEnd > covered {
		f.lagBytes = uint64(serverEnd - covered)
	} else {
		f.lagBytes = 0
	}
	f.s.metrics.lagBytes.Set(float64(f.lagBytes))
}

func (f *follower) message(ctx context.Context, msg pglogrepl.Message, at pglogrepl.LSN) error {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		rel := &relation{msg: m, table: f.s.mapping.table(m.Namespace, m.RelationName)}
		if rel.table != nil {
			for _, c := range rel.table.columns {
				if !slices.ContainsFunc(m.Columns, func(mc *pglogrepl.RelationMessageColumn) bool { return mc.Name == c }) {
					return fmt.Errorf("%w: table %s no longer has column %s, which the mapping reads (at %s)", ErrMapping, rel.table.qualified(), c, at)
				}
			}
		}
		f.relations[m.RelationID] = rel
	case *pglogrepl.BeginMessage:
		f.tx = newTxn()
		// A transaction whose commit is at or below the saved position is in kengen.
		f.txSkip = m.FinalLSN < f.st.lsn()
	case *pglogrepl.InsertMessage:
		rel, err := f.mapped(m.RelationID)
		if rel == nil || err != nil || f.txSkip {
			return err
		}
		r, err := rel.row(m.Tuple, nil)
		if err != nil {
			return err
		}
		return f.tx.insert(rel.table, r)
	case *pglogrepl.UpdateMessage:
		rel, err := f.mapped(m.RelationID)
		if rel == nil || err != nil || f.txSkip {
			return err
		}
		var old row
		if m.OldTuple != nil {
			if old, err = rel.row(m.OldTuple, nil); err != nil {
				return err
			}
		}
		cur, err := rel.row(m.NewTuple, old)
		if err != nil {
			return err
		}
		if old == nil {
			// The key did not change and the identity is the key: the mapped columns are
			// all key columns (resolve checked), so nothing mapped changed.
			return nil
		}
		return f.tx.update(rel.table, old, cur)
	case *pglogrepl.DeleteMessage:
		rel, err := f.mapped(m.RelationID)
		if rel == nil || err != nil || f.txSkip {
			return err
		}
		r, err := rel.row(m.OldTuple, nil)
		if err != nil {
			return err
		}
		return f.tx.remove(rel.table, r)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			if rel, _ := f.mapped(id); rel != nil && !f.txSkip {
				return fmt.Errorf("pgsync: TRUNCATE of %s at %s: a truncate names no rows, so sync cannot follow it; run kengen sync --recopy", rel.table.qualified(), at)
			}
		}
	case *pglogrepl.CommitMessage:
		tx, skip := f.tx, f.txSkip
		f.tx = nil
		if skip || m.TransactionEndLSN <= f.st.lsn() {
			return nil
		}
		return f.commit(ctx, tx, m)
	}
	return nil
}

func (f *follower) mapped(id uint32) (*relation, error) {
	rel, ok := f.relations[id]
	if !ok {
		return nil, fmt.Errorf("pgsync: replication stream: a change to relation %d, which the stream never described", id)
	}
	if rel.table == nil {
		return nil, nil
	}
	if f.tx == nil {
		return nil, fmt.Errorf("pgsync: replication stream: a change to %s outside a transaction", rel.table.qualified())
	}
	return rel, nil
}

// row decodes a tuple; an unchanged TOASTed value is taken from old.
func (rel *relation) row(t *pglogrepl.TupleData, old row) (row, error) {
	r := make(row, len(t.Columns))
	for i, c := range t.Columns {
		if i >= len(rel.msg.Columns) {
			break
		}
		name := rel.msg.Columns[i].Name
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			r[name] = nil
		case pglogrepl.TupleDataTypeText:
			v := string(c.Data)
			r[name] = &v
		case pglogrepl.TupleDataTypeToast:
			if v, ok := old[name]; ok {
				r[name] = v
			} else if slices.Contains(rel.table.columns, name) {
				return nil, fmt.Errorf("pgsync: %s: column %s came unchanged and TOASTed without its old value: set REPLICA IDENTITY FULL", rel.table.qualified(), name)
			}
		default:
			return nil, fmt.Errorf("pgsync: %s: column %s in an unexpected format %q", rel.table.qualified(), name, c.DataType)
		}
	}
	return r, nil
}

// commit writes one transaction, then records it: the state file first, then the waiters
// and the position confirmed to PostgreSQL.
func (f *follower) commit(ctx context.Context, tx *txn, m *pglogrepl.CommitMessage) error {
	changes := tx.changes()
	if len(changes) == 0 {
		f.s.advance(m.TransactionEndLSN, nil)
		return nil
	}
	token, err := f.keepAlive(ctx, func() (*v1.ZedToken, error) { return f.s.sink.write(ctx, changes) })
	if err != nil {
		return fmt.Errorf("transaction committed at %s: %w", m.CommitLSN, err)
	}
	if f.s.afterWrite != nil {
		if err := f.s.afterWrite(m.TransactionEndLSN); err != nil {
			return err
		}
	}
	if token == nil { // every change was refused and skipped
		_, token = f.s.Position()
	}
	f.st.Position, f.st.Token = m.TransactionEndLSN.String(), token.GetToken()
	if err := f.st.save(f.s.opts.StatePath); err != nil {
		return err
	}
	f.applied++
	f.s.metrics.transactions.Inc()
	f.s.metrics.changes.Add(float64(len(changes)))
	f.s.metrics.lagSeconds.Set(time.Since(m.CommitTime).Seconds())
	f.s.advance(m.TransactionEndLSN, token)
	return nil
}

// keepAlive runs write while telling PostgreSQL every StatusInterval that this client is
// alive at the saved position. A write retried while the endpoint is down can outlast the
// server's wal_sender_timeout (60s by default), after which it ends a replication connection
// that has said nothing, and the stream would stop with the endpoint's outage. The stream does
// not use the connection while write runs, so the goroutine has it to itself.
func (f *follower) keepAlive(ctx context.Context, write func() (*v1.ZedToken, error)) (*v1.ZedToken, error) {
	if f.repl == nil {
		return write()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(f.s.opts.StatusInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				// A failure here is the stream's next receive's to report.
				cctx, cancel := context.WithTimeout(ctx, f.s.opts.StatusInterval)
				_ = pglogrepl.SendStandbyStatusUpdate(cctx, f.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: f.st.lsn()})
				cancel()
			}
		}
	}()
	token, err := write()
	close(done)
	wg.Wait()
	return token, err
}
