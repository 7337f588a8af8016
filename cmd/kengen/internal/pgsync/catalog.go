package pgsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// resolve checks the mapping against the database's catalog: every table exists with a
// primary key, every column a rule reads exists, and the old values of those columns reach
// the stream (REPLICA IDENTITY FULL, or the columns are all in the key). Every problem is
// reported with its mapping line.
func (m *Mapping) resolve(ctx context.Context, conn *pgx.Conn, file string) error {
	errs := &MappingErrors{File: file}
	for _, t := range m.Tables {
		var ident string
		err := conn.QueryRow(ctx, `SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&ident)
		if errors.Is(err, pgx.ErrNoRows) {
			errs.Errors = append(errs.Errors, MappingError{Line: t.Line, Col: 1, Msg: fmt.Sprintf("table %s.%s does not exist in the database", t.Schema, t.Name)})
			continue
		}
		if err != nil {
			return fmt.Errorf("pgsync: reading the catalog: %w", err)
		}
		cols, err := columnsOf(ctx, conn, t)
		if err != nil {
			return err
		}
		t.key, err = primaryKey(ctx, conn, t)
		if err != nil {
			return err
		}
		if len(t.key) == 0 {
			errs.Errors = append(errs.Errors, MappingError{Line: t.Line, Col: 1, Msg: fmt.Sprintf("table %s has no primary key: sync names rows by it", t.qualified())})
			continue
		}
		t.columns = slices.Clone(t.key)
		for _, r := range t.Rules {
			for _, c := range r.columnsRead() {
				if !slices.Contains(cols, c) {
					errs.Errors = append(errs.Errors, MappingError{Line: r.Line, Col: 1, Msg: fmt.Sprintf("table %s has no column %s (columns: %s)", t.qualified(), c, strings.Join(cols, ", "))})
					continue
				}
				if !slices.Contains(t.columns, c) {
					t.columns = append(t.columns, c)
				}
				if ident != "f" && !slices.Contains(t.key, c) {
					errs.Errors = append(errs.Errors, MappingError{Line: r.Line, Col: 1, Msg: fmt.Sprintf(
						"column %s of %s is not in its replica identity, so an update or delete would not say its old value: run ALTER TABLE %s REPLICA IDENTITY FULL",
						c, t.qualified(), pgx.Identifier{t.Schema, t.Name}.Sanitize())})
				}
			}
		}
	}
	if len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

func columnsOf(ctx context.Context, conn *pgx.Conn, t *Table) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_attribute a
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, pgx.Identifier{t.Schema, t.Name}.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("pgsync: reading the columns of %s: %w", t.qualified(), err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func primaryKey(ctx context.Context, conn *pgx.Conn, t *Table) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n`, pgx.Identifier{t.Schema, t.Name}.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("pgsync: reading the primary key of %s: %w", t.qualified(), err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ensurePublication creates the publication on the mapped tables, or adds the ones it lacks.
func (m *Mapping) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	names := make([]string, len(m.Tables))
	for i, t := range m.Tables {
		names[i] = pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	pub := pgx.Identifier{m.Publication}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, m.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("pgsync: reading publications: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(names, ", ")); err != nil {
			return fmt.Errorf("pgsync: creating publication %s: %w", m.Publication, err)
		}
		return nil
	}
	for i, t := range m.Tables {
		var in bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
			m.Publication, t.Schema, t.Name).Scan(&in); err != nil {
			return fmt.Errorf("pgsync: reading publication %s: %w", m.Publication, err)
		}
		if !in {
			if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pub+" ADD TABLE "+names[i]); err != nil {
				return fmt.Errorf("pgsync: adding %s to publication %s: %w", t.qualified(), m.Publication, err)
			}
		}
	}
	return nil
}

// slotExists says whether the replication slot is there, and refuses a slot of another
// plugin or database.
func slotExists(ctx context.Context, conn *pgx.Conn, slot string) (bool, error) {
	var (
		plugin, db string
		pid        *int32
	)
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&plugin, &db, &pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgsync: reading replication slots: %w", err)
	}
	var cur string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&cur); err != nil {
		return false, err
	}
	if plugin != "pgoutput" || db != cur {
		return false, fmt.Errorf("pgsync: replication slot %s belongs to plugin %q on database %q, not pgoutput on %q: name another slot in the mapping", slot, plugin, db, cur)
	}
	if pid != nil {
		return false, fmt.Errorf("%w: replication slot %s is in use by server process %d (another kengen sync?)", ErrSlotInUse, slot, *pid)
	}
	return true, nil
}

// table finds the mapped table by schema and name.
func (m *Mapping) table(schema, name string) *Table {
	for _, t := range m.Tables {
		if t.Schema == schema && t.Name == name {
			return t
		}
	}
	return nil
}
