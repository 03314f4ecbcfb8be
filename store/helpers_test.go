package store

import (
	"crypto/sha256"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// chain mints real, signed records of one device, as the agent will.
type chain struct {
	signer *proof.KeySigner
	epoch  uint32
	seq    uint64
	prev   proof.Hash
	date   proof.Date
}

func newChain(t testing.TB, label string) *chain {
	t.Helper()
	return newChainNoT(label)
}

// newChainNoT is newChain for a child process, which has no testing.T.
func newChainNoT(label string) *chain {
	seed := sha256.Sum256([]byte("store test " + label))
	s, err := proof.NewKeySigner(seed[:])
	if err != nil {
		panic(err)
	}
	return &chain{signer: s, date: 20261001}
}

// resume continues the chain from a stored head.
func (c *chain) resume(h Head) {
	c.epoch, c.seq, c.prev = h.Epoch, h.Seq, h.Hash
	if h.LastDate != 0 {
		c.date = h.LastDate.Next()
	}
}

func (c *chain) sign(r *proof.Record) []byte {
	b, err := r.Sign(c.signer)
	if err != nil {
		panic(err)
	}
	c.seq, c.prev = r.Seq, proof.HashRecord(b)
	return b
}

// genesis starts the next epoch.
func (c *chain) genesis() []byte {
	c.epoch++
	return c.sign(&proof.Record{
		DeviceID: c.signer.PublicKey().DeviceID(),
		Epoch:    c.epoch,
		Seq:      1,
		MintedAt: time.Date(2026, 9, 30, 12, 0, 0, 0, time.UTC).Unix(),
		Body:     &proof.Genesis{PublicKey: c.signer.PublicKey(), Reason: proof.ReasonFirstStart},
	})
}

// day mints the next date's activity record.
func (c *chain) day() []byte {
	d := c.date
	c.date = d.Next()
	return c.sign(&proof.Record{
		DeviceID: c.signer.PublicKey().DeviceID(),
		Epoch:    c.epoch,
		Seq:      c.seq + 1,
		PrevHash: c.prev,
		MintedAt: d.Next().Start(480).Unix(),
		Body: &proof.ActivityDay{Date: d, UTCOffsetMinutes: 480, InteractiveSeconds: 1800,
			Unlocks: 12, ScreenOns: 30, ActiveHours: 0x00FF00},
	})
}

func openTest(t testing.TB, dir string, o Options) *Store {
	t.Helper()
	o.Dir = dir
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustMint(t testing.TB, s *Store, rec []byte, next *Tally) MintResult {
	t.Helper()
	res, err := s.Mint(rec, next)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func ids(items []Item) []RecordID {
	out := make([]RecordID, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}
