package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// populated writes a store with a genesis and n days queued and returns its records.
func populated(t *testing.T, dir string, n int) [][]byte {
	t.Helper()
	s, err := Open(Options{Dir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	c := newChain(t, "corrupt")
	recs := [][]byte{c.genesis()}
	for range n {
		recs = append(recs, c.day())
	}
	for _, r := range recs {
		mustMint(t, s, r, nil)
	}
	if err := s.SaveTally(Tally{Date: c.date, InteractiveSeconds: 5, ActiveHours: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetConsent(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// damage edits the store file in place.
func damage(t *testing.T, path string, edit func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pageSize reads bbolt's page size from the first meta page.
func pageSize(b []byte) int { return int(binary.LittleEndian.Uint32(b[16+8:])) }

// highWater reads the end of the pages in use from the newer meta page: beyond it, the
// file is preallocated space that truncation does not damage.
func highWater(b []byte) int {
	ps := pageSize(b)
	pgid := func(m int) uint64 { return binary.LittleEndian.Uint64(b[m+16+40:]) }
	txid := func(m int) uint64 { return binary.LittleEndian.Uint64(b[m+16+48:]) }
	m := 0
	if txid(ps) > txid(0) {
		m = ps
	}
	return int(pgid(m)) * ps
}

func TestCorruptionIsRecovered(t *testing.T) {
	const days = 400 // several leaf pages of queue
	tests := []struct {
		name string
		// edit damages the file; recs are the records that were minted into it.
		edit func(t *testing.T, b []byte, recs [][]byte) []byte
		// The number of records that must be carried over is in [minSalvaged, maxSalvaged].
		minSalvaged, maxSalvaged int
	}{
		// All zeros, but longer than bbolt's first four pages: a store was written there.
		{"zeroed file", func(t *testing.T, b []byte, _ [][]byte) []byte { return make([]byte, len(b)) }, 0, 0},
		{"truncated to 100 bytes", func(t *testing.T, b []byte, _ [][]byte) []byte { return b[:100] }, 0, 0},
		{"truncated to one page", func(t *testing.T, b []byte, _ [][]byte) []byte { return b[:pageSize(b)] }, 0, 0},
		{"truncated to half its pages", func(t *testing.T, b []byte, _ [][]byte) []byte { return b[:highWater(b)/2] }, 0, days},
		{"truncated by three pages", func(t *testing.T, b []byte, _ [][]byte) []byte { return b[:highWater(b)-3*pageSize(b)] }, 0, days},
		{"both meta pages flipped", func(t *testing.T, b []byte, _ [][]byte) []byte {
			ps := pageSize(b)
			b[40] ^= 0xFF
			b[ps+40] ^= 0xFF
			return b
		}, 0, 0},
		{"random garbage", func(t *testing.T, b []byte, _ [][]byte) []byte {
			g := make([]byte, 64<<10)
			for i := range g {
				g[i] = byte(i*7 + i/251)
			}
			return g
		}, 0, 0},
		{"flipped byte in a queued record", func(t *testing.T, b []byte, recs [][]byte) []byte {
			at := bytes.Index(b, recs[200])
			if at < 0 {
				t.Fatal("record 200 not found in the file")
			}
			b[at+130] ^= 0x01 // inside its body
			return b
		}, 200, 200},
		{"leaf page header destroyed", func(t *testing.T, b []byte, recs [][]byte) []byte {
			at := bytes.Index(b, recs[300])
			ps := pageSize(b)
			page := at / ps * ps
			binary.LittleEndian.PutUint16(b[page+8:], 0xBEEF) // page flags: no such page type
			return b
		}, 1, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			recs := populated(t, dir, days)
			path := filepath.Join(dir, FileName)
			damage(t, path, func(b []byte) []byte { return tc.edit(t, b, recs) })
			at := time.Unix(1795000000, 0)
			s := openTest(t, dir, Options{Now: func() time.Time { return at }})
			rec := s.Recovered()
			if rec == nil {
				t.Fatal("a damaged store opened without recovery")
			}
			t.Logf("recovered: %+v", *rec)
			if rec.CorruptPath != filepath.Join(dir, "amosd.db.corrupt-1795000000") {
				t.Errorf("moved to %s", rec.CorruptPath)
			}
			if _, err := os.Stat(rec.CorruptPath); err != nil {
				t.Errorf("corrupt file not kept: %v", err)
			}
			if n := int(rec.Salvaged); n < tc.minSalvaged || n > tc.maxSalvaged {
				t.Errorf("salvaged %d records, want %d..%d", n, tc.minSalvaged, tc.maxSalvaged)
			}
			// The salvaged records are an intact prefix, and the head is their last.
			items, err := s.Peek(1000, 1<<20)
			if err != nil || len(items) != int(rec.Salvaged) {
				t.Fatalf("queue has %d items, salvaged %d: %v", len(items), rec.Salvaged, err)
			}
			for i, it := range items {
				if !bytes.Equal(it.Record, recs[i]) {
					t.Fatalf("salvaged record %d differs from the one minted", i)
				}
			}
			// The head is the old one where it could be read, else the last record
			// carried over; either way no earlier than what was carried over.
			h, ok, _ := s.Head()
			if n := len(items); n > 0 && (!ok || h.Seq < items[n-1].ID.Seq ||
				h.Seq == items[n-1].ID.Seq && h.Hash != proof.HashRecord(recs[n-1])) {
				t.Fatalf("head %+v is before the last salvaged record", h)
			}
			if ok && h.Seq == uint64(len(recs)) {
				last, _ := proof.Decode(recs[len(recs)-1])
				if a, _ := last.Activity(); h.LastDate != a.Date {
					t.Fatalf("old head carried over without its last date: %+v", h)
				}
			}
			if _, ok, _ := s.Tally(); ok {
				t.Error("a recreated store has a tally")
			}
			if lr, ok, _ := s.LastRecovery(); !ok || lr != *rec {
				t.Errorf("recovery not recorded in the new store: %+v", lr)
			}
			// The consent was set (granted) in the damaged store: it is carried over
			// where it could be read, and left unset where it could not.
			granted, set, _ := s.Consent()
			if set && !granted || rec.Salvaged > 0 && !(set && granted) {
				t.Errorf("consent after recovery: granted %v, set %v (salvaged %d)", granted, set, rec.Salvaged)
			}
			t.Logf("consent after recovery: granted %v", granted)
			// The agent starts a new epoch: its genesis is accepted.
			c := newChain(t, "corrupt")
			c.epoch = 1
			if _, err := s.Mint(c.genesis(), nil); err != nil {
				t.Fatalf("genesis of epoch 2 after recovery: %v", err)
			}
			s.Close()
			// And the recreated store opens cleanly from now on.
			s2 := openTest(t, dir, Options{})
			if s2.Recovered() != nil {
				t.Fatalf("recreated store recovered again: %+v", s2.Recovered())
			}
		})
	}
}

func TestReadOnlyOpenOfADamagedFreelist(t *testing.T) {
	dir := t.TempDir()
	populated(t, dir, 50)
	path := filepath.Join(dir, FileName)
	damage(t, path, func(b []byte) []byte {
		ps := pageSize(b)
		m := 0
		if binary.LittleEndian.Uint64(b[ps+16+48:]) > binary.LittleEndian.Uint64(b[16+48:]) {
			m = ps
		}
		free := int(binary.LittleEndian.Uint64(b[m+16+32:]))
		binary.LittleEndian.PutUint16(b[free*ps+10:], 0xFFFF) // freelist count
		return b
	})
	// Must answer, not crash the process with a fault in a goroutine of bbolt's.
	if _, err := OpenReadOnly(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenReadOnly: %v, want ErrCorrupt", err)
	}
	s := openTest(t, dir, Options{})
	if s.Recovered() == nil {
		t.Fatal("damaged freelist opened without recovery")
	}
}

func TestPruneKeepsTheFileJustMoved(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"amosd.db.corrupt-1795000000", "amosd.db.corrupt-1795000010"} {
		os.WriteFile(filepath.Join(dir, name), []byte("old"), 0o600)
	}
	os.WriteFile(filepath.Join(dir, FileName), []byte("garbage"), 0o600)
	// The clock stands before the older files' names.
	s := openTest(t, dir, Options{Now: func() time.Time { return time.Unix(100, 0) }})
	moved := s.Recovered().CorruptPath
	if _, err := os.Stat(moved); err != nil {
		t.Fatalf("the file just moved aside was pruned: %v", err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "amosd.db.corrupt-*"))
	if len(m) != KeepCorrupt {
		t.Fatalf("kept %v", m)
	}
}

// TestConsentLostIsLeftUnset: a consent that could not be read is left unset in the
// recreated store, for the daemon to take from key_dir or consent_default (it used to be
// written as revoked, which silently stopped every phone whose store was recovered).
func TestConsentLostIsLeftUnset(t *testing.T) {
	dir := t.TempDir()
	populated(t, dir, 3)
	damage(t, filepath.Join(dir, FileName), func(b []byte) []byte { return b[:100] })
	s := openTest(t, dir, Options{})
	if s.Recovered() == nil {
		t.Fatal("no recovery")
	}
	if granted, set, _ := s.Consent(); set {
		t.Fatalf("unreadable consent: granted %v, set %v; want unset", granted, set)
	}
	if _, ok, err := s.RecoveryOutcome(); ok || err != nil {
		t.Fatalf("an outcome before the daemon wrote one: %v %v", ok, err)
	}
	want := Outcome{OldEpoch: 1, NewEpoch: 2, Consent: "key_dir"}
	if err := s.SetRecoveryOutcome(want); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.RecoveryOutcome(); !ok || err != nil || got != want {
		t.Fatalf("outcome %+v %v %v, want %+v", got, ok, err, want)
	}
}

func TestOneMetaPageFlippedKeepsData(t *testing.T) {
	dir := t.TempDir()
	recs := populated(t, dir, 50)
	path := filepath.Join(dir, FileName)
	damage(t, path, func(b []byte) []byte { b[40] ^= 0xFF; return b }) // meta page 0 only
	s := openTest(t, dir, Options{})
	if s.Recovered() != nil {
		t.Fatalf("bbolt should fall back to the other meta page, got recovery %+v", s.Recovered())
	}
	items, _ := s.Peek(1000, 1<<20)
	// The other meta page is at most one transaction older: the last mint or the
	// tally save may be missing, nothing before them.
	if len(items) < len(recs)-1 {
		t.Fatalf("queue has %d of %d records", len(items), len(recs))
	}
}

func TestDirectoryInPlaceOfTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, FileName, "inner"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, Options{Now: func() time.Time { return time.Unix(1795000000, 0) }})
	if s.Recovered() == nil || !strings.Contains(s.Recovered().Cause, "directory") {
		t.Fatalf("recovery %+v", s.Recovered())
	}
	if fi, err := os.Stat(s.Recovered().CorruptPath); err != nil || !fi.IsDir() {
		t.Fatalf("directory not moved aside: %v", err)
	}
}

func TestAtMostTwoCorruptFilesKept(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte("not a store"), 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Unix(1795000000+int64(i)*10, 0)
		s, err := Open(Options{Dir: dir, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		if s.Recovered() == nil {
			t.Fatal("garbage opened without recovery")
		}
		s.Close()
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "amosd.db.corrupt-*"))
	want := []string{filepath.Join(dir, "amosd.db.corrupt-1795000020"), filepath.Join(dir, "amosd.db.corrupt-1795000030")}
	if len(matches) != 2 || matches[0] != want[0] || matches[1] != want[1] {
		t.Fatalf("kept %v, want the two newest %v", matches, want)
	}
	// Two recoveries in the same second do not overwrite each other.
	for range 2 {
		os.WriteFile(filepath.Join(dir, FileName), []byte("again"), 0o600)
		s, err := Open(Options{Dir: dir, Now: func() time.Time { return time.Unix(1795000100, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "amosd.db.corrupt-1795000101")); err != nil {
		t.Fatalf("second recovery in the same second: %v", err)
	}
}

func TestReadOnlyOpenReportsCorruptionWithoutTouching(t *testing.T) {
	dir := t.TempDir()
	populated(t, dir, 5)
	path := filepath.Join(dir, FileName)
	damage(t, path, func(b []byte) []byte { return b[:100] })
	before, _ := os.ReadFile(path)
	if _, err := OpenReadOnly(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenReadOnly of a damaged store: %v, want ErrCorrupt", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("OpenReadOnly changed the file")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*corrupt*")); len(m) != 0 {
		t.Fatalf("OpenReadOnly moved files: %v", m)
	}
}
