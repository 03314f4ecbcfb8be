// Package pgledger keeps the collector's ledger in PostgreSQL (or an engine that speaks
// its protocol and SQL, such as CockroachDB or YugabyteDB), so that several collectors
// share one ledger.
package pgledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"amos.example/amosd/collector/ledger"
)

// Options configure Open.
type Options struct {
	// ReadOnly opens the ledger for reading only: no migration, and Update fails with
	// ledger.ErrReadOnly.
	ReadOnly bool
	// MaxConns bounds the pool's connections; 8 if 0.
	MaxConns int32
	// TxTimeout bounds one transaction, retries included; DefaultTxTimeout if 0.
	TxTimeout time.Duration
	// MaxAttempts bounds how often a transaction the database aborted to keep its
	// isolation (serialization failure, deadlock) is run; DefaultMaxAttempts if 0.
	MaxAttempts int
}

// DefaultTxTimeout bounds one transaction: a month's claim over a large fleet included.
const DefaultTxTimeout = 10 * time.Minute

// DefaultMaxAttempts is how often a transaction is run before a serialization failure
// is returned.
const DefaultMaxAttempts = 30

// Ledger is the ledger.Ledger in a PostgreSQL database: one table per bucket of
// ledger.Bucket, keyed by the same bytes, with the same versioned values as the bbolt
// ledger. Every Update is one SERIALIZABLE transaction, retried when the database
// aborts it to keep that isolation, so that collectors sharing the database decide
// every chain as one would.
type Ledger struct {
	pool *pgxpool.Pool
	o    Options
	name string // the database's host and name, for messages: never the password
	// retries counts the transactions run again after the database aborted them.
	retries atomic.Uint64
}

// Retries returns how many times a transaction was run again because the database
// aborted it to keep its isolation.
func (l *Ledger) Retries() uint64 { return l.retries.Load() }

var _ ledger.Ledger = (*Ledger)(nil)

// Redact returns a PostgreSQL URL without its password, for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Open connects to the database at url, applies the schema migrations it lacks (unless
// read-only) and checks its schema version. A schema newer than this collector knows is
// refused with ledger.ErrCorrupt.
func Open(url string, o Options) (*Ledger, error) {
	if o.MaxConns <= 0 {
		o.MaxConns = 8
	}
	if o.TxTimeout <= 0 {
		o.TxTimeout = DefaultTxTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	name := Redact(url)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("collector: ledger %s: %w", name, err)
	}
	cfg.MaxConns = o.MaxConns
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("collector: ledger %s: %w", name, err)
	}
	l := &Ledger{pool: pool, o: o, name: name}
	if err := l.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("collector: ledger %s: %w", name, err)
	}
	return l, nil
}

// Close implements ledger.Ledger.
func (l *Ledger) Close() error {
	l.pool.Close()
	return nil
}

// View implements ledger.Ledger: one REPEATABLE READ, READ ONLY transaction, a
// consistent snapshot.
func (l *Ledger) View(fn func(ledger.Tx) error) error {
	return l.run(pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, false, fn)
}

// Update implements ledger.Ledger: one SERIALIZABLE transaction, run again from the
// start when the database aborts it with a serialization failure or a deadlock. fn may
// therefore run more than once and must have no effect outside the transaction that a
// second run would not overwrite.
func (l *Ledger) Update(fn func(ledger.Tx) error) error {
	if l.o.ReadOnly {
		return fmt.Errorf("collector: ledger %s: %w", l.name, ledger.ErrReadOnly)
	}
	return l.run(pgx.TxOptions{IsoLevel: pgx.Serializable}, true, fn)
}

// retryable reports whether err is the database aborting a transaction to keep its
// isolation: serialization_failure or deadlock_detected.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func (l *Ledger) run(opts pgx.TxOptions, writable bool, fn func(ledger.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.o.TxTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := l.once(ctx, opts, writable, fn)
		if err == nil || !retryable(err) || attempt == l.o.MaxAttempts {
			return err
		}
		l.retries.Add(1)
		// Back off a little, at random, so that the transactions that collided do not
		// collide again.
		d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 7)))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
	}
}

func (l *Ledger) once(ctx context.Context, opts pgx.TxOptions, writable bool, fn func(ledger.Tx) error) (err error) {
	tx, err := l.pool.BeginTx(ctx, opts)
	if err != nil {
		return l.wrap(err)
	}
	done := false
	defer func() {
		if !done || err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	k := &kv{ctx: ctx, tx: tx, writable: writable, l: l}
	if err := fn(ledger.NewTx(k)); err != nil {
		done = true
		return err
	}
	if err := k.flush(); err != nil {
		done = true
		return err
	}
	done = true
	if err := tx.Commit(ctx); err != nil {
		return l.wrap(err)
	}
	return nil
}

func (l *Ledger) wrap(err error) error {
	return fmt.Errorf("collector: ledger %s: %w", l.name, err)
}

// table is the table of a bucket.
func table(b ledger.Bucket) string { return "amos_" + b.String() }

// kv is one transaction's ledger.KV. Writes are kept in memory and sent in one
// statement per bucket before the next scan and at commit; reads of a key written in
// the transaction are answered from memory.
type kv struct {
	ctx      context.Context
	tx       pgx.Tx
	writable bool
	l        *Ledger
	written  map[ledger.Bucket]map[string][]byte // every value written by the transaction
	pending  map[ledger.Bucket]map[string][]byte // written but not yet sent
	npending int
}

// maxPending bounds the writes kept before they are sent.
const maxPending = 8192

func (k *kv) Get(b ledger.Bucket, key []byte) ([]byte, error) {
	if v, ok := k.written[b][string(key)]; ok {
		return v, nil
	}
	var v []byte
	err := k.tx.QueryRow(k.ctx, "SELECT v FROM "+table(b)+" WHERE k = $1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, k.l.wrap(fmt.Errorf("get %s: %w", b, err))
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func (k *kv) Put(b ledger.Bucket, key, value []byte) error {
	if !k.writable {
		return fmt.Errorf("collector: put %s: %w", b, ledger.ErrReadOnly)
	}
	if k.written == nil {
		k.written, k.pending = map[ledger.Bucket]map[string][]byte{}, map[ledger.Bucket]map[string][]byte{}
	}
	if k.written[b] == nil {
		k.written[b] = map[string][]byte{}
	}
	if k.pending[b] == nil {
		k.pending[b] = map[string][]byte{}
	}
	s := string(key)
	if _, ok := k.pending[b][s]; !ok {
		k.npending++
	}
	k.written[b][s], k.pending[b][s] = value, value
	if k.npending >= maxPending {
		return k.flush()
	}
	return nil
}

// flush sends the pending writes: one upsert per bucket.
func (k *kv) flush() error {
	for b, m := range k.pending {
		if len(m) == 0 {
			continue
		}
		keys, values := make([][]byte, 0, len(m)), make([][]byte, 0, len(m))
		for key, v := range m {
			keys, values = append(keys, []byte(key)), append(values, v)
		}
		_, err := k.tx.Exec(k.ctx, "INSERT INTO "+table(b)+" (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (k) DO UPDATE SET v = excluded.v", keys, values)
		if err != nil {
			return k.l.wrap(fmt.Errorf("put %d values into %s: %w", len(m), b, err))
		}
		delete(k.pending, b)
	}
	k.npending = 0
	return nil
}

// scanPage is the first page of a scan; the next ones double, up to maxScanPage.
const (
	scanPage    = 256
	maxScanPage = 16384
)

func (k *kv) Scan(b ledger.Bucket, from, to []byte, fn func(k, v []byte) error) error {
	if err := k.flush(); err != nil {
		return err
	}
	if from == nil {
		from = []byte{}
	}
	page := scanPage
	for {
		// A page is read to its end before fn sees it, so that fn can use the
		// transaction's connection.
		var rows pgx.Rows
		var err error
		if to == nil {
			rows, err = k.tx.Query(k.ctx, "SELECT k, v FROM "+table(b)+" WHERE k >= $1 ORDER BY k LIMIT $2", from, page)
		} else {
			rows, err = k.tx.Query(k.ctx, "SELECT k, v FROM "+table(b)+" WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3", from, to, page)
		}
		if err != nil {
			return k.l.wrap(fmt.Errorf("scan %s: %w", b, err))
		}
		var keys, values [][]byte
		for rows.Next() {
			var key, v []byte
			if err := rows.Scan(&key, &v); err != nil {
				rows.Close()
				return k.l.wrap(fmt.Errorf("scan %s: %w", b, err))
			}
			keys, values = append(keys, key), append(values, v)
		}
		if err := rows.Err(); err != nil {
			return k.l.wrap(fmt.Errorf("scan %s: %w", b, err))
		}
		for i := range keys {
			if err := fn(keys[i], values[i]); err != nil {
				return err
			}
		}
		if len(keys) < page {
			return nil
		}
		from = append(bytes.Clone(keys[len(keys)-1]), 0) // the smallest key after the last one
		page = min(2*page, maxScanPage)
	}
}

func (k *kv) First(b ledger.Bucket, from, to []byte) ([]byte, error) {
	if err := k.flush(); err != nil {
		return nil, err
	}
	if from == nil {
		from = []byte{}
	}
	var key []byte
	var err error
	if to == nil {
		err = k.tx.QueryRow(k.ctx, "SELECT k FROM "+table(b)+" WHERE k >= $1 ORDER BY k LIMIT 1", from).Scan(&key)
	} else {
		err = k.tx.QueryRow(k.ctx, "SELECT k FROM "+table(b)+" WHERE k >= $1 AND k < $2 ORDER BY k LIMIT 1", from, to).Scan(&key)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, k.l.wrap(fmt.Errorf("first %s: %w", b, err))
	}
	return key, nil
}
