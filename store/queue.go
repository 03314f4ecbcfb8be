package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"amos.example/amosd/proof"
)

// queueFill packs the append-only buckets' pages: keys only ever grow.
const queueFill = 0.9

// RecordID names a record by its epoch and sequence number.
type RecordID struct {
	Epoch uint32
	Seq   uint64
}

func (id RecordID) String() string { return fmt.Sprintf("epoch %d seq %d", id.Epoch, id.Seq) }

// recordID reads the epoch and seq of an encoded record (validated when stored).
func recordID(rec []byte) RecordID {
	return RecordID{Epoch: binary.BigEndian.Uint32(rec[39:43]), Seq: binary.BigEndian.Uint64(rec[43:51])}
}

// Item is one queued record.
type Item struct {
	Key    uint64 // position in the queue: oldest first
	ID     RecordID
	Record []byte
}

// Evictions counts records dropped to keep the store under max_store_bytes.
type Evictions struct {
	Dead   uint64 // dead-letter records, dropped first
	Queued uint64 // queued records, oldest first, dropped when no dead-letter is left
}

// MintResult is what Mint did.
type MintResult struct {
	Key     uint64 // queue key of the new record
	Head    Head   // the new chain head
	Evicted Evictions
}

// follows checks that r may come right after the record prev (whose hash is prevHash)
// on a chain head: the next seq of the same epoch linked by prev_hash, or the genesis
// of a later epoch.
func follows(prev RecordID, prevHash proof.Hash, r *proof.Record) error {
	switch {
	case r.Epoch == prev.Epoch && r.Seq == prev.Seq+1 && r.PrevHash == prevHash && r.Kind() == proof.KindActivity:
		return nil
	case r.Epoch > prev.Epoch && r.Kind() == proof.KindGenesis:
		return nil
	}
	return fmt.Errorf("epoch %d seq %d does not follow epoch %d seq %d", r.Epoch, r.Seq, prev.Epoch, prev.Seq)
}

// ordered checks that r may stand after prev in the queue: later in (epoch, seq), and
// linked to it by prev_hash where it is the very next record. Records between them may
// have been acknowledged or dead-lettered.
func ordered(prev *proof.Record, prevHash proof.Hash, r *proof.Record) error {
	p := RecordID{prev.Epoch, prev.Seq}
	switch {
	case !after(RecordID{r.Epoch, r.Seq}, p):
		return fmt.Errorf("epoch %d seq %d is not after epoch %d seq %d", r.Epoch, r.Seq, p.Epoch, p.Seq)
	case r.Epoch == p.Epoch && r.Seq == p.Seq+1:
		return follows(p, prevHash, r)
	case r.Epoch > p.Epoch && r.Seq == 1 && r.Kind() != proof.KindGenesis:
		return fmt.Errorf("epoch %d seq 1 is not a genesis", r.Epoch)
	}
	return nil
}

// after reports whether a comes after b in (epoch, seq) order.
func after(a, b RecordID) bool {
	return a.Epoch > b.Epoch || a.Epoch == b.Epoch && a.Seq > b.Seq
}

// headAfter returns the chain head once r (encoded as raw) is minted on top of h.
// LastDate is the latest date minted on the device in any epoch: a date is never
// minted twice (docs/eligibility.md).
func headAfter(h Head, r *proof.Record, raw []byte) Head {
	next := Head{DeviceID: r.DeviceID, Epoch: r.Epoch, Seq: r.Seq, Hash: proof.HashRecord(raw), MintedAt: r.MintedAt, LastDate: h.LastDate}
	if a, ok := r.Activity(); ok {
		next.LastDate = max(h.LastDate, a.Date)
	}
	return next
}

// initialBudget is how many bytes of queued and dead-letter values the store starts by
// keeping: half of max_store_bytes, leaving the rest to bbolt's pages, copy-on-write
// and freelist. If the file cannot grow (max_store_bytes, or a full disk), the budget
// is lowered.
func (s *Store) initialBudget() int64 { return s.opts.MaxBytes / 2 }

// payloadBudget is the current budget of queued and dead-letter bytes.
func (s *Store) payloadBudget() int64 {
	if b := s.budget.Load(); b > 0 {
		return b
	}
	return s.initialBudget()
}

// Mint appends an encoded record to the queue, makes it the chain head and replaces
// the tally with next (nil deletes it), all in one transaction: after a crash either
// all of it happened or none. The record must decode and continue the head: the next
// seq of the head's epoch, or the genesis of a later epoch (ErrChain otherwise).
// When the store is at its bound, dead-letter and then the oldest queued records are
// evicted to make room, and counted.
func (s *Store) Mint(rec []byte, next *Tally) (MintResult, error) {
	r, err := proof.Decode(rec)
	if err != nil {
		return MintResult{}, fmt.Errorf("store: mint: %w", err)
	}
	var res MintResult
	err = s.updateWithRoom(int64(len(rec)), func(tx *bolt.Tx, ev *Evictions) error {
		var err error
		res, err = mintTx(tx, r, rec, next)
		res.Evicted = *ev
		return err
	})
	if err != nil {
		return MintResult{}, fmt.Errorf("store: mint: %w", err)
	}
	return res, nil
}

// mintTx is Mint's work inside a transaction.
func mintTx(tx *bolt.Tx, r *proof.Record, rec []byte, next *Tally) (MintResult, error) {
	var head Head
	if v := tx.Bucket(bucketHead).Get(keyValue); v != nil {
		h, err := decodeHead(v)
		if err != nil {
			return MintResult{}, err
		}
		head = h
		if err := follows(RecordID{h.Epoch, h.Seq}, h.Hash, r); err != nil {
			return MintResult{}, fmt.Errorf("%v: %w", err, ErrChain)
		}
		if a, ok := r.Activity(); ok && a.Date <= h.LastDate {
			return MintResult{}, fmt.Errorf("date %s is not after %s: %w", a.Date, h.LastDate, ErrChain)
		}
	} else if r.Kind() != proof.KindGenesis {
		return MintResult{}, fmt.Errorf("epoch %d seq %d on an empty chain: %w", r.Epoch, r.Seq, ErrChain)
	}
	q := tx.Bucket(bucketQueue)
	q.FillPercent = queueFill
	key, err := q.NextSequence()
	if err != nil {
		return MintResult{}, err
	}
	if err := q.Put(u64key(key), rec); err != nil {
		return MintResult{}, err
	}
	res := MintResult{Key: key, Head: headAfter(head, r, rec)}
	if err := tx.Bucket(bucketHead).Put(keyValue, encodeHead(res.Head)); err != nil {
		return MintResult{}, err
	}
	return res, putTally(tx, next)
}

// noRoom reports whether err is the file failing to grow: bbolt reaching
// max_store_bytes, or the file system full (ENOSPC, or EDQUOT under a quota).
func noRoom(err error) bool {
	return errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// updateWithRoom runs fn in a write transaction after making room for need more bytes
// of payload. If the file cannot grow (noRoom), or the disk could not give the store's
// reserve at the last write (reserve), the payload budget is lowered (shrink); after a
// failed transaction fn is tried again, at most 8 times. The evictions of every attempt
// are reported to fn.
func (s *Store) updateWithRoom(need int64, fn func(tx *bolt.Tx, ev *Evictions) error) error {
	if s.readOnly {
		return berrors.ErrDatabaseReadOnly
	}
	var carried Evictions
	if s.full.Swap(false) {
		if err := s.shrink(errNoReserve, need, &carried); err != nil {
			s.opts.Logf("store: %v", err) // the write below may still fit
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.write(func(tx *bolt.Tx) error {
			ev := carried
			freed, err := s.evict(tx, s.payload.Load()+need-s.payloadBudget(), &ev)
			if err != nil {
				return err
			}
			if err := fn(tx, &ev); err != nil {
				return err
			}
			tx.OnCommit(func() { s.payload.Add(need - freed) })
			if ev != carried {
				s.opts.Logf("store: evicted %d dead-letter and %d queued records to stay under %d bytes of records", ev.Dead-carried.Dead, ev.Queued-carried.Queued, s.payloadBudget())
			}
			return nil
		})
		if !noRoom(err) {
			return err
		}
		if attempt == 8 || s.payload.Load() == 0 {
			return fmt.Errorf("%w: %w", ErrFull, err)
		}
		if err := s.shrink(err, need, &carried); err != nil {
			return fmt.Errorf("%w: evicting: %w", ErrFull, err)
		}
	}
}

// errNoReserve is the cause shrink logs when the reserve was found short.
var errNoReserve = errors.New("no room left for its reserve of free pages, under max_store_bytes or on the disk")

// shrink lowers the payload budget to seven eighths of the smaller of the budget and
// the payload held, for as long as the store stays open, and evicts down to it.
func (s *Store) shrink(cause error, need int64, ev *Evictions) error {
	held := s.payload.Load()
	lower := min(s.payloadBudget(), held) / 8 * 7
	s.budget.Store(max(lower, 1))
	s.opts.Logf("store: %s cannot grow (%v); keeping at most %d bytes of records from now on", s.path, cause, lower)
	return s.evictInSteps(held+need-lower, ev)
}

// evictInSteps evicts excess payload bytes in transactions of at most half a page of
// records each: when the file cannot grow, a transaction has only the reserve and the
// pages the one before it freed, and a small one needs few (the leaves it changes,
// their branch, the root and the freelist).
func (s *Store) evictInSteps(excess int64, ev *Evictions) error {
	step := int64(os.Getpagesize() / 2)
	for excess > 0 {
		var freed int64
		err := s.write(func(tx *bolt.Tx) error {
			var err error
			freed, err = s.evict(tx, min(excess, step), ev)
			tx.OnCommit(func() { s.payload.Add(-freed) })
			return err
		})
		if err != nil {
			return err
		}
		excess -= freed
	}
	return nil
}

// evict deletes dead-letter records, then the oldest queued records, until at least
// excess payload bytes are freed, and counts them. It fails with ErrFull if that
// is not possible. It returns the bytes freed.
func (s *Store) evict(tx *bolt.Tx, excess int64, ev *Evictions) (int64, error) {
	var freed int64
	for _, b := range []struct {
		name    []byte
		counter []byte
		n       *uint64
	}{{bucketDead, keyEvictedDead, &ev.Dead}, {bucketQueue, keyEvictedQueued, &ev.Queued}} {
		if freed >= excess {
			break
		}
		bucket := tx.Bucket(b.name)
		c := bucket.Cursor()
		var n uint64
		for k, v := c.First(); k != nil && freed < excess; k, v = c.First() {
			freed += int64(len(v))
			if err := c.Delete(); err != nil {
				return 0, err
			}
			n++
		}
		if n > 0 {
			*b.n += n
			if err := addCounter(tx, b.counter, n); err != nil {
				return 0, err
			}
		}
	}
	if freed < excess {
		return 0, fmt.Errorf("%w: %d bytes over the bound with nothing left to evict", ErrFull, excess-freed)
	}
	return freed, nil
}

func addCounter(tx *bolt.Tx, key []byte, n uint64) error {
	meta := tx.Bucket(bucketMeta)
	var v uint64
	if b := meta.Get(key); b != nil {
		v, _ = keyU64(b)
	}
	return meta.Put(key, u64key(v+n))
}

// Peek returns the oldest queued records, at most maxRecords of them and at most
// maxBytes as a wire batch (each record counts 2 bytes of framing). At least one
// record is returned when the queue is not empty, however large.
func (s *Store) Peek(maxRecords, maxBytes int) ([]Item, error) {
	var items []Item
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQueue).Cursor()
		size := 0
		for k, v := c.First(); k != nil && len(items) < maxRecords; k, v = c.Next() {
			if len(items) > 0 && size+2+len(v) > maxBytes {
				break
			}
			key, err := keyU64(k)
			if err != nil {
				return err
			}
			size += 2 + len(v)
			items = append(items, Item{Key: key, ID: recordID(v), Record: append([]byte(nil), v...)})
		}
		return nil
	})
	return items, err
}

// Refusal is a record the server refused for good, and its reason (docs/protocol.md).
type Refusal struct {
	ID     RecordID
	Reason string
}

// Settlement is the outcome of one upload, applied in one transaction: records to
// delete from the queue (accepted or duplicate), records to move to dead-letter, and
// the sync state to store with them.
type Settlement struct {
	Acked []RecordID
	Dead  []Refusal
	Sync  *SyncState
}

// SettleResult counts what Settle did; records it did not find (acknowledged before)
// are not counted.
type SettleResult struct {
	Acked, Dead int
}

// Ack deletes acknowledged records from the queue in one transaction.
func (s *Store) Ack(ids ...RecordID) (int, error) {
	res, err := s.Settle(Settlement{Acked: ids})
	return res.Acked, err
}

// Settle applies the outcome of one upload in one transaction, making room as Mint
// does if the file cannot grow.
func (s *Store) Settle(st Settlement) (SettleResult, error) {
	want := make(map[RecordID]*string, len(st.Acked)+len(st.Dead))
	for _, id := range st.Acked {
		want[id] = nil
	}
	for i := range st.Dead {
		want[st.Dead[i].ID] = &st.Dead[i].Reason
	}
	var res SettleResult
	err := s.updateWithRoom(0, func(tx *bolt.Tx, _ *Evictions) error {
		res = SettleResult{}
		q := tx.Bucket(bucketQueue)
		dead := tx.Bucket(bucketDead)
		dead.FillPercent = queueFill
		type hit struct {
			key    []byte
			val    []byte
			reason *string
		}
		var hits []hit
		c := q.Cursor()
		for k, v := c.First(); k != nil && len(hits) < len(want); k, v = c.Next() {
			if reason, ok := want[recordID(v)]; ok {
				hits = append(hits, hit{append([]byte(nil), k...), append([]byte(nil), v...), reason})
			}
		}
		var delta int64
		for _, h := range hits {
			if err := q.Delete(h.key); err != nil {
				return err
			}
			delta -= int64(len(h.val))
			if h.reason == nil {
				res.Acked++
				continue
			}
			key, err := dead.NextSequence()
			if err != nil {
				return err
			}
			v := encodeDead(s.opts.Now().Unix(), *h.reason, h.val)
			if err := dead.Put(u64key(key), v); err != nil {
				return err
			}
			delta += int64(len(v))
			res.Dead++
		}
		if st.Sync != nil {
			if err := tx.Bucket(bucketSync).Put(keyValue, encodeSync(*st.Sync)); err != nil {
				return err
			}
		}
		tx.OnCommit(func() { s.payload.Add(delta) })
		return nil
	})
	if err != nil {
		return SettleResult{}, fmt.Errorf("store: settle: %w", err)
	}
	return res, nil
}

// DeadLetters returns up to limit dead-letter records, oldest first.
func (s *Store) DeadLetters(limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDead).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			key, err := keyU64(k)
			if err != nil {
				return err
			}
			d, err := decodeDead(key, v)
			if err != nil {
				return err
			}
			d.Record = append([]byte(nil), d.Record...)
			out = append(out, d)
		}
		return nil
	})
	return out, err
}
