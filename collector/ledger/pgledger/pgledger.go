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
	// snapshots says whether the engine exports snapshots (pg_export_snapshot, SET
	// TRANSACTION SNAPSHOT): snapshotsUnknown until the first Fork asks it.
	snapshots atomic.Int32
}

// The values of Ledger.snapshots.
const (
	snapshotsUnknown int32 = iota
	snapshotsShared
	snapshotsNone
)

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
	return l.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", false, fn)
}

// Update implements ledger.Ledger: one SERIALIZABLE transaction, run again from the
// start when the database aborts it with a serialization failure or a deadlock. fn may
// therefore run more than once and must have no effect outside the transaction that a
// second run would not overwrite.
func (l *Ledger) Update(fn func(ledger.Tx) error) error {
	if l.o.ReadOnly {
		return fmt.Errorf("collector: ledger %s: %w", l.name, ledger.ErrReadOnly)
	}
	return l.run("BEGIN ISOLATION LEVEL SERIALIZABLE", true, fn)
}

// retryable reports whether err is the database aborting a transaction to keep its
// isolation: serialization_failure or deadlock_detected.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func (l *Ledger) run(begin string, writable bool, fn func(ledger.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.o.TxTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := l.once(ctx, begin, writable, fn)
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

// once runs fn in one transaction. BEGIN travels with the transaction's first
// statement and the last writes with COMMIT, so that a transaction that reads what it
// prefetched costs two round trips to the database.
func (l *Ledger) once(ctx context.Context, begin string, writable bool, fn func(ledger.Tx) error) (err error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return l.wrap(err)
	}
	// A connection still in a transaction (an error, a cancelled context) is not
	// returned to the pool but closed by Release.
	defer conn.Release()
	k := &kv{ctx: ctx, conn: conn, begin: begin, writable: writable, l: l}
	defer func() {
		if err != nil && k.begun {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := fn(ledger.NewTx(k)); err != nil {
		return err
	}
	return k.commit()
}

func (l *Ledger) wrap(err error) error {
	return fmt.Errorf("collector: ledger %s: %w", l.name, err)
}

// table is the table of a bucket.
func table(b ledger.Bucket) string { return "amos_" + b.String() }

// kv is one transaction's ledger.KV. Writes are kept in memory and sent in one
// statement per bucket before the next scan and at commit; reads of a key written in
// the transaction are answered from memory, and so are reads of a prefetched key.
type kv struct {
	ctx      context.Context
	conn     *pgxpool.Conn
	begin    string // the BEGIN statement, sent with the first statement
	begun    bool
	writable bool
	l        *Ledger
	written  map[ledger.Bucket]map[string][]byte // every value written by the transaction
	pending  map[ledger.Bucket]map[string][]byte // written but not yet sent
	npending int
	fetched  map[ledger.Bucket]map[string][]byte // prefetched values; nil: absent
}

// maxPending bounds the writes kept before they are sent.
const maxPending = 8192

// send sends the statements of b, after BEGIN if the transaction has not begun, and
// calls read to read their results in order.
func (k *kv) send(b *pgx.Batch, read func(pgx.BatchResults) error) error {
	if !k.begun {
		b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: k.begin}}, b.QueuedQueries...)
	}
	br := k.conn.SendBatch(k.ctx, b)
	err := func() error {
		if !k.begun {
			if _, err := br.Exec(); err != nil {
				return err
			}
			k.begun = true
		}
		return read(br)
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

func (k *kv) Get(b ledger.Bucket, key []byte) ([]byte, error) {
	if v, ok := k.written[b][string(key)]; ok {
		return v, nil
	}
	if v, ok := k.fetched[b][string(key)]; ok {
		return v, nil
	}
	var v []byte
	q := &pgx.Batch{}
	q.Queue("SELECT v FROM "+table(b)+" WHERE k = $1", key)
	err := k.send(q, func(br pgx.BatchResults) error { return br.QueryRow().Scan(&v) })
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

// Prefetch implements ledger.Prefetcher: one statement per bucket, all in one round
// trip.
func (k *kv) Prefetch(keys []ledger.BucketKey) error {
	by := map[ledger.Bucket][][]byte{}
	var order []ledger.Bucket
	for _, bk := range keys {
		if _, ok := k.written[bk.Bucket][string(bk.Key)]; ok {
			continue
		}
		if _, ok := k.fetched[bk.Bucket][string(bk.Key)]; ok {
			continue
		}
		if by[bk.Bucket] == nil {
			order = append(order, bk.Bucket)
		}
		by[bk.Bucket] = append(by[bk.Bucket], bk.Key)
	}
	if len(order) == 0 {
		return nil
	}
	if k.fetched == nil {
		k.fetched = map[ledger.Bucket]map[string][]byte{}
	}
	q := &pgx.Batch{}
	for _, b := range order {
		q.Queue("SELECT k, v FROM "+table(b)+" WHERE k = ANY($1::bytea[])", by[b])
		if k.fetched[b] == nil {
			k.fetched[b] = map[string][]byte{}
		}
		for _, key := range by[b] {
			k.fetched[b][string(key)] = nil
		}
	}
	err := k.send(q, func(br pgx.BatchResults) error {
		for _, b := range order {
			rows, _ := br.Query()
			var key, v []byte
			_, err := pgx.ForEachRow(rows, []any{&key, &v}, func() error {
				if v == nil {
					v = []byte{}
				}
				k.fetched[b][string(key)] = v
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		k.fetched = nil
		return k.l.wrap(fmt.Errorf("prefetch %d keys: %w", len(keys), err))
	}
	return nil
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

// queueWrites queues the pending writes on q: one upsert per bucket.
func (k *kv) queueWrites(q *pgx.Batch) int {
	n := 0
	for b, m := range k.pending {
		if len(m) == 0 {
			continue
		}
		keys, values := make([][]byte, 0, len(m)), make([][]byte, 0, len(m))
		for key, v := range m {
			keys, values = append(keys, []byte(key)), append(values, v)
		}
		q.Queue("INSERT INTO "+table(b)+" (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (k) DO UPDATE SET v = excluded.v", keys, values)
		n++
	}
	return n
}

// execAll reads n results of statements that return no rows.
func execAll(br pgx.BatchResults, n int) error {
	for range n {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}

// flush sends the pending writes.
func (k *kv) flush() error {
	q := &pgx.Batch{}
	n := k.queueWrites(q)
	if n == 0 {
		return nil
	}
	if err := k.send(q, func(br pgx.BatchResults) error { return execAll(br, n) }); err != nil {
		return k.l.wrap(fmt.Errorf("put %d values: %w", k.npending, err))
	}
	clear(k.pending)
	k.npending = 0
	return nil
}

// commit sends the pending writes and COMMIT together; a transaction that sent nothing
// has nothing to commit.
func (k *kv) commit() error {
	q := &pgx.Batch{}
	n := k.queueWrites(q)
	if n == 0 && !k.begun {
		return nil
	}
	q.Queue("COMMIT")
	if err := k.send(q, func(br pgx.BatchResults) error { return execAll(br, n+1) }); err != nil {
		return k.l.wrap(fmt.Errorf("commit: %w", err))
	}
	k.begun = false
	return nil
}

// scanPage is the first page of a scan; the next ones double, up to maxScanPage.
const (
	scanPage    = 256
	maxScanPage = 16384
)

func (k *kv) Scan(b ledger.Bucket, from, to []byte, fn func(k, v []byte) error) error {
	if from == nil {
		from = []byte{}
	}
	page := scanPage
	for {
		// A page is read to its end before fn sees it, so that fn can use the
		// transaction's connection. The pending writes go first, with the query.
		q := &pgx.Batch{}
		n := k.queueWrites(q)
		if to == nil {
			q.Queue("SELECT k, v FROM "+table(b)+" WHERE k >= $1 ORDER BY k LIMIT $2", from, page)
		} else {
			q.Queue("SELECT k, v FROM "+table(b)+" WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3", from, to, page)
		}
		var keys, values [][]byte
		err := k.send(q, func(br pgx.BatchResults) error {
			if err := execAll(br, n); err != nil {
				return err
			}
			rows, _ := br.Query()
			var key, v []byte
			_, err := pgx.ForEachRow(rows, []any{&key, &v}, func() error {
				keys, values = append(keys, key), append(values, v)
				return nil
			})
			return err
		})
		if err != nil {
			return k.l.wrap(fmt.Errorf("scan %s: %w", b, err))
		}
		clear(k.pending)
		k.npending = 0
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

// Stream implements ledger.Streamer: one query for the whole range, its rows handed
// to fn as they arrive, without a copy (the binary bytea values are the bytes).
func (k *kv) Stream(b ledger.Bucket, from, to []byte, fn func(k, v []byte) error) error {
	if from == nil {
		from = []byte{}
	}
	q := &pgx.Batch{}
	n := k.queueWrites(q)
	if to == nil {
		q.Queue("SELECT k, v FROM "+table(b)+" WHERE k >= $1 ORDER BY k", from)
	} else {
		q.Queue("SELECT k, v FROM "+table(b)+" WHERE k >= $1 AND k < $2 ORDER BY k", from, to)
	}
	var fnErr error
	err := k.send(q, func(br pgx.BatchResults) error {
		if err := execAll(br, n); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		checked, binary := false, false
		for rows.Next() {
			if !checked {
				fd := rows.FieldDescriptions()
				checked, binary = true, len(fd) == 2 && fd[0].Format == pgx.BinaryFormatCode && fd[1].Format == pgx.BinaryFormatCode
			}
			var key, v []byte
			if binary {
				raw := rows.RawValues()
				key, v = raw[0], raw[1]
			} else if key, v, err = scanKV(rows); err != nil {
				return err
			}
			if v == nil {
				v = []byte{}
			}
			if fnErr = fn(key, v); fnErr != nil {
				return fnErr
			}
		}
		return rows.Err()
	})
	clear(k.pending)
	k.npending = 0
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return k.l.wrap(fmt.Errorf("scan %s: %w", b, err))
	}
	return nil
}

// scanKV scans a row of k and v in text format (its own variables, so that Stream's
// stay on its stack).
func scanKV(rows pgx.Rows) (key, v []byte, err error) {
	err = rows.Scan(&key, &v)
	return key, v, err
}

func (k *kv) First(b ledger.Bucket, from, to []byte) ([]byte, error) {
	if from == nil {
		from = []byte{}
	}
	q := &pgx.Batch{}
	n := k.queueWrites(q)
	if to == nil {
		q.Queue("SELECT k FROM "+table(b)+" WHERE k >= $1 ORDER BY k LIMIT 1", from)
	} else {
		q.Queue("SELECT k FROM "+table(b)+" WHERE k >= $1 AND k < $2 ORDER BY k LIMIT 1", from, to)
	}
	var key []byte
	err := k.send(q, func(br pgx.BatchResults) error {
		if err := execAll(br, n); err != nil {
			return err
		}
		return br.QueryRow().Scan(&key)
	})
	clear(k.pending)
	k.npending = 0
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, k.l.wrap(fmt.Errorf("first %s: %w", b, err))
	}
	return key, nil
}
