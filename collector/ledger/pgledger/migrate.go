package pgledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"amos.example/amosd/collector/ledger"
)

// migrations are the schema's versions: migrations[i] takes a database from version i
// to i+1. They are never edited once released; a change is a new one. Their SQL is
// limited to what CockroachDB and YugabyteDB also run (docs/operations.md): BYTEA
// primary keys, no advisory locks, no LISTEN/NOTIFY, no stored procedures.
var migrations = []string{
	// 1: one table per bucket of the ledger (collector/ledger, docs/operations.md).
	`CREATE TABLE amos_meta (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_devices (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_chains (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_forks (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_sales (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_months (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_decisions (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_late (k BYTEA PRIMARY KEY, v BYTEA NOT NULL);
	 CREATE TABLE amos_days (k BYTEA PRIMARY KEY, v BYTEA NOT NULL)`,
}

// SchemaVersion is the schema version this collector brings a database to.
func SchemaVersion() int { return len(migrations) }

// migrate applies the migrations the database lacks, each in its own transaction that
// first inserts its version: when collectors start at once, one applies it and the
// others, blocked on that row, find it applied when they run again.
func (l *Ledger) migrate(ctx context.Context) error {
	if !l.o.ReadOnly {
		err := l.retry(ctx, func() error {
			_, err := l.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS amos_schema (version INT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
			return err
		})
		if err != nil {
			return fmt.Errorf("schema table: %w", err)
		}
		for i, sql := range migrations {
			version := i + 1
			err := l.retry(ctx, func() error {
				return pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
					var n int
					if err := tx.QueryRow(ctx, `SELECT count(*) FROM amos_schema WHERE version = $1`, version).Scan(&n); err != nil || n > 0 {
						return err
					}
					if _, err := tx.Exec(ctx, `INSERT INTO amos_schema (version, applied_at) VALUES ($1, $2)`, version, time.Now().Unix()); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, sql)
					return err
				})
			})
			if err != nil {
				return fmt.Errorf("schema migration %d: %w", version, err)
			}
		}
	}
	var have int
	err := l.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM amos_schema`).Scan(&have)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: a read-only open of an empty database
		have, err = 0, nil
	}
	switch {
	case err != nil:
		return fmt.Errorf("schema version: %w", err)
	case have > len(migrations):
		return fmt.Errorf("schema version %d, this collector knows %d: %w", have, len(migrations), ledger.ErrCorrupt)
	case have < len(migrations):
		return fmt.Errorf("schema version %d, this collector needs %d: start amos-collector serve once to migrate it: %w", have, len(migrations), ledger.ErrOldSchema)
	}
	return nil
}

// retry runs fn again while it fails for a concurrent migration: a serialization
// failure, a deadlock, or the unique violation of a version, table or type another collector
// has just created.
func (l *Ledger) retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		var pe *pgconn.PgError
		if err == nil || attempt == l.o.MaxAttempts || !errors.As(err, &pe) ||
			(pe.Code != "40001" && pe.Code != "40P01" && pe.Code != "23505" && pe.Code != "42P07" && pe.Code != "42710") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
}
