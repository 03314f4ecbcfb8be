package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

func TestMintPeekAck(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	if _, ok, err := s.Head(); ok || err != nil {
		t.Fatalf("new store has a head: %v", err)
	}
	c := newChain(t, "a")
	var recs [][]byte
	recs = append(recs, c.genesis())
	for range 10 {
		recs = append(recs, c.day())
	}
	for i, r := range recs {
		res := mustMint(t, s, r, nil)
		if res.Key != uint64(i+1) || res.Head.Seq != uint64(i+1) || res.Head.Hash != proof.HashRecord(r) {
			t.Fatalf("mint %d: %+v", i, res)
		}
	}
	h, ok, err := s.Head()
	if !ok || err != nil || h.Seq != 11 || h.LastDate != 20261010 || h.Epoch != 1 {
		t.Fatalf("head %+v %v %v", h, ok, err)
	}
	items, err := s.Peek(256, 64<<10)
	if err != nil || len(items) != 11 {
		t.Fatalf("peek: %d items, %v", len(items), err)
	}
	for i, it := range items {
		if !bytes.Equal(it.Record, recs[i]) || it.ID != (RecordID{1, uint64(i + 1)}) {
			t.Fatalf("item %d: %+v", i, it.ID)
		}
	}
	n, err := s.Ack(ids(items[:4])...)
	if err != nil || n != 4 {
		t.Fatalf("ack: %d %v", n, err)
	}
	// Acknowledging again, or a record never queued, changes nothing.
	if n, err := s.Ack(items[0].ID, RecordID{9, 9}); err != nil || n != 0 {
		t.Fatalf("second ack: %d %v", n, err)
	}
	items, _ = s.Peek(256, 64<<10)
	if len(items) != 7 || items[0].ID.Seq != 5 {
		t.Fatalf("after ack: %v", ids(items))
	}
	cnt, err := s.Counts()
	if err != nil || cnt.Queued != 7 || cnt.QueuedBytes != 7*proof.ActivityRecordSize {
		t.Fatalf("counts %+v %v", cnt, err)
	}
	if got := s.payload.Load(); got != cnt.QueuedBytes {
		t.Fatalf("payload counter %d, queue holds %d", got, cnt.QueuedBytes)
	}
}

func TestPeekLimits(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	c := newChain(t, "a")
	mustMint(t, s, c.genesis(), nil)
	for range 300 {
		mustMint(t, s, c.day(), nil)
	}
	tests := []struct {
		records, bytes, want int
	}{
		{256, 64 << 10, 256},
		{10, 64 << 10, 10},
		{256, 5 * (2 + proof.ActivityRecordSize), 4}, // the genesis is larger than a day
		{256, 1, 1},                                  // at least one record, whatever its size
		{1000, 1 << 20, 301},
	}
	for _, tc := range tests {
		items, err := s.Peek(tc.records, tc.bytes)
		if err != nil || len(items) != tc.want {
			t.Errorf("Peek(%d, %d) = %d items, want %d (%v)", tc.records, tc.bytes, len(items), tc.want, err)
		}
	}
}

func TestMintRefusesWhatBreaksTheChain(t *testing.T) {
	c := newChain(t, "a")
	g := c.genesis()
	d1 := c.day()
	d2 := c.day()
	other := newChain(t, "a")
	other.genesis()
	other.day()
	sameDate := other.sign(&proof.Record{
		DeviceID: other.signer.PublicKey().DeviceID(), Epoch: 1, Seq: 3, PrevHash: proof.HashRecord(d1),
		Body: &proof.ActivityDay{Date: 20261001, UTCOffsetMinutes: 480, InteractiveSeconds: 10, ActiveHours: 1},
	})
	c2 := newChain(t, "a")
	c2.epoch = 4 // its genesis starts epoch 5
	g5 := c2.genesis()
	tests := []struct {
		name  string
		setup [][]byte
		rec   []byte
		want  error
	}{
		{"activity on an empty store", nil, d1, ErrChain},
		{"seq gap", [][]byte{g}, d2, ErrChain},
		{"replay of the head", [][]byte{g, d1}, d1, ErrChain},
		{"second genesis of the same epoch", [][]byte{g}, g, ErrChain},
		{"same date twice", [][]byte{g, d1}, sameDate, ErrChain},
		{"genesis of an older epoch", [][]byte{g5}, g, ErrChain},
		{"malformed bytes", nil, []byte("AMR1 but not a record"), proof.ErrKind},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, t.TempDir(), Options{})
			for _, r := range tc.setup {
				mustMint(t, s, r, nil)
			}
			before, _, _ := s.Head()
			if _, err := s.Mint(tc.rec, nil); !errors.Is(err, tc.want) {
				t.Fatalf("Mint: %v, want %v", err, tc.want)
			}
			after, _, _ := s.Head()
			if before != after {
				t.Fatal("a refused mint moved the head")
			}
		})
	}
	// A later epoch starts with its genesis, whatever the old head.
	s := openTest(t, t.TempDir(), Options{})
	mustMint(t, s, g, nil)
	mustMint(t, s, d1, nil)
	// The last date minted carries over: a date is never minted twice, in any epoch.
	if res := mustMint(t, s, g5, nil); res.Head.Epoch != 5 || res.Head.Seq != 1 || res.Head.LastDate != 20261001 {
		t.Fatalf("head after a new epoch: %+v", res.Head)
	}
	c5 := newChain(t, "a")
	c5.resume(Head{Epoch: 5, Seq: 1, Hash: proof.HashRecord(g5)})
	c5.date = 20261001
	if _, err := s.Mint(c5.day(), nil); !errors.Is(err, ErrChain) {
		t.Fatalf("a date of the old epoch minted again in the new one: %v", err)
	}
}

func TestMintReplacesTallyAtomically(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	c := newChain(t, "a")
	mustMint(t, s, c.genesis(), nil)
	today := Tally{Date: 20261001, UTCOffsetMinutes: 480, InteractiveSeconds: 1800, Unlocks: 3, ScreenOns: 4,
		ActiveHours: 0xF0, Flags: proof.FlagClockJumped, SavedAt: 1790000000, SavedUptimeMS: 12345}
	today.SavedBootID[0] = 7
	if err := s.SaveTally(today); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Tally(); !ok || err != nil || got != today {
		t.Fatalf("tally %+v %v %v", got, ok, err)
	}
	tomorrow := Tally{Date: 20261002, UTCOffsetMinutes: 480}
	mustMint(t, s, c.day(), &tomorrow)
	if got, ok, _ := s.Tally(); !ok || got != tomorrow {
		t.Fatalf("tally after mint %+v", got)
	}
	mustMint(t, s, c.day(), nil)
	if _, ok, _ := s.Tally(); ok {
		t.Fatal("mint with nil tally kept the tally")
	}
}

func TestSettle(t *testing.T) {
	now := time.Unix(1795000000, 0)
	s := openTest(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	c := newChain(t, "a")
	var recs [][]byte
	recs = append(recs, c.genesis())
	for range 5 {
		recs = append(recs, c.day())
	}
	for _, r := range recs {
		mustMint(t, s, r, nil)
	}
	sync := SyncState{LastAttempt: 1795000000, LastSuccess: 1795000000, LastResult: "2 accepted, 1 rejected",
		BackoffInterval: 30 * time.Second, NextRetry: 1795000030, ServerTime: 1795000001, ServerUptimeMS: 999}
	res, err := s.Settle(Settlement{
		Acked: []RecordID{{1, 1}, {1, 2}},
		Dead:  []Refusal{{RecordID{1, 3}, "future_date"}},
		Sync:  &sync,
	})
	if err != nil || res.Acked != 2 || res.Dead != 1 {
		t.Fatalf("settle %+v %v", res, err)
	}
	items, _ := s.Peek(256, 64<<10)
	if got := ids(items); !reflect.DeepEqual(got, []RecordID{{1, 4}, {1, 5}, {1, 6}}) {
		t.Fatalf("queue after settle: %v", got)
	}
	dead, err := s.DeadLetters(10)
	if err != nil || len(dead) != 1 || dead[0].Reason != "future_date" || dead[0].At != now.Unix() || !bytes.Equal(dead[0].Record, recs[2]) {
		t.Fatalf("dead letters %+v %v", dead, err)
	}
	if got, err := s.Sync(); err != nil || got != sync {
		t.Fatalf("sync %+v %v", got, err)
	}
	cnt, _ := s.Counts()
	if cnt.Queued != 3 || cnt.DeadLetters != 1 || s.payload.Load() != cnt.QueuedBytes+cnt.DeadBytes {
		t.Fatalf("counts %+v payload %d", cnt, s.payload.Load())
	}
}

func TestConsent(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if _, set, err := s.Consent(); set || err != nil {
		t.Fatal("consent set on a new store")
	}
	if n, err := s.SetConsent(true); n != 0 || err != nil {
		t.Fatal(err)
	}
	c := newChain(t, "a")
	mustMint(t, s, c.genesis(), nil)
	mustMint(t, s, c.day(), nil)
	mustMint(t, s, c.day(), nil)
	s.Settle(Settlement{Dead: []Refusal{{RecordID{1, 1}, "bad_cert"}}})
	if err := s.SaveTally(Tally{Date: 20261003, InteractiveSeconds: 50, ActiveHours: 1}); err != nil {
		t.Fatal(err)
	}
	n, err := s.SetConsent(false)
	if err != nil || n != 2 {
		t.Fatalf("revoke discarded %d: %v", n, err)
	}
	if granted, set, _ := s.Consent(); granted || !set {
		t.Fatal("consent not stored as revoked")
	}
	if _, ok, _ := s.Tally(); ok {
		t.Fatal("revoking kept the tally")
	}
	cnt, _ := s.Counts()
	if cnt.Queued != 0 || cnt.DeadLetters != 1 || s.payload.Load() != cnt.DeadBytes {
		t.Fatalf("after revoke: %+v, payload %d", cnt, s.payload.Load())
	}
	// The head stays: the agent starts a new epoch, and queue keys are never reused.
	h, ok, _ := s.Head()
	if !ok || h.Seq != 3 {
		t.Fatalf("head after revoke: %+v", h)
	}
	res := mustMint(t, s, c.genesis(), nil)
	if res.Key != 4 {
		t.Fatalf("queue key after revoke: %d, want 4", res.Key)
	}
	s.Close()
	s2 := openTest(t, dir, Options{})
	if granted, set, _ := s2.Consent(); granted || !set {
		t.Fatal("consent lost on reopen")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if !s.Created() {
		t.Error("a new store is not Created")
	}
	c := newChain(t, "a")
	mustMint(t, s, c.genesis(), nil)
	for range 20 {
		rec := c.day()
		mustMint(t, s, rec, &Tally{Date: c.date, UTCOffsetMinutes: 480})
	}
	s.Settle(Settlement{Acked: []RecordID{{1, 1}}, Dead: []Refusal{{RecordID{1, 2}, "stale"}}})
	h1, _, _ := s.Head()
	c1, _ := s.Counts()
	p1 := s.payload.Load()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir, Options{})
	if s2.Recovered() != nil || s2.Created() {
		t.Fatalf("clean store recovered (%+v) or created (%v)", s2.Recovered(), s2.Created())
	}
	if h2, _, _ := s2.Head(); h2.DeviceID != c.signer.PublicKey().DeviceID() {
		t.Fatal("head does not name the device")
	}
	h2, _, _ := s2.Head()
	c2, _ := s2.Counts()
	if h1 != h2 || c1 != c2 || p1 != s2.payload.Load() {
		t.Fatalf("reopen differs: %+v/%+v %+v/%+v %d/%d", h1, h2, c1, c2, p1, s2.payload.Load())
	}
	if tl, ok, _ := s2.Tally(); !ok || tl.Date != 20261021 {
		t.Fatalf("tally after reopen %+v", tl)
	}
}

// TestSettleOutOfOrderThenReopen: acknowledging or dead-lettering records from the
// middle of the queue (a batch split by the server) leaves gaps that are not corruption.
func TestSettleOutOfOrderThenReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	c := newChain(t, "a")
	mustMint(t, s, c.genesis(), nil)
	for range 6 {
		mustMint(t, s, c.day(), nil)
	}
	if _, err := s.Settle(Settlement{Acked: []RecordID{{1, 7}, {1, 4}}, Dead: []Refusal{{RecordID{1, 2}, "bad_format"}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openTest(t, dir, Options{})
	if s2.Recovered() != nil {
		t.Fatalf("gaps in the queue were taken for corruption: %+v", s2.Recovered())
	}
	items, _ := s2.Peek(100, 1<<20)
	if got := ids(items); !reflect.DeepEqual(got, []RecordID{{1, 1}, {1, 3}, {1, 5}, {1, 6}}) {
		t.Fatalf("queue after reopen: %v", got)
	}
}

func TestOptionsRefused(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Error("no dir accepted")
	}
	if _, err := Open(Options{Dir: t.TempDir(), MaxBytes: 1000}); err == nil {
		t.Error("max bytes of 1000 accepted")
	}
	if _, err := OpenReadOnly(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only open of an empty dir: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Open(Options{Dir: filepath.Join(f, "sub")}); err == nil {
		t.Error("data_dir below a file accepted")
	}
}
