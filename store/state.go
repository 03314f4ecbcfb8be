package store

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// update runs fn in a write transaction of a store opened for writing, making room
// as Mint does if the file cannot grow: the tally is saved on a full disk too.
func (s *Store) update(what string, fn func(tx *bolt.Tx) error) error {
	if err := s.updateWithRoom(0, func(tx *bolt.Tx, _ *Evictions) error { return fn(tx) }); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

// get returns a copy of the single value of a state bucket, nil if unset.
func (s *Store) get(bucket []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get(keyValue); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

// Head returns the chain head; ok is false before the first record.
func (s *Store) Head() (h Head, ok bool, err error) {
	v, err := s.get(bucketHead)
	if err != nil || v == nil {
		return Head{}, false, err
	}
	h, err = decodeHead(v)
	return h, err == nil, err
}

func putTally(tx *bolt.Tx, t *Tally) error {
	if t == nil {
		return tx.Bucket(bucketTally).Delete(keyValue)
	}
	return tx.Bucket(bucketTally).Put(keyValue, encodeTally(*t))
}

// SaveTally stores the running tally of the day.
func (s *Store) SaveTally(t Tally) error {
	return s.update("save tally", func(tx *bolt.Tx) error { return putTally(tx, &t) })
}

// ClearTally deletes the stored tally.
func (s *Store) ClearTally() error {
	return s.update("clear tally", func(tx *bolt.Tx) error { return putTally(tx, nil) })
}

// Tally returns the stored tally; ok is false if there is none.
func (s *Store) Tally() (t Tally, ok bool, err error) {
	v, err := s.get(bucketTally)
	if err != nil || v == nil {
		return Tally{}, false, err
	}
	t, err = decodeTally(v)
	return t, err == nil, err
}

// SetConsent stores the owner's consent. Revoking it discards, in the same
// transaction, the day's tally and every queued record (docs/eligibility.md); it returns how many
// records were discarded. Dead-letter records are kept: they are never sent.
func (s *Store) SetConsent(granted bool) (discarded int, err error) {
	var freed int64
	err = s.update("set consent", func(tx *bolt.Tx) error {
		discarded, freed = 0, 0
		v := []byte{0}
		if granted {
			v[0] = 1
		}
		if err := tx.Bucket(bucketConsent).Put(keyValue, v); err != nil {
			return err
		}
		if granted {
			return nil
		}
		if err := putTally(tx, nil); err != nil {
			return err
		}
		q := tx.Bucket(bucketQueue)
		seq := q.Sequence()
		if err := q.ForEach(func(_, v []byte) error {
			discarded++
			freed += int64(len(v))
			return nil
		}); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketQueue); err != nil {
			return err
		}
		q, err := tx.CreateBucket(bucketQueue)
		if err != nil {
			return err
		}
		tx.OnCommit(func() { s.payload.Add(-freed) })
		return q.SetSequence(seq) // keys keep growing: a key is never reused
	})
	return discarded, err
}

// Consent returns the stored consent; set is false if it was never stored, and the
// caller then applies consent_default.
func (s *Store) Consent() (granted, set bool, err error) {
	v, err := s.get(bucketConsent)
	if err != nil || v == nil {
		return false, false, err
	}
	return v[0] == 1, true, nil
}

// SaveSync stores the sync state.
func (s *Store) SaveSync(st SyncState) error {
	return s.update("save sync state", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSync).Put(keyValue, encodeSync(st))
	})
}

// Sync returns the stored sync state, zero if none.
func (s *Store) Sync() (SyncState, error) {
	v, err := s.get(bucketSync)
	if err != nil || v == nil {
		return SyncState{}, err
	}
	return decodeSync(v)
}

// LastRecovery returns the last recovery from a corrupt store recorded in this store,
// if any: it outlives the Open that did it, for status.
func (s *Store) LastRecovery() (r Recovery, ok bool, err error) {
	var v []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		v = append([]byte(nil), tx.Bucket(bucketMeta).Get(keyRecovery)...)
		return nil
	})
	if err != nil || len(v) == 0 {
		return Recovery{}, false, err
	}
	r, err = decodeRecovery(v)
	return r, err == nil, err
}

// SetRecoveryOutcome records what the daemon made of the last recovery.
func (s *Store) SetRecoveryOutcome(o Outcome) error {
	return s.update("record the recovery's outcome", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyOutcome, encodeOutcome(o))
	})
}

// RecoveryOutcome returns what SetRecoveryOutcome recorded, if anything.
func (s *Store) RecoveryOutcome() (o Outcome, ok bool, err error) {
	var v []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		v = append([]byte(nil), tx.Bucket(bucketMeta).Get(keyOutcome)...)
		return nil
	})
	if err != nil || len(v) == 0 {
		return Outcome{}, false, err
	}
	o, err = decodeOutcome(v)
	return o, err == nil, err
}

// Counts are the store's figures for status and inspection.
type Counts struct {
	Queued        int
	QueuedBytes   int64
	DeadLetters   int
	DeadBytes     int64
	EvictedQueued uint64
	EvictedDead   uint64
	FileBytes     int64 // size of the file on disk
	MaxBytes      int64 // max_store_bytes
}

// Counts returns the store's figures.
func (s *Store) Counts() (Counts, error) {
	c := Counts{MaxBytes: s.opts.MaxBytes}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range []struct {
			name  []byte
			n     *int
			bytes *int64
		}{{bucketQueue, &c.Queued, &c.QueuedBytes}, {bucketDead, &c.DeadLetters, &c.DeadBytes}} {
			if err := tx.Bucket(b.name).ForEach(func(_, v []byte) error {
				*b.n++
				*b.bytes += int64(len(v))
				return nil
			}); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyEvictedQueued); v != nil {
			c.EvictedQueued, _ = keyU64(v)
		}
		if v := meta.Get(keyEvictedDead); v != nil {
			c.EvictedDead, _ = keyU64(v)
		}
		return nil
	})
	if err != nil {
		return Counts{}, err
	}
	if fi, err := os.Stat(s.path); err == nil {
		c.FileBytes = fi.Size()
	}
	return c, nil
}
