package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"amos.example/amosd/rigs/testenv"
)

func TestBoundEvictsDeadLetterFirstThenOldest(t *testing.T) {
	const maxBytes = 128 << 10
	dir := t.TempDir()
	s := openTest(t, dir, Options{MaxBytes: maxBytes})
	c := newChain(t, "bound")
	mustMint(t, s, c.genesis(), nil)
	// 40 dead-letter records, then keep minting far past the bound.
	for range 40 {
		mustMint(t, s, c.day(), nil)
	}
	items, _ := s.Peek(40, 1<<20)
	var dead []Refusal
	for _, it := range items {
		dead = append(dead, Refusal{it.ID, "stale"})
	}
	if _, err := s.Settle(Settlement{Dead: dead}); err != nil {
		t.Fatal(err)
	}
	var total MintResult
	firstQueuedEviction := 0
	for i := range 2000 {
		res := mustMint(t, s, c.day(), nil)
		total.Evicted.Dead += res.Evicted.Dead
		total.Evicted.Queued += res.Evicted.Queued
		if res.Evicted.Queued > 0 && firstQueuedEviction == 0 {
			firstQueuedEviction = i
			if total.Evicted.Dead != 40 {
				t.Fatalf("queued records evicted while %d of 40 dead-letters remained", 40-total.Evicted.Dead)
			}
		}
		fi, err := os.Stat(filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxBytes {
			t.Fatalf("mint %d: file is %d bytes, bound %d", i, fi.Size(), maxBytes)
		}
	}
	cnt, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 2041 mints under %d bytes: %+v; first queued eviction at mint %d", maxBytes, cnt, firstQueuedEviction)
	if cnt.EvictedDead != 40 || cnt.EvictedQueued != total.Evicted.Queued || cnt.EvictedQueued == 0 {
		t.Fatalf("eviction counters %+v, results say %+v", cnt, total.Evicted)
	}
	if cnt.Queued+int(cnt.EvictedQueued) != 2001 { // the day left after the 40 dead, and 2000
		t.Fatalf("%d queued + %d evicted != 2001 queued", cnt.Queued, cnt.EvictedQueued)
	}
	// The queue is the newest records, contiguous, ending at the head.
	items, _ = s.Peek(1<<20, 1<<30)
	h, _, _ := s.Head()
	if items[len(items)-1].ID.Seq != h.Seq || items[0].ID.Seq != h.Seq-uint64(len(items))+1 {
		t.Fatalf("queue %v..%v, head %d", items[0].ID, items[len(items)-1].ID, h.Seq)
	}
	// The counters survive a restart.
	s.Close()
	s2 := openTest(t, dir, Options{MaxBytes: maxBytes})
	if cnt2, _ := s2.Counts(); cnt2 != cnt {
		t.Fatalf("counts after reopen %+v, before %+v", cnt2, cnt)
	}
}

// smallDisk mounts a tmpfs of size bytes for the test (testenv.SmallDisk).
func smallDisk(t *testing.T, size int) string { return testenv.SmallDisk(t, size) }

// fill writes a file in dir until the file system is full, or until only leave bytes
// are left free.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize) // Bsize is int32 on arm
	if _, err := f.Write(make([]byte, max(free-leave, 0))); leave == 0 && !errors.Is(err, syscall.ENOSPC) {
		if _, err = f.Write(make([]byte, 64<<10)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling %s: %v, want ENOSPC", dir, err)
		}
	} else if leave > 0 && err != nil {
		t.Fatalf("filling %s up to %d bytes free: %v", dir, leave, err)
	}
	return path
}

// TestDiskFullEvicts mints far past what a 160 KiB tmpfs holds (docs/store-and-epochs.md
// section 5): no mint fails; the disk being full evicts as max_store_bytes does, the
// dead-letter records first, then the oldest queued, every one counted; the tally and
// the sync state are still saved and an upload still settled; and the store reopens
// as it was, without recovery. The same holds where the file system has no fallocate
// for the store's reserve, and bbolt's own writes meet the full disk.
func TestDiskFullEvicts(t *testing.T) {
	for _, reserve := range []bool{true, false} {
		t.Run(map[bool]string{true: "reserve", false: "no fallocate"}[reserve], func(t *testing.T) { diskFull(t, reserve) })
	}
}

func diskFull(t *testing.T, reserve bool) {
	mnt := smallDisk(t, 160<<10)
	var grew []string
	logf := func(f string, a ...any) {
		if strings.Contains(f, "cannot grow") {
			grew = append(grew, fmt.Sprintf(f, a...))
		}
	}
	s, err := Open(Options{Dir: mnt, Logf: logf}) // max_store_bytes 8 MiB: only the disk bounds it
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if !reserve {
		s.file = nil
	}
	c := newChain(t, "full")
	mustMint(t, s, c.genesis(), nil)
	for range 40 {
		mustMint(t, s, c.day(), nil)
	}
	items, _ := s.Peek(10, 1<<20)
	var dead []Refusal
	for _, it := range items {
		dead = append(dead, Refusal{it.ID, "stale"})
	}
	if _, err := s.Settle(Settlement{Dead: dead}); err != nil {
		t.Fatal(err)
	}
	const days = 3000
	var total Evictions
	var tally Tally
	for i := range days {
		tally = Tally{Date: c.date + 1, InteractiveSeconds: uint32(i), SavedAt: 1795000000 + int64(i)}
		res, err := s.Mint(c.day(), &tally)
		if err != nil {
			cnt, _ := s.Counts()
			t.Fatalf("mint %d of %d on a full disk: %v (%+v)", i+1, days, err, cnt)
		}
		if res.Evicted.Queued > 0 && total.Dead+res.Evicted.Dead < 10 {
			t.Fatalf("mint %d: queued records evicted while %d of 10 dead-letters remained", i+1, 10-total.Dead-res.Evicted.Dead)
		}
		total.Dead += res.Evicted.Dead
		total.Queued += res.Evicted.Queued
	}
	if len(grew) == 0 {
		t.Fatal("the disk never filled: the test proves nothing")
	}
	// The day after the last mint keeps counting, and an upload is settled.
	tally.InteractiveSeconds += 60
	if err := s.SaveTally(tally); err != nil {
		t.Fatalf("save tally on a full disk: %v", err)
	}
	if err := s.SaveSync(SyncState{LastAttempt: 1795000000, LastResult: "accepted"}); err != nil {
		t.Fatalf("save sync state on a full disk: %v", err)
	}
	items, _ = s.Peek(5, 1<<20)
	if n, err := s.Ack(ids(items)...); err != nil || n != 5 {
		t.Fatalf("ack on a full disk: %d, %v", n, err)
	}
	cnt, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("160 KiB tmpfs: %d mints after the genesis, all stored; %d times: %s; evicted %d dead-letter and %d queued; %d queued (%d bytes), file %d bytes",
		40+days, len(grew), grew[0], cnt.EvictedDead, cnt.EvictedQueued, cnt.Queued, cnt.QueuedBytes, cnt.FileBytes)
	if cnt.EvictedDead != 10 || cnt.DeadLetters != 0 || cnt.EvictedQueued != total.Queued || total.Dead != 10 {
		t.Fatalf("eviction counters %+v, mint results say %+v", cnt, total)
	}
	if cnt.Queued+5+int(cnt.EvictedQueued) != 31+days { // 41 minted, 10 of them dead-lettered
		t.Fatalf("%d queued + 5 acked + %d evicted != %d minted", cnt.Queued, cnt.EvictedQueued, 31+days)
	}
	items, _ = s.Peek(1<<20, 1<<30)
	h, _, _ := s.Head()
	if items[len(items)-1].ID.Seq != h.Seq || items[0].ID.Seq != h.Seq-uint64(len(items))+1 || h.Seq != 41+days {
		t.Fatalf("queue %v..%v, head %d after %d records", items[0].ID, items[len(items)-1].ID, h.Seq, 41+days)
	}
	s.Close()
	s, err = Open(Options{Dir: mnt, Logf: t.Logf})
	if err != nil {
		t.Fatalf("reopen on the full disk: %v", err)
	}
	if s.Recovered() != nil || s.Created() {
		t.Fatalf("reopened with recovery %+v, created %v", s.Recovered(), s.Created())
	}
	h2, _, _ := s.Head()
	t2, _, _ := s.Tally()
	cnt2, _ := s.Counts()
	if h2 != h || t2 != tally || cnt2 != cnt {
		t.Fatalf("after reopen: head %+v, tally %+v, counts %+v; before %+v, %+v, %+v", h2, t2, cnt2, h, tally, cnt)
	}
}

// TestNeverWrittenIsNotCorrupt: a start that fails on a full disk leaves no store file
// behind, whatever room bbolt's first pages found; and a file that holds no store
// (empty, or zeros where bbolt's first pages would be) is a new store, not a corrupt
// one: no recovery, nothing moved aside, consent not set (never revoked).
func TestNeverWrittenIsNotCorrupt(t *testing.T) {
	tests := []struct {
		name string
		disk bool  // on a 160 KiB tmpfs, filled up to free bytes before the first start
		free int64 // bytes left free on the disk
		file []byte
	}{
		{name: "full disk", disk: true, free: 0},
		{name: "4 KiB free", disk: true, free: 4 << 10},
		{name: "8 KiB free", disk: true, free: 8 << 10},
		{name: "12 KiB free", disk: true, free: 12 << 10},
		{name: "20 KiB free", disk: true, free: 20 << 10},
		{name: "empty file", file: []byte{}},
		{name: "zeroed first pages", file: make([]byte, 16<<10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if tc.disk {
				dir = smallDisk(t, 160<<10)
				path = filepath.Join(dir, FileName)
				filler := fill(t, dir, tc.free)
				s, err := Open(Options{Dir: dir, Logf: t.Logf})
				if err == nil {
					s.Close()
					t.Skipf("the first start fitted in %d bytes", tc.free)
				}
				if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
					t.Fatalf("first start on a full disk: %v, want ENOSPC naming %s", err, path)
				}
				if _, serr := os.Lstat(path); !errors.Is(serr, fs.ErrNotExist) {
					t.Fatalf("the failed start left %s behind (%v)", path, serr)
				}
				t.Logf("first start: %v; nothing left behind", err)
				if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.WriteFile(path, tc.file, 0o600); err != nil {
					t.Fatal(err)
				}
				_, err := OpenReadOnly(dir)
				if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "never written") {
					t.Fatalf("read-only open of a file that holds no store: %v, want fs.ErrNotExist", err)
				}
				if b, _ := os.ReadFile(path); !bytes.Equal(b, tc.file) {
					t.Fatal("the read-only open changed the file")
				}
			}
			s, err := Open(Options{Dir: dir, Logf: t.Logf})
			if err != nil {
				t.Fatalf("start once there is room: %v", err)
			}
			defer s.Close()
			granted, set, _ := s.Consent()
			moved, _ := filepath.Glob(filepath.Join(dir, corruptPrefix+"*"))
			if s.Recovered() != nil || !s.Created() || set || granted || len(moved) > 0 {
				t.Fatalf("recovered %+v, created %v, consent set %v granted %v, moved aside %v: want a new store", s.Recovered(), s.Created(), set, granted, moved)
			}
			if _, err := s.Mint(newChain(t, "never").genesis(), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPagesLimit: the most bytes of pages bbolt lets a file bounded by max_store_bytes
// hold, which the reserve stays under; for the small bounds, checked against bbolt by
// filling a file until it refuses.
func TestPagesLimit(t *testing.T) {
	tests := []struct {
		maxBytes, want int64
		fill           bool
	}{
		{64 << 10, 64 << 10, true},
		{96 << 10, 64 << 10, true},
		{128 << 10, 128 << 10, true},
		{200 << 10, 128 << 10, true},
		{8 << 20, 8 << 20, false},
		{16 << 20, 16 << 20, false},
		{20 << 20, 16 << 20, false},
		{32 << 20, 16 << 20, false},
		{48 << 20, 32 << 20, false},
		{1 << 30, 1<<30 - 16<<20, false},
	}
	for _, tc := range tests {
		if got := pagesLimit(tc.maxBytes); got != tc.want {
			t.Errorf("pagesLimit(%d) = %d, want %d", tc.maxBytes, got, tc.want)
		}
		if !tc.fill {
			continue
		}
		db, err := bolt.Open(filepath.Join(t.TempDir(), "fill.db"), 0o600, &bolt.Options{MaxSize: int(tc.maxBytes)})
		if err != nil {
			t.Fatal(err)
		}
		var end int64
		for i := uint64(0); i < 1<<16; i++ {
			err = db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err == nil {
					err = b.Put(u64key(i), make([]byte, 512))
				}
				end = tx.Size()
				return err
			})
			if err != nil {
				break
			}
		}
		db.Close()
		if ps := int64(os.Getpagesize()); !errors.Is(err, berrors.ErrMaxSizeReached) || end > tc.want || end < tc.want-8*ps {
			t.Errorf("max_store_bytes %d: bbolt stopped at %d bytes of pages (%v), pagesLimit says %d", tc.maxBytes, end, err, tc.want)
		}
	}
}
