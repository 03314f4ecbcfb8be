package collector

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
)

// cst is the default reporting zone of docs/protocol.md: UTC+08:00.
const cst = 480

const goldenDir = "../testdata/proof"

// at returns the instant of a wall-clock time in China Standard Time.
func at(y int, m time.Month, d, h int) time.Time {
	return time.Date(y, m, d, h, 0, 0, 0, time.FixedZone("CST", cst*60))
}

// fixedClock returns a settable clock.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

// signer returns a deterministic key for label.
func signer(t testing.TB, label string) *proof.KeySigner {
	t.Helper()
	s := sha256.Sum256([]byte("amos-collector test " + label))
	k, err := proof.NewKeySigner(s[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(label string) (s [32]byte) { return sha256.Sum256([]byte("serial " + label)) }

// maker is a registered (or not) maker and its key.
type maker struct {
	id  string
	key *proof.KeySigner
}

func newMaker(t testing.TB, id string) maker { return maker{id, signer(t, "maker "+id)} }

// certify signs a certificate of dev for serial tag label, issued at issued.
func (m maker) certify(t testing.TB, dev proof.Signer, serialLabel string, issued time.Time) *proof.Certificate {
	t.Helper()
	c := &proof.Certificate{DevicePublicKey: dev.PublicKey(), SerialTag: serial(serialLabel), MakerID: m.id,
		Model: "Amos T1", IssuedAt: issued.Unix()}
	if _, err := c.Sign(m.key); err != nil {
		t.Fatal(err)
	}
	return c
}

func registry(ms ...maker) Registry {
	r := Registry{}
	for _, m := range ms {
		r[m.id] = m.key.PublicKey()
	}
	return r
}

// device mints the records of one simulated handset.
type device struct {
	t      testing.TB
	key    proof.Signer
	cert   *proof.Certificate
	chain  [][]byte // the attestation chain its geneses carry
	epoch  uint32
	seq    uint64
	prev   proof.Hash
	offset int16
	flags  proof.Flags
}

func newDevice(t testing.TB, label string, cert func(proof.Signer) *proof.Certificate) *device {
	d := &device{t: t, key: signer(t, "device "+label), offset: cst}
	if cert != nil {
		d.cert = cert(d.key)
	}
	return d
}

func (d *device) id() proof.DeviceID { return d.key.PublicKey().DeviceID() }

// genesis starts the next epoch and returns its genesis.
func (d *device) genesis() []byte {
	d.t.Helper()
	d.epoch++
	r := &proof.Record{Flags: d.flags, DeviceID: d.id(), Epoch: d.epoch, Seq: 1, MintedAt: 1790000000, UptimeMS: 1000,
		Body: &proof.Genesis{PublicKey: d.key.PublicKey(), Cert: d.cert, Attestation: d.chain, Reason: proof.ReasonFirstStart}}
	if d.epoch > 1 {
		r.Body.(*proof.Genesis).Reason = proof.ReasonStoreRecreated
	}
	return d.sign(r)
}

// day mints the activity record of date with the given counters.
func (d *device) day(date proof.Date, seconds uint32, unlocks uint16) []byte {
	d.t.Helper()
	r := &proof.Record{Flags: d.flags, DeviceID: d.id(), Epoch: d.epoch, Seq: d.seq + 1, PrevHash: d.prev,
		MintedAt: date.Next().Start(int(d.offset)).Unix() + 5, UptimeMS: uint64(d.seq) * 1000,
		Body: &proof.ActivityDay{Date: date, UTCOffsetMinutes: d.offset, InteractiveSeconds: seconds,
			Unlocks: unlocks, ScreenOns: unlocks + d.screens(), ActiveHours: proof.AllHours}}
	return d.sign(r)
}

// screens is the device's own share of its screen_ons, so that two scripted devices
// with the same seconds and unlocks are not clones of each other.
func (d *device) screens() uint16 {
	id := d.id()
	return 1 + uint16(id[0])<<4 | uint16(id[1]&15)
}

// registerSales registers each serial label as a handset sold by maker on 2026-01-05.
func registerSales(t testing.TB, c *Collector, maker string, labels ...string) {
	t.Helper()
	var rows []sales.Row
	for i, l := range labels {
		rows = append(rows, sales.Row{Line: i + 2, Sale: sales.Sale{SerialTag: serial(l), MakerID: maker, SoldAt: proof.NewDate(2026, time.January, 5), Channel: "taobao"}})
	}
	if _, err := c.ImportSales("test", rows); err != nil {
		t.Fatal(err)
	}
}

// rowFigures returns the rows as "maker paid/held/refused/unregistered/late".
func rowFigures(c *Claims) []string {
	var out []string
	for _, r := range c.Rows {
		if r.EligibleDevices != r.Paid || r.AmountCNY != r.Paid*AmountPerDevice {
			out = append(out, fmt.Sprintf("%s: eligible_devices %d, amount %d, paid %d", r.MakerID, r.EligibleDevices, r.AmountCNY, r.Paid))
		}
		out = append(out, fmt.Sprintf("%s %d/%d/%d/%d/%d", r.MakerID, r.Paid, r.Held, r.Refused, r.Unregistered, r.Late))
	}
	return out
}

// active mints an active day (600 s, 3 unlocks).
func (d *device) active(date proof.Date) []byte { return d.day(date, 600, 3) }

func (d *device) sign(r *proof.Record) []byte {
	d.t.Helper()
	b, err := r.Sign(d.key)
	if err != nil {
		d.t.Fatal(err)
	}
	d.seq, d.prev = r.Seq, proof.HashRecord(b)
	return b
}

func oct(day int) proof.Date { return proof.NewDate(2026, time.October, day) }

// ledgers runs fn once on each ledger.Ledger implementation.
func ledgers(t *testing.T, fn func(t *testing.T, open func() ledger.Ledger)) {
	t.Run("bolt", func(t *testing.T) {
		fn(t, func() ledger.Ledger {
			l, err := ledger.OpenBolt(t.TempDir(), ledger.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		})
	})
	t.Run("mem", func(t *testing.T) {
		fn(t, func() ledger.Ledger { return ledger.NewMem() })
	})
}

func newCollector(t testing.TB, l ledger.Ledger, clock *fixedClock, reg Registry) *Collector {
	t.Helper()
	c, err := New(l, Options{Makers: reg, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ingest ingests records and fails the test on a ledger error or a result count
// that is not one per record.
func ingest(t testing.TB, c *Collector, records ...[]byte) []Result {
	t.Helper()
	rc, err := c.Ingest(records)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Results) != len(records) {
		t.Fatalf("%d results for %d records", len(rc.Results), len(records))
	}
	return rc.Results
}

// want is an expected result, as "accepted", "duplicate", "retry chain_gap" or
// "rejected REASON".
func verdicts(rs []Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r.Status)
		if r.Reason != "" {
			out[i] += " " + string(r.Reason)
		}
	}
	return out
}

func checkVerdicts(t testing.TB, rs []Result, want ...string) {
	t.Helper()
	got := verdicts(rs)
	if len(got) != len(want) {
		t.Fatalf("%d results %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("record %d (epoch %d seq %d): %s (%s), want %s", i, rs[i].Epoch, rs[i].Seq, got[i], rs[i].Detail, want[i])
		}
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// checkChains verifies with proof.VerifyChain every chain the ledger stores: the
// invariant that stored chains are always valid proof chains.
func checkChains(t testing.TB, c *Collector) {
	t.Helper()
	err := c.ledger.View(func(tx ledger.Tx) error {
		return tx.Devices(func(d *ledger.Device) error {
			return tx.Heads(d.ID, func(h *ledger.Head) error {
				var recs [][]byte
				err := tx.Records(d.ID, h.Epoch, 1, math.MaxUint64, func(seq uint64, r *ledger.Record) error {
					if seq != uint64(len(recs)+1) {
						return errors.New("stored seqs are not 1, 2, 3, ...")
					}
					recs = append(recs, r.Bytes)
					return nil
				})
				if err != nil {
					return err
				}
				chain, err := proof.VerifyChain(recs, nil)
				if err != nil {
					t.Errorf("device %s epoch %d: stored chain does not verify: %v", d.ID, h.Epoch, err)
					return nil
				}
				if chain.Seq != h.Seq || chain.Head != h.Hash || chain.LastDate != h.LastDate {
					t.Errorf("device %s epoch %d: head %d %s %s, the stored chain ends at %d %s %s",
						d.ID, h.Epoch, h.Seq, h.Hash, h.LastDate, chain.Seq, chain.Head, chain.LastDate)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// golden holds the vectors of testdata/proof.
type golden struct {
	maker  *proof.KeySigner
	device *proof.KeySigner
	chain  [][]byte // genesis and 31 days of October 2026
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	g := collectortest.LoadGolden(t, goldenDir)
	return &golden{maker: g.Maker, device: g.Device, chain: g.Chain}
}

func (g *golden) registry() Registry { return Registry{"amos-golden": g.maker.PublicKey()} }

// file reads a valid golden file of testdata/proof.
func (g *golden) file(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (g *golden) invalid(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "invalid", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
