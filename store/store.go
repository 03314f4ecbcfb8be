package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"amos.example/amosd/proof"

	"amos.example/amosd/internal/boltguard"
)

// FileName is the store's file inside data_dir (docs/store-and-epochs.md).
const FileName = "amosd.db"

// corruptPrefix names a store moved aside: amosd.db.corrupt-<unix time>.
const corruptPrefix = FileName + ".corrupt-"

// KeepCorrupt is how many moved-aside corrupt stores are kept (docs/store-and-epochs.md).
const KeepCorrupt = 2

// Defaults for Options.
const (
	DefaultMaxBytes    = 8 << 20
	DefaultLockTimeout = time.Second
	minMaxBytes        = 64 << 10
	fallocKeepSize     = 0x01 // FALLOC_FL_KEEP_SIZE
	reservePages       = 4
)

// FormatVersion is the store format this build writes, recorded in meta/schema when
// the file is created, and the newest it reads: a store of a higher format is refused
// with ErrNewerFormat (docs/store-and-epochs.md). Every change of the layout of a
// bucket or a value raises it; meta/schema itself never moves.
const FormatVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketHead    = []byte("head")
	bucketTally   = []byte("tally")
	bucketQueue   = []byte("queue")
	bucketDead    = []byte("dead")
	bucketConsent = []byte("consent")
	bucketSync    = []byte("sync")
	allBuckets    = [][]byte{bucketMeta, bucketHead, bucketTally, bucketQueue, bucketDead, bucketConsent, bucketSync}

	keyValue         = []byte("v")
	keySchema        = []byte("schema")
	keyEvictedQueued = []byte("evicted_queued")
	keyEvictedDead   = []byte("evicted_dead")
	keyRecovery      = []byte("last_recovery")
	keyOutcome       = []byte("recovery_outcome") // optional in format 1: older builds ignore it
)

// Options configure Open.
type Options struct {
	// Dir is data_dir; the store is Dir/amosd.db. It is created (0700) if missing.
	Dir string
	// MaxBytes bounds the file (max_store_bytes); DefaultMaxBytes if 0.
	MaxBytes int64
	// LockTimeout bounds the wait for another process's lock; DefaultLockTimeout if 0.
	LockTimeout time.Duration
	// Now names moved-aside files and dates dead-letters; time.Now if nil.
	Now func() time.Time
	// Logf receives one line per notable event (recovery, eviction); nil for none.
	Logf func(format string, args ...any)
}

func (o *Options) normalize() error {
	if o.Dir == "" {
		return errors.New("store: no data_dir")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxBytes < minMaxBytes {
		return fmt.Errorf("store: max_store_bytes %d is below the minimum %d", o.MaxBytes, minMaxBytes)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Store is the open store. Its methods are safe for concurrent use; every write is one
// fsync'd bbolt transaction.
type Store struct {
	db        *bolt.DB
	path      string
	opts      Options
	readOnly  bool
	wmu       sync.Mutex   // serializes writers through commit handlers (write)
	payload   atomic.Int64 // bytes of queued and dead-letter values
	budget    atomic.Int64 // most payload bytes kept; 0 until lowered (payloadBudget)
	recovered *Recovery
	created   bool // this Open wrote the file's first bytes
	// The reserve (reserve): the most bytes of pages bbolt may have under MaxBytes;
	// bbolt's file, nil when read-only or when the file system has no fallocate; the
	// bytes from offset 0 allocated on disk; the end of the pages in use at open or when
	// the reserve was last found short; and that news for the next write
	// (updateWithRoom). All but the first and last are guarded by wmu.
	limit      int64
	file       *os.File
	reservedTo int64
	fullAt     int64
	full       atomic.Bool
}

// Open opens or creates the store. A file that fails to open or fails its integrity
// check is moved aside as amosd.db.corrupt-<unix time> (at most KeepCorrupt kept), the
// longest intact prefix of its queue is carried over, and a fresh store is returned
// with Recovered() describing what happened: the caller must then start a new epoch.
// A store held by another process fails with ErrInUse within LockTimeout.
func Open(o Options) (*Store, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data_dir %s: %w", o.Dir, err)
	}
	path := filepath.Join(o.Dir, FileName)
	s, err := open(path, o, false)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	cause := err
	at := o.Now()
	moved, err := moveAside(path, at)
	if err != nil {
		return nil, fmt.Errorf("store: %s is corrupt (%v) and cannot be moved aside: %w", path, cause, err)
	}
	o.Logf("store: %s is corrupt (%v); moved to %s, starting a new store", path, cause, moved)
	old := salvage(moved, o.LockTimeout)
	if s, err = open(path, o, false); err != nil {
		// open removed the half-made file: the next start would have taken it for
		// another corrupt store and rotated the real one out.
		return nil, fmt.Errorf("store: new store after moving the corrupt one aside: %w", err)
	}
	s.created = false // recovered, not created: see Recovered
	rec := Recovery{At: at.Unix(), CorruptPath: moved, Cause: cause.Error()}
	if err := s.adopt(old, &rec); err != nil {
		s.Close()
		return nil, err
	}
	if rec.Salvaged > 0 {
		o.Logf("store: carried %d queued records over from %s", rec.Salvaged, moved)
	}
	pruneCorrupt(o.Dir, moved, o.Logf)
	s.recovered = &rec
	return s, nil
}

// OpenReadOnly opens the store in dir for inspection without waiting: a store held by
// a running daemon fails at once with ErrInUse, a corrupt one with ErrCorrupt, one of
// a newer format with ErrNewerFormat, a missing or never written one with an error
// wrapping fs.ErrNotExist; nothing is ever created, moved or written.
func OpenReadOnly(dir string) (*Store, error) {
	o := Options{Dir: dir, LockTimeout: 50 * time.Millisecond}
	if err := o.normalize(); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return open(path, o, true)
}

// Path returns the store's file.
func (s *Store) Path() string { return s.path }

// Recovered returns what Open did about a corrupt store, or nil if it opened cleanly.
func (s *Store) Recovered() *Recovery { return s.recovered }

// Created reports whether this Open wrote the store's first bytes: a first start (the
// file did not exist, or an earlier start left it never written, e.g. on a full disk),
// or a data partition that was wiped. A recovered store is not Created: see Recovered.
func (s *Store) Created() bool { return s.created }

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// open opens path and checks it. Corruption of any kind, panics and memory faults of
// bbolt on a damaged file included, comes back as an error wrapping ErrCorrupt; a
// newer format as ErrNewerFormat; anything else (the lock, permissions, I/O errors,
// a full disk) as itself. A file that holds no store yet is written afresh, and
// removed again if that fails, so that a failed first start leaves nothing behind.
func open(path string, o Options, readOnly bool) (s *Store, err error) {
	var file *os.File // captured so that it can be closed if bbolt panics
	fresh := false    // the file held no store: this open writes its first bytes
	bo := &bolt.Options{
		Timeout:         o.LockTimeout,
		ReadOnly:        readOnly,
		MaxSize:         int(o.MaxBytes),
		PreLoadFreelist: true, // read the freelist in Open, under guard, not in Check's goroutine
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			if err != nil {
				return nil, err
			}
			file = f
			// Lock before looking at the content: an empty file may be another
			// process's store in the making, and then it holds the lock.
			if err := lockFile(f, !readOnly, o.LockTimeout); err != nil {
				f.Close()
				return nil, err
			}
			if fresh, err = neverWritten(f); err == nil && fresh && readOnly {
				err = errNeverWritten
			} else if err == nil && fresh {
				err = f.Truncate(0) // bbolt writes its first pages into an empty file only
			}
			if err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		},
	}
	var db *bolt.DB
	err = boltguard.Run(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, bo)
		return err
	})
	if err == nil {
		s = &Store{db: db, path: path, opts: o, readOnly: readOnly, created: fresh, limit: pagesLimit(o.MaxBytes)}
		if !readOnly {
			s.file = file
		}
		if err = boltguard.Run(s.check); err != nil {
			db.Close()
		}
	} else if file != nil && db == nil {
		file.Close()
	}
	if err != nil && fresh && !readOnly {
		os.Remove(path) // nothing of a store was in it: the next start begins afresh
	}
	var pe *boltguard.PanicError
	switch {
	case err == nil:
		return s, nil
	case s != nil && errors.Is(err, ErrNewerFormat):
		return nil, fmt.Errorf("store: %s: %w", path, err)
	case s != nil && (errors.As(err, &pe) || errors.Is(err, errValue)):
		return nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	return nil, classifyOpenError(path, err)
}

// neverWritten reports whether the locked file f holds no store: it is empty (a start
// that failed before bbolt's first write, e.g. on a full disk), or its bytes are all
// zero and no more than the four pages bbolt writes first (a power cut before they
// reached the disk). A store that committed anything is larger and not all zero.
func neverWritten(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > 4*int64(os.Getpagesize()) {
		return false, err
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return false, err
	}
	for _, c := range b {
		if c != 0 {
			return false, nil
		}
	}
	return true, nil
}

// lockFile takes bbolt's flock on f, waiting at most timeout; bbolt's own flock on the
// same open file then succeeds at once.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err != syscall.EWOULDBLOCK {
			return err
		}
		if time.Now().After(deadline) {
			return berrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond) // what bbolt's own flock does
	}
}

// readProbe reads the start of the file with plain reads: an I/O error there is a
// failing device, not a corrupt store, and must not get the file moved aside.
func readProbe(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(make([]byte, 64<<10), 0)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func classifyOpenError(path string, err error) error {
	var pe *boltguard.PanicError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("store: %s: %w (lock not released)", path, ErrInUse)
	case errors.Is(err, errNeverWritten):
		return fmt.Errorf("store: %s holds no store yet (empty: never written): %w", path, fs.ErrNotExist)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch),
		errors.Is(err, berrors.ErrChecksum), strings.Contains(err.Error(), "file size too small"):
		if ioErr := readProbe(path); ioErr != nil {
			return fmt.Errorf("store: reading %s: %w", path, ioErr)
		}
		return fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	case errors.As(err, &pe), errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return fmt.Errorf("store: %w", err) // it names the path already
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}

// check creates the buckets of a new store, then verifies the whole file: bbolt's own
// page check, every value decodes, every queued record decodes and links to the one
// before it, and the last queued record is the chain head.
func (s *Store) check() error {
	made := true // nothing is written to a store already made, whatever its format
	if err := s.db.View(func(tx *bolt.Tx) error { made = tx.Bucket(bucketMeta) != nil; return nil }); err != nil {
		return err
	}
	if !s.readOnly && !made {
		err := s.write(func(tx *bolt.Tx) error {
			if c := tx.Cursor(); func() bool { k, _ := c.First(); return k != nil }() {
				return fmt.Errorf("buckets but no meta bucket: %w", errValue)
			}
			for _, name := range allBuckets {
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(keySchema, u64key(FormatVersion))
		})
		if err != nil {
			return err
		}
	}
	return s.db.View(func(tx *bolt.Tx) error {
		payload, err := verify(tx)
		if err != nil {
			return err
		}
		var first error
		for err := range tx.Check() { // drained to the end: the checker goroutine exits
			if first == nil {
				first = fmt.Errorf("bbolt check: %v: %w", err, errValue)
			}
		}
		if first != nil {
			return first
		}
		s.payload.Store(payload)
		s.fullAt = tx.Size()
		return nil
	})
}

// verify reads every value of the store in this goroutine (so that guard catches a
// fault) and returns the payload bytes of the queue and dead-letter buckets.
func verify(tx *bolt.Tx) (int64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, fmt.Errorf("bucket meta missing: %w", errValue)
	}
	// The format first: a newer one may lay out everything else differently.
	if n, err := formatVersion(meta.Get(keySchema)); err != nil {
		return 0, err
	} else if n > FormatVersion {
		return 0, fmt.Errorf("format version %d (meta/schema), this amosd reads formats 1 to %d: %w", n, FormatVersion, ErrNewerFormat)
	}
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return 0, fmt.Errorf("bucket %s missing: %w", name, errValue)
		}
	}
	for _, k := range [][]byte{keyEvictedQueued, keyEvictedDead} {
		if v := meta.Get(k); v != nil {
			if _, err := keyU64(v); err != nil {
				return 0, fmt.Errorf("counter %s: %w", k, err)
			}
		}
	}
	if v := meta.Get(keyRecovery); v != nil {
		if _, err := decodeRecovery(v); err != nil {
			return 0, err
		}
	}
	if v := meta.Get(keyOutcome); v != nil {
		if _, err := decodeOutcome(v); err != nil {
			return 0, err
		}
	}
	var head *Head
	if v := tx.Bucket(bucketHead).Get(keyValue); v != nil {
		h, err := decodeHead(v)
		if err != nil {
			return 0, err
		}
		head = &h
	}
	if v := tx.Bucket(bucketTally).Get(keyValue); v != nil {
		if _, err := decodeTally(v); err != nil {
			return 0, err
		}
	}
	if v := tx.Bucket(bucketSync).Get(keyValue); v != nil {
		if _, err := decodeSync(v); err != nil {
			return 0, err
		}
	}
	if v := tx.Bucket(bucketConsent).Get(keyValue); v != nil && (len(v) != 1 || v[0] > 1) {
		return 0, fmt.Errorf("consent value %x: %w", v, errValue)
	}
	var payload int64
	var prev *proof.Record
	var prevHash proof.Hash
	err := tx.Bucket(bucketQueue).ForEach(func(k, v []byte) error {
		key, err := keyU64(k)
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		r, err := proof.Decode(v)
		if err != nil {
			return fmt.Errorf("queue key %d: %v: %w", key, err, errValue)
		}
		if prev != nil {
			if err := ordered(prev, prevHash, r); err != nil {
				return fmt.Errorf("queue key %d: %v: %w", key, err, errValue)
			}
		}
		if head == nil || after(RecordID{r.Epoch, r.Seq}, RecordID{head.Epoch, head.Seq}) ||
			r.Epoch == head.Epoch && r.Seq == head.Seq && proof.HashRecord(v) != head.Hash {
			return fmt.Errorf("queue key %d (epoch %d seq %d) is not the chain head nor before it: %w", key, r.Epoch, r.Seq, errValue)
		}
		prev, prevHash = r, proof.HashRecord(v)
		payload += int64(len(v))
		return nil
	})
	if err != nil {
		return 0, err
	}
	err = tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
		key, err := keyU64(k)
		if err != nil {
			return fmt.Errorf("dead-letter: %w", err)
		}
		if _, err := decodeDead(key, v); err != nil {
			return err
		}
		payload += int64(len(v))
		return nil
	})
	return payload, err
}

// moveAside renames the file (or whatever stands at path) to amosd.db.corrupt-<unix>,
// choosing the next free second if that name is taken.
func moveAside(path string, at time.Time) (string, error) {
	for t := at.Unix(); t < at.Unix()+1000; t++ {
		dst := filepath.Join(filepath.Dir(path), corruptPrefix+strconv.FormatInt(t, 10))
		_, err := os.Lstat(dst)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return dst, os.Rename(path, dst)
		case err != nil:
			return "", err
		}
	}
	return "", fmt.Errorf("no free name %s<unix time> near %d", corruptPrefix, at.Unix())
}

// pruneCorrupt keeps the KeepCorrupt newest moved-aside stores, the one just moved
// (keep) always among them, whatever the clock says.
func pruneCorrupt(dir, keep string, logf func(string, ...any)) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type old struct {
		name string
		t    int64
	}
	var olds []old
	for _, e := range entries {
		if e.Name() == filepath.Base(keep) {
			continue
		}
		if t, err := strconv.ParseInt(strings.TrimPrefix(e.Name(), corruptPrefix), 10, 64); err == nil && strings.HasPrefix(e.Name(), corruptPrefix) {
			olds = append(olds, old{e.Name(), t})
		}
	}
	sort.Slice(olds, func(i, j int) bool { return olds[i].t > olds[j].t })
	for _, o := range olds[min(len(olds), KeepCorrupt-1):] {
		if err := os.RemoveAll(filepath.Join(dir, o.name)); err != nil {
			logf("store: cannot remove old corrupt store %s: %v", o.name, err)
		}
	}
}

// salvaged is what could be read of a corrupt store.
type salvaged struct {
	records [][]byte // queued records, oldest first
	head    *Head    // the old chain head, if it could be read
	consent []byte   // the consent value; nil if it was never set
	// consentLost means the consent could not be read: the new store leaves it unset
	// and the daemon decides (docs/eligibility.md, consent).
	consentLost bool
}

// salvage reads what it can of a corrupt store: the queued records that decode, in
// order, each confirmed by the next one's prev_hash where they are adjacent and, for
// the last, by the old chain head; the head itself; and the consent. It never fails.
func salvage(path string, timeout time.Duration) salvaged {
	out := salvaged{consentLost: true}
	_ = boltguard.Run(func() error {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout, PreLoadFreelist: true})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucketConsent); b != nil {
				if v := b.Get(keyValue); v == nil || len(v) == 1 && v[0] <= 1 {
					out.consent, out.consentLost = append([]byte(nil), v...), false // nil: never set
				}
			}
			if b := tx.Bucket(bucketHead); b != nil {
				if h, err := decodeHead(b.Get(keyValue)); err == nil {
					out.head = &h
				}
			}
			q := tx.Bucket(bucketQueue)
			if q == nil {
				return nil
			}
			var prev *proof.Record
			var prevHash proof.Hash
			c := q.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				r, err := proof.Decode(v)
				if err != nil || len(k) != 8 || prev != nil && ordered(prev, prevHash, r) != nil {
					break
				}
				out.records = append(out.records, append([]byte(nil), v...))
				prev, prevHash = r, proof.HashRecord(v)
			}
			// The last record read is confirmed only by the old head.
			if n := len(out.records); n > 0 {
				h := out.head
				if h == nil || h.Epoch != prev.Epoch || h.Seq != prev.Seq || h.Hash != prevHash {
					out.records = out.records[:n-1]
				}
			}
			return nil
		})
	})
	return out
}

// adopt writes what was salvaged into the fresh store in one transaction: the queued
// records (the oldest evicted, and counted, if over the budget), the old head, or the
// last record's, with the highest date minted, and the consent. It fills in rec.Salvaged
// and remembers rec.
func (s *Store) adopt(old salvaged, rec *Recovery) error {
	records := old.records
	var drop int
	for total := payloadOf(records); total > s.payloadBudget() && drop < len(records); drop++ {
		total -= int64(len(records[drop]))
	}
	records = records[drop:]
	rec.Salvaged = uint64(len(records))
	err := s.write(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		q.FillPercent = queueFill
		var payload int64
		var head *Head
		for _, b := range records {
			seq, err := q.NextSequence()
			if err != nil {
				return err
			}
			if err := q.Put(u64key(seq), b); err != nil {
				return err
			}
			payload += int64(len(b))
			r, err := proof.Decode(b)
			if err != nil {
				return err
			}
			var prev Head
			if head != nil {
				prev = *head
			}
			h := headAfter(prev, r, b)
			head = &h
		}
		if old.head != nil {
			h := *old.head
			if head != nil {
				h.LastDate = max(h.LastDate, head.LastDate)
			}
			head = &h
		}
		if head != nil {
			if err := tx.Bucket(bucketHead).Put(keyValue, encodeHead(*head)); err != nil {
				return err
			}
		}
		switch {
		case old.consentLost:
			// Left unset: the daemon decides from the copy beside the key, else
			// consent_default (docs/eligibility.md, consent), and says so in status.
		case old.consent != nil:
			if err := tx.Bucket(bucketConsent).Put(keyValue, old.consent); err != nil {
				return err
			}
		}
		if drop > 0 {
			if err := addCounter(tx, keyEvictedQueued, uint64(drop)); err != nil {
				return err
			}
		}
		tx.OnCommit(func() { s.payload.Add(payload) })
		return tx.Bucket(bucketMeta).Put(keyRecovery, encodeRecovery(*rec))
	})
	if err != nil {
		return fmt.Errorf("store: record the recovery: %w", err)
	}
	return nil
}

// write runs fn in a write transaction, then renews the disk reserve. The writer lock
// is held until the commit handlers that update the payload count have run.
func (s *Store) write(fn func(tx *bolt.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.db.Update(fn)
	if err == nil {
		s.reserve()
	}
	return err
}

// reserve keeps reservePages pages of room past the store's last page in use: under
// the most bbolt may map within max_store_bytes, and allocated on the disk (fallocate,
// keeping the file's size). So the file meeting its bound or a full disk is seen here,
// after a commit, and the next write shrinks the store while that room is left for the
// transactions of the eviction, instead of a transaction failing for want of a page.
// It tells the next write once each time the pages in use grew past where they were
// at open or at the last news.
func (s *Store) reserve() {
	var end int64
	if s.db.View(func(tx *bolt.Tx) error { end = tx.Size(); return nil }) != nil {
		return
	}
	want := end + int64(reservePages*s.db.Info().PageSize)
	short := want > s.limit
	if !short && s.file != nil && want > s.reservedTo {
		switch err := syscall.Fallocate(int(s.file.Fd()), fallocKeepSize, s.reservedTo, want-s.reservedTo); {
		case err == nil:
			s.reservedTo = want
		case noRoom(err):
			short = true
		default: // no fallocate on this file system: a full disk is met by bbolt's writes
			s.file = nil
		}
	}
	if short && end > s.fullAt {
		s.fullAt = end
		s.full.Store(true)
	}
}

// pagesLimit is the most bytes of pages bbolt lets a file bounded by maxBytes hold: it
// doubles its mapping from 32 KiB and grows the file with it up to 16 MiB, then grows
// the file 16 MiB past what it needs.
func pagesLimit(maxBytes int64) int64 {
	const step = 16 << 20
	if maxBytes > step {
		return max(step, maxBytes-step)
	}
	n := int64(32 << 10)
	for n*2 <= maxBytes {
		n *= 2
	}
	return n
}

func payloadOf(records [][]byte) int64 {
	var n int64
	for _, r := range records {
		n += int64(len(r))
	}
	return n
}
