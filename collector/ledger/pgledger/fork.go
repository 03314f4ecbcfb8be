package pgledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"amos.example/amosd/collector/ledger"
)

// forkWait bounds how long Fork waits for a free connection before it leaves the
// scans to the transaction's own connection.
const forkWait = time.Second

// viewBegin begins a View's transaction.
const viewBegin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

// Fork implements ledger.Forker: another connection in a REPEATABLE READ, READ ONLY
// transaction on this transaction's snapshot (pg_export_snapshot, SET TRANSACTION
// SNAPSHOT). A transaction that may write has no fork (its writes would not be seen),
// nor has an engine without exported snapshots (CockroachDB, YugabyteDB): whether the
// engine has them is asked once, outside the transaction, and remembered. A pool
// without a free connection gives none either.
func (k *kv) Fork() (ledger.KV, func(), error) {
	if k.writable {
		return nil, nil, nil
	}
	if ok, err := k.l.sharesSnapshots(k.ctx); err != nil || !ok {
		return nil, nil, err
	}
	if s := k.l.pool.Stat(); s.AcquiredConns() >= s.MaxConns() {
		return nil, nil, nil
	}
	var id string
	q := &pgx.Batch{}
	q.Queue("SELECT pg_export_snapshot()")
	if err := k.send(q, func(br pgx.BatchResults) error { return br.QueryRow().Scan(&id) }); err != nil {
		return nil, nil, k.l.wrap(fmt.Errorf("export snapshot: %w", err))
	}
	if id == "" || strings.ContainsFunc(id, func(r rune) bool { return !strings.ContainsRune("0123456789ABCDEFabcdef-", r) }) {
		return nil, nil, k.l.wrap(fmt.Errorf("export snapshot: unexpected id %q", id))
	}
	actx, cancel := context.WithTimeout(k.ctx, forkWait)
	conn, err := k.l.pool.Acquire(actx)
	cancel()
	if err != nil {
		if k.ctx.Err() != nil {
			return nil, nil, k.l.wrap(err)
		}
		return nil, nil, nil // the pool is busy: scan in the transaction
	}
	// Simple protocol, one round trip: both statements or neither.
	if _, err := conn.Exec(k.ctx, viewBegin+"; SET TRANSACTION SNAPSHOT '"+id+"'"); err != nil {
		conn.Exec(context.WithoutCancel(k.ctx), "ROLLBACK")
		conn.Release()
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			k.l.snapshots.Store(snapshotsNone)
			return nil, nil, nil
		}
		return nil, nil, k.l.wrap(fmt.Errorf("fork: %w", err))
	}
	f := &kv{ctx: k.ctx, conn: conn, begin: viewBegin, begun: true, l: k.l}
	return f, func() {
		// A connection still in a transaction is closed by Release.
		conn.Exec(context.WithoutCancel(k.ctx), "ROLLBACK")
		conn.Release()
	}, nil
}

// sharesSnapshots reports whether the engine exports snapshots, asking it the first
// time in a transaction of its own: a statement the engine refuses would abort the
// transaction that sent it.
func (l *Ledger) sharesSnapshots(ctx context.Context) (bool, error) {
	switch l.snapshots.Load() {
	case snapshotsShared:
		return true, nil
	case snapshotsNone:
		return false, nil
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return false, l.wrap(err)
	}
	defer conn.Release()
	q := &pgx.Batch{}
	q.Queue(viewBegin)
	q.Queue("SELECT pg_export_snapshot()")
	var id string
	br := conn.SendBatch(ctx, q)
	_, err = br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&id)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	_, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		l.snapshots.Store(snapshotsNone)
		return false, nil
	case err != nil:
		return false, l.wrap(fmt.Errorf("export snapshot: %w", err))
	case rerr != nil:
		return false, l.wrap(fmt.Errorf("export snapshot: %w", rerr))
	}
	l.snapshots.Store(snapshotsShared)
	return true, nil
}
