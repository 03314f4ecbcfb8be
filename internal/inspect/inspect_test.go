package inspect

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// chain signs records of one device from a fixed seed.
type chain struct {
	t      *testing.T
	signer *proof.KeySigner
	seq    uint64
	prev   proof.Hash
	date   proof.Date
}

func newChain(t *testing.T) *chain {
	seed := sha256.Sum256([]byte("inspect test"))
	s, err := proof.NewKeySigner(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return &chain{t: t, signer: s, date: 20261001}
}

func (c *chain) next(body proof.Body) []byte {
	r := &proof.Record{DeviceID: c.signer.PublicKey().DeviceID(), Epoch: 1, Seq: c.seq + 1, PrevHash: c.prev,
		MintedAt: time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC).Unix() + int64(c.seq)*86400, Body: body}
	b, err := r.Sign(c.signer)
	if err != nil {
		c.t.Fatal(err)
	}
	c.seq, c.prev = r.Seq, proof.HashRecord(b)
	return b
}

func (c *chain) genesis() []byte {
	return c.next(&proof.Genesis{PublicKey: c.signer.PublicKey(), Reason: proof.ReasonFirstStart})
}

func (c *chain) day() []byte {
	d := c.date
	c.date = d.Next()
	return c.next(&proof.ActivityDay{Date: d, UTCOffsetMinutes: 480, InteractiveSeconds: 1800, Unlocks: 12, ScreenOns: 30, ActiveHours: 0x00FF00})
}

// TestRead: a store with a genesis acknowledged, three days queued, one of them then
// dead-lettered, consent granted and a tally, read back whole.
func TestRead(t *testing.T) {
	s, err := store.Open(store.Options{Dir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := Read(s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Head != nil || rep.Tally != nil || len(rep.Queue) != 0 || len(rep.Dead) != 0 || rep.Consent != "not set (consent_default applies)" {
		t.Fatalf("an empty store: %+v", rep)
	}
	c := newChain(t)
	for _, r := range [][]byte{c.genesis(), c.day(), c.day(), c.day()} {
		if _, err := s.Mint(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Peek(10, 1<<20)
	if err != nil || len(items) != 4 {
		t.Fatalf("peek: %d items, %v", len(items), err)
	}
	if _, err := s.Settle(store.Settlement{Acked: []store.RecordID{items[0].ID}, Dead: []store.Refusal{{ID: items[1].ID, Reason: "bad_signature"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetConsent(true); err != nil {
		t.Fatal(err)
	}
	tally := store.Tally{Date: 20261004, UTCOffsetMinutes: -90, InteractiveSeconds: 754, Unlocks: 3, ScreenOns: 4, ActiveHours: 0x700, Flags: 4,
		SavedAt: 1795500000, SavedUptimeMS: 123456, State: 5}
	copy(tally.SavedBootID[:], "\xab\x01boot-id-16-\xff\x00")
	if err := s.SaveTally(tally); err != nil {
		t.Fatal(err)
	}
	if rep, err = Read(s); err != nil {
		t.Fatal(err)
	}
	if rep.Path != s.Path() || rep.FileBytes == 0 || rep.MaxBytes == 0 || rep.Consent != "granted" {
		t.Errorf("report: %+v", rep)
	}
	if h := rep.Head; h == nil || h.Epoch != 1 || h.Seq != 4 || h.DeviceID != c.signer.PublicKey().DeviceID().String() || h.LastDate != 20261003 || h.Hash != c.prev.String() {
		t.Errorf("head: %+v", h)
	}
	want := Tally{Date: 20261004, UTCOffsetMinutes: -90, InteractiveSeconds: 754, Unlocks: 3, ScreenOns: 4, ActiveHours: 0x700, Flags: 4,
		SavedAt: 1795500000, SavedBootID: "ab01626f6f742d69642d31362dff0000", SavedUptimeMS: 123456, State: 5}
	if rep.Tally == nil || *rep.Tally != want {
		t.Errorf("tally: %+v, want %+v", rep.Tally, want)
	}
	if len(rep.Queue) != 2 || len(rep.Raw) != 2 || rep.Queue[0].Seq != 3 || !strings.HasPrefix(rep.Queue[0].What, "day 2026-10-02:") {
		t.Errorf("queue: %+v", rep.Queue)
	}
	if len(rep.Dead) != 1 || rep.Dead[0].Seq != 2 || rep.Dead[0].Reason != "bad_signature" || rep.Dead[0].At == 0 {
		t.Errorf("dead-letter: %+v", rep.Dead)
	}
	if rep.Recovery != nil {
		t.Errorf("recovery: %+v", rep.Recovery)
	}
	if e, q, what := describe([]byte("not a record")); e != 0 || q != 0 || !strings.HasPrefix(what, "undecodable: ") {
		t.Errorf("describe: %d %d %q", e, q, what)
	}
}
