package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"amos.example/amosd/internal/boltguard"
)

// BoltFileName is the ledger's file inside data_dir.
const BoltFileName = "collector.db"

// DefaultLockTimeout bounds the wait for another process's lock on the ledger.
const DefaultLockTimeout = time.Second

// BoltOptions configure OpenBolt.
type BoltOptions struct {
	// LockTimeout bounds the wait for the file lock; DefaultLockTimeout if 0.
	LockTimeout time.Duration
	// ReadOnly opens an existing ledger for reading only (offline claims); it takes a
	// shared lock, so it fails with ErrInUse while a server holds the file.
	ReadOnly bool
}

// Bolt is the Ledger in one bbolt file, data_dir/collector.db. Every Update is one
// fsync'd bbolt transaction (bbolt's NoSync is never set).
type Bolt struct {
	db   *bolt.DB
	path string
}

var _ Ledger = (*Bolt)(nil)

// OpenBolt opens or creates the ledger in dir and checks it: the schema version, every
// bucket, and bbolt's Tx.Check of every page. A ledger that fails is never repaired or
// moved aside: the error wraps ErrCorrupt and an operator decides.
func OpenBolt(dir string, o BoltOptions) (*Bolt, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	path := filepath.Join(dir, BoltFileName)
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("collector: ledger: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("collector: data_dir: %w", err)
	}
	var db *bolt.DB
	err := boltguard.Run(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      o.LockTimeout,
			ReadOnly:     o.ReadOnly,
			FreelistType: bolt.FreelistMapType,
		})
		return err
	})
	if err != nil {
		return nil, classifyOpenError(path, err)
	}
	l := &Bolt{db: db, path: path}
	if err := boltguard.Run(func() error { return l.check(o.ReadOnly) }); err != nil {
		db.Close()
		var pe *boltguard.PanicError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%v: %w", err, ErrCorrupt)
		}
		return nil, fmt.Errorf("collector: ledger %s: %w", path, err)
	}
	return l, nil
}

func classifyOpenError(path string, err error) error {
	var pe *boltguard.PanicError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("collector: ledger %s: %w (its lock was not released within the timeout)", path, ErrInUse)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrChecksum), errors.As(err, &pe),
		strings.Contains(err.Error(), "file size too small"):
		return fmt.Errorf("collector: ledger %s: %v: %w", path, err, ErrCorrupt)
	}
	return fmt.Errorf("collector: ledger %s: %w", path, err)
}

// check creates the buckets of a new ledger, then checks the schema, the buckets and
// every page.
func (l *Bolt) check(readOnly bool) error {
	if !readOnly {
		err := l.db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket([]byte(bucketMeta.String()))
			var old uint32 // the schema upgraded from, 0 for a new ledger
			if meta == nil {
				if k, _ := tx.Cursor().First(); k != nil {
					return fmt.Errorf("buckets without a meta bucket: not a collector ledger: %w", ErrCorrupt)
				}
				var err error
				if meta, err = tx.CreateBucket([]byte(bucketMeta.String())); err != nil {
					return err
				}
			} else if v := meta.Get(keySchema); len(v) != 4 || (binary.BigEndian.Uint32(v) != 1 && binary.BigEndian.Uint32(v) != 2) {
				return nil // the current schema is checked below; another is refused there
			} else {
				old = binary.BigEndian.Uint32(v)
			}
			// A new ledger, or the upgrade of a schema 1 or 2 ledger: the buckets it
			// lacks, and the month aggregates built from its records.
			for b := bucketMeta + 1; b < numBuckets; b++ {
				if _, err := tx.CreateBucketIfNotExists([]byte(b.String())); err != nil {
					return err
				}
			}
			if old != 0 {
				if _, err := buildDays(ledgerTx{boltKV{tx}}); err != nil {
					return fmt.Errorf("upgrading schema %d: %w", old, err)
				}
			}
			return meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, schemaVersion))
		})
		if err != nil {
			return err
		}
	}
	return l.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketMeta.String()))
		if v == nil {
			return fmt.Errorf("bucket %s missing: %w", bucketMeta, ErrCorrupt)
		}
		schema := v.Get(keySchema)
		if len(schema) == 4 && readOnly && (binary.BigEndian.Uint32(schema) == 1 || binary.BigEndian.Uint32(schema) == 2) {
			return fmt.Errorf("schema version %d, this collector needs %d: open it once for writing (serve, or claims without --read-only) to upgrade it: %w",
				binary.BigEndian.Uint32(schema), schemaVersion, ErrOldSchema)
		}
		if len(schema) != 4 || binary.BigEndian.Uint32(schema) != schemaVersion {
			return fmt.Errorf("schema version %x, this collector knows %d: %w", schema, schemaVersion, ErrCorrupt)
		}
		for b := range numBuckets {
			if tx.Bucket([]byte(b.String())) == nil {
				return fmt.Errorf("bucket %s missing: %w", b, ErrCorrupt)
			}
		}
		var first error
		for err := range tx.Check() { // drained to the end so that the checker exits
			if first == nil {
				first = fmt.Errorf("bbolt check: %v: %w", err, ErrCorrupt)
			}
		}
		return first
	})
}

// Path returns the ledger's file.
func (l *Bolt) Path() string { return l.path }

// View implements Ledger.
func (l *Bolt) View(fn func(Tx) error) error {
	return l.db.View(func(tx *bolt.Tx) error { return fn(NewTx(boltKV{tx})) })
}

// Update implements Ledger: one bbolt read-write transaction, fsync'd at commit.
func (l *Bolt) Update(fn func(Tx) error) error {
	if l.db.IsReadOnly() {
		return fmt.Errorf("collector: ledger %s: %w", l.path, ErrReadOnly)
	}
	return l.db.Update(func(tx *bolt.Tx) error { return fn(NewTx(boltKV{tx})) })
}

// Close implements Ledger.
func (l *Bolt) Close() error { return l.db.Close() }

type boltKV struct{ tx *bolt.Tx }

func (k boltKV) bucket(b Bucket) *bolt.Bucket { return k.tx.Bucket([]byte(b.String())) }

func (k boltKV) Get(b Bucket, key []byte) ([]byte, error) {
	if bk := k.bucket(b); bk != nil {
		return bk.Get(key), nil
	}
	return nil, nil
}

func (k boltKV) Put(b Bucket, key, value []byte) error {
	if !k.tx.Writable() {
		return fmt.Errorf("collector: put %s: %w", b, ErrReadOnly)
	}
	return k.bucket(b).Put(key, value)
}

func (k boltKV) Scan(b Bucket, from, to []byte, fn func(k, v []byte) error) error {
	bk := k.bucket(b)
	if bk == nil {
		return nil
	}
	c := bk.Cursor()
	var key, v []byte
	if from == nil {
		key, v = c.First()
	} else {
		key, v = c.Seek(from)
	}
	for ; key != nil && (to == nil || bytes.Compare(key, to) < 0); key, v = c.Next() {
		if err := fn(key, v); err != nil {
			return err
		}
	}
	return nil
}

func (k boltKV) First(b Bucket, from, to []byte) ([]byte, error) {
	bk := k.bucket(b)
	if bk == nil {
		return nil, nil
	}
	key, _ := bk.Cursor().Seek(from)
	if key == nil || (to != nil && bytes.Compare(key, to) >= 0) {
		return nil, nil
	}
	return key, nil
}
