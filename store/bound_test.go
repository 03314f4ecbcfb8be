package store

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
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

// TestDiskFull fills a tmpfs of fixed size: the mint that does not fit fails with
// ENOSPC, nothing already minted is lost, and the store keeps working once space is
// freed.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs of fixed size needs root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=96k"); err != nil {
		t.Skipf("this machine cannot mount a tmpfs (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	s, err := Open(Options{Dir: mnt, MaxBytes: 8 << 20, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	c := newChain(t, "full")
	mustMint(t, s, c.genesis(), nil)
	minted := 1
	var mintErr error
	for range 5000 {
		if _, mintErr = s.Mint(c.day(), nil); mintErr != nil {
			break
		}
		minted++
	}
	if !errors.Is(mintErr, syscall.ENOSPC) {
		t.Fatalf("after %d mints: %v, want ENOSPC", minted, mintErr)
	}
	t.Logf("disk full after %d records: %v", minted, mintErr)
	h, _, _ := s.Head()
	if h.Seq != uint64(minted) {
		t.Fatalf("head %d after %d successful mints", h.Seq, minted)
	}
	// The daemon survives: reads work, and acks free room for the next mint.
	items, err := s.Peek(256, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ack(ids(items)...); err != nil {
		t.Fatalf("ack on a full disk: %v", err)
	}
	c.seq, c.prev = h.Seq, h.Hash
	c.date = h.LastDate.Next()
	if _, err := s.Mint(c.day(), nil); err != nil {
		t.Fatalf("mint after freeing room: %v", err)
	}
	s.Close()
	s2, err := Open(Options{Dir: mnt, Logf: t.Logf})
	if err != nil {
		t.Fatalf("reopen after disk full: %v", err)
	}
	if s2.Recovered() != nil {
		t.Fatalf("disk full was taken for corruption: %+v", s2.Recovered())
	}
	s2.Close()
}
