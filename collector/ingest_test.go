package collector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// expectedAnswer is one entry of testdata/proof/invalid/expected.json: the answer a
// collector gives to an invalid vector.
type expectedAnswer struct {
	File         string   `json:"file"`
	RefusedBy    string   `json:"refused_by"`
	DecoderError string   `json:"decoder_error"`
	HTTPStatus   int      `json:"http_status"`
	Results      []string `json:"results"`
}

func loadExpected(t testing.TB) []expectedAnswer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "invalid", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []expectedAnswer `json:"vectors"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	return doc.Vectors
}

// TestGoldenInvalidVectors sends every invalid vector of testdata/proof as
// invalid/expected.json says, to a fresh collector (clock 2026-11-05 12:00 +08:00), and
// checks the answer the file gives: a single record after the golden genesis (nothing
// may be linked), a chain batch on each ledger, a batch refused whole (nothing stored).
func TestGoldenInvalidVectors(t *testing.T) {
	g := loadGolden(t)
	count := map[string]int{}
	for _, e := range loadExpected(t) {
		name := strings.TrimSuffix(e.File, ".bin")
		count[e.RefusedBy]++
		t.Run(name, func(t *testing.T) {
			switch e.RefusedBy {
			case "record", "record-signature":
				if e.HTTPStatus != 200 || len(e.Results) != 1 {
					t.Fatalf("expected.json: a single record is answered 200 with one result: %+v", e)
				}
				c := newCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, g.registry())
				checkVerdicts(t, ingest(t, c, g.chain[0]), "accepted")
				rs := ingest(t, c, g.invalid(t, name))
				checkVerdicts(t, rs, e.Results...)
				if rs[0].Detail == "" {
					t.Error("no detail")
				}
				d, err := c.Device(g.device.PublicKey().DeviceID())
				if err != nil {
					t.Fatal(err)
				}
				if d.Epochs[0].HeadSeq != 1 || d.Forked {
					t.Errorf("after the vector: head seq %d, forked %v; want 1, false", d.Epochs[0].HeadSeq, d.Forked)
				}
			case "record-signature-p256":
				// After the golden P-256 genesis (kind 3), an activity record whose
				// signature is not the key's one canonical signature.
				c := newCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, g.registry())
				genesis := g.file(t, "genesis-p256.bin")
				checkVerdicts(t, ingest(t, c, genesis, g.file(t, "activity-p256-20261001.bin")), "accepted", "accepted")
				rs := ingest(t, c, g.invalid(t, name))
				checkVerdicts(t, rs, e.Results...)
				rec, err := proof.Decode(genesis)
				if err != nil {
					t.Fatal(err)
				}
				d, err := c.Device(rec.DeviceID)
				if err != nil {
					t.Fatal(err)
				}
				if !d.Attributed || d.Epochs[0].HeadSeq != 2 || d.Forked || d.KeyType != "p256" {
					t.Errorf("after the vector: %+v", d)
				}
			case "chain":
				ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
					c := newCollector(t, open(), &fixedClock{at(2026, time.November, 5, 12)}, g.registry())
					rc, err := c.IngestBatch(g.invalid(t, name))
					if err != nil {
						t.Fatal(err)
					}
					checkVerdicts(t, rc.Results, e.Results...)
					checkChains(t, c)
				})
			case "batch":
				c := newCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, g.registry())
				_, err := c.IngestBatch(g.invalid(t, name))
				if err == nil || !strings.Contains(err.Error(), e.DecoderError) || len(e.Results) != 0 {
					t.Errorf("refused with %v; expected.json says %q, results %v", err, e.DecoderError, e.Results)
				}
				err = c.ledger.View(func(tx ledger.Tx) error {
					return tx.Devices(func(d *ledger.Device) error { return errors.New("a device was stored") })
				})
				if err != nil {
					t.Error(err)
				}
			case "cert", "cert-signature":
				// A certificate is never sent alone: it travels in a genesis.
			default:
				t.Fatalf("expected.json: unknown refused_by %q", e.RefusedBy)
			}
		})
	}
	if count["record"]+count["record-signature"] < 20 || count["chain"] < 10 || count["batch"] < 6 {
		t.Errorf("vectors by check: %v", count)
	}
}

func TestGoldenChainAcceptedThenDuplicate(t *testing.T) {
	g := loadGolden(t)
	ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
		c := newCollector(t, open(), &fixedClock{at(2026, time.November, 5, 12)}, g.registry())
		checkVerdicts(t, ingest(t, c, g.chain...), repeat("accepted", 32)...)
		// A replay of the whole batch: every record is a duplicate.
		checkVerdicts(t, ingest(t, c, g.chain...), repeat("duplicate", 32)...)
		checkChains(t, c)
		d, err := c.Device(g.device.PublicKey().DeviceID())
		if err != nil {
			t.Fatal(err)
		}
		if !d.Attributed || d.MakerID != "amos-golden" || d.Epochs[0].HeadSeq != 32 || d.Epochs[0].Accepted != 31 || d.Epochs[0].ClockJumped != 1 || d.Epochs[0].ClockUnconfirmed != 1 {
			t.Errorf("device report %+v", d)
		}
		if len(d.Months) != 1 || d.Months[0].Month != "2026-10" || d.Months[0].ReportedDays != 31 {
			t.Errorf("months %+v", d.Months)
		}
	})
}

// TestDateVerdicts: future_date against the server's date in the record's zone, and
// stale beyond 13 months; both are linked so that the chain goes on.
func TestDateVerdicts(t *testing.T) {
	g := loadGolden(t)
	t.Run("future", func(t *testing.T) {
		clock := &fixedClock{at(2026, time.October, 15, 12)}
		c := newCollector(t, ledger.NewMem(), clock, g.registry())
		// October 15 is today: its record cannot have been minted yet (its minted_at,
		// the end of the day, is 12 hours ahead of the server's clock).
		want := append([]string{"accepted"}, repeat("accepted", 14)...)
		want = append(want, "rejected implausible_mint")
		want = append(want, repeat("rejected future_date", 16)...)
		checkVerdicts(t, ingest(t, c, g.chain...), want...)
		checkChains(t, c)
		// Verdicts are deterministic: a re-send gets the stored rejection again.
		clock.t = at(2026, time.November, 5, 12)
		checkVerdicts(t, ingest(t, c, g.chain[20]), "rejected future_date")
		d, _ := c.Device(g.device.PublicKey().DeviceID())
		if d.Epochs[0].HeadSeq != 32 || d.Epochs[0].Accepted != 14 || d.Epochs[0].FutureDate != 16 {
			t.Errorf("epoch %+v", d.Epochs[0])
		}
	})
	t.Run("zones", func(t *testing.T) {
		// 2026-10-15 20:00 UTC is 10-16 10:00 at UTC+14 and 10-15 08:00 at UTC-12.
		clock := &fixedClock{time.Date(2026, time.October, 15, 20, 0, 0, 0, time.UTC)}
		m := newMaker(t, "konka")
		c := newCollector(t, ledger.NewMem(), clock, registry(m))
		east := newDevice(t, "east", nil)
		east.offset = 14 * 60
		west := newDevice(t, "west", nil)
		west.offset = -12 * 60
		// In each zone: yesterday is accepted, today is not over (implausible_mint: its
		// minted_at is ahead of the server's clock), tomorrow is future_date.
		checkVerdicts(t, ingest(t, c, east.genesis(), east.active(oct(15)), east.active(oct(16)), east.active(oct(17)),
			west.genesis(), west.active(oct(14)), west.active(oct(15)), west.active(oct(16))),
			"accepted", "accepted", "rejected implausible_mint", "rejected future_date",
			"accepted", "accepted", "rejected implausible_mint", "rejected future_date")
	})
	t.Run("stale", func(t *testing.T) {
		// On 2027-11-15 the oldest date that is not stale is 2026-10-15.
		clock := &fixedClock{at(2027, time.November, 15, 12)}
		c := newCollector(t, ledger.NewMem(), clock, g.registry())
		// The dates that are not stale are late: October 2026 closed in November 2026.
		want := append([]string{"accepted"}, repeat("rejected stale", 14)...)
		want = append(want, repeat("rejected late", 17)...)
		checkVerdicts(t, ingest(t, c, g.chain...), want...)
		checkChains(t, c)
		if got := StaleBefore(proof.NewDate(2027, time.November, 15)); got != oct(15) {
			t.Errorf("StaleBefore = %s", got)
		}
	})
}

func TestGenesisCertificates(t *testing.T) {
	konka, tcl, ghost := newMaker(t, "konka"), newMaker(t, "tcl"), newMaker(t, "ghost")
	issued := at(2026, time.September, 1, 0)
	clock := &fixedClock{at(2026, time.November, 5, 12)}
	c := newCollector(t, ledger.NewMem(), clock, registry(konka, tcl))

	plain := newDevice(t, "plain", nil)
	unknown := newDevice(t, "unknown", func(k proof.Signer) *proof.Certificate { return ghost.certify(t, k, "u", issued) })
	forged := newDevice(t, "forged", func(k proof.Signer) *proof.Certificate {
		c := konka.certify(t, k, "f", issued)
		c.Sign(tcl.key) // konka's name, tcl's signature
		return c
	})
	checkVerdicts(t, ingest(t, c, plain.genesis(), plain.active(oct(1)), unknown.genesis(), unknown.active(oct(1)), forged.genesis(), forged.active(oct(1))),
		"accepted", "accepted", "rejected unknown_maker", "accepted", "rejected bad_cert", "accepted")
	for _, d := range []*device{plain, unknown, forged} {
		r, err := c.Device(d.id())
		if err != nil {
			t.Fatal(err)
		}
		if r.Attributed {
			t.Errorf("device %s is attributed: %+v", d.id(), r)
		}
	}

	// A key first certified by konka cannot be re-attributed to tcl or another serial
	// in a later epoch; the same attribution re-issued is fine; no certificate is fine.
	dev := newDevice(t, "dev", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "dev", issued) })
	checkVerdicts(t, ingest(t, c, dev.genesis(), dev.active(oct(1))), "accepted", "accepted")
	dev.cert = tcl.certify(t, dev.key, "dev", issued)
	checkVerdicts(t, ingest(t, c, dev.genesis(), dev.active(oct(2))), "rejected bad_cert", "accepted")
	dev.cert = konka.certify(t, dev.key, "other serial", issued)
	checkVerdicts(t, ingest(t, c, dev.genesis()), "rejected bad_cert")
	dev.cert = konka.certify(t, dev.key, "dev", issued.Add(time.Hour))
	checkVerdicts(t, ingest(t, c, dev.genesis()), "accepted")
	dev.cert = nil
	checkVerdicts(t, ingest(t, c, dev.genesis()), "accepted")
	r, _ := c.Device(dev.id())
	if !r.Attributed || r.MakerID != "konka" || r.CertEpoch != 1 || len(r.Epochs) != 5 || r.Epochs[1].Genesis != "bad_cert" {
		t.Errorf("report %+v", r)
	}

	// An unattributed device that later gets a certificate is credited from then on.
	plain.cert = tcl.certify(t, plain.key, "plain", issued)
	checkVerdicts(t, ingest(t, c, plain.genesis()), "accepted")
	if r, _ := c.Device(plain.id()); !r.Attributed || r.MakerID != "tcl" || r.CertEpoch != 2 {
		t.Errorf("report %+v", r)
	}
	checkChains(t, c)
}

// TestWithoutRegistry: offline verification without a configuration accepts
// certificates unchecked and credits none.
func TestWithoutRegistry(t *testing.T) {
	g := loadGolden(t)
	c := newCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, nil)
	rs := ingest(t, c, g.chain...)
	checkVerdicts(t, rs, repeat("accepted", 32)...)
	if !strings.Contains(rs[0].Detail, "not checked") {
		t.Errorf("detail %q", rs[0].Detail)
	}
	if r, _ := c.Device(g.device.PublicKey().DeviceID()); r.Attributed {
		t.Error("attributed without a registry")
	}
}

// TestSameKeyTwoDevices: two handsets with one cloned key mint their own geneses and
// days; the second history is a fork and the device is flagged.
func TestSameKeyTwoDevices(t *testing.T) {
	ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
		m := newMaker(t, "konka")
		c := newCollector(t, open(), &fixedClock{at(2026, time.November, 5, 12)}, registry(m))
		issued := at(2026, time.September, 1, 0)
		a := newDevice(t, "clone", func(k proof.Signer) *proof.Certificate { return m.certify(t, k, "clone", issued) })
		b := newDevice(t, "clone", func(k proof.Signer) *proof.Certificate { return m.certify(t, k, "clone", issued) })
		b.flags = proof.FlagClockUnconfirmed // so that b's bytes differ from a's
		checkVerdicts(t, ingest(t, c, a.genesis(), a.active(oct(1)), a.active(oct(2))), "accepted", "accepted", "accepted")
		checkVerdicts(t, ingest(t, c, b.genesis(), b.active(oct(1))), "rejected chain_fork", "rejected chain_fork")
		r, _ := c.Device(a.id())
		if !r.Forked || r.ForkEvidence != 2 {
			t.Errorf("forked %v evidence %d", r.Forked, r.ForkEvidence)
		}
		// The same evidence again is not counted twice.
		checkVerdicts(t, ingest(t, c, b.day(oct(2), 600, 3)), "rejected chain_fork")
		r, _ = c.Device(a.id())
		if r.ForkEvidence != 3 {
			t.Errorf("evidence %d", r.ForkEvidence)
		}
		// A record at head+1 built on the other history is a fork too.
		b.seq, b.prev = 3, proof.Hash{1}
		checkVerdicts(t, ingest(t, c, b.active(oct(9))), "rejected chain_fork")
		var kept int
		c.ledger.View(func(tx ledger.Tx) error {
			return tx.ForkEvidence(a.id(), func([]byte) error { kept++; return nil })
		})
		if kept != 4 {
			t.Errorf("%d fork evidence records kept", kept)
		}
		checkChains(t, c)
	})
}

// TestBatchBuildsOnItself: a genesis and days of the same device in one batch, two
// epochs interleaved, and a gap filled by a later batch.
func TestBatchBuildsOnItself(t *testing.T) {
	ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
		c := newCollector(t, open(), &fixedClock{at(2026, time.November, 5, 12)}, nil)
		d := newDevice(t, "d", nil)
		g1 := d.genesis()
		d1, d2, d3 := d.active(oct(1)), d.active(oct(2)), d.active(oct(3))
		checkVerdicts(t, ingest(t, c, g1, d1, d3), "accepted", "accepted", "retry chain_gap")
		checkVerdicts(t, ingest(t, c, d3, d2, d3), "retry chain_gap", "accepted", "accepted")
		// Epoch 2's days before its genesis: chain_gap, then everything in order.
		g2 := d.genesis()
		e1 := d.active(oct(3)) // the same date in another epoch counts once
		checkVerdicts(t, ingest(t, c, e1, g2, e1, d1), "retry chain_gap", "accepted", "accepted", "duplicate")
		r, _ := c.Device(d.id())
		if len(r.Months) != 1 || r.Months[0].ReportedDays != 3 {
			t.Errorf("months %+v", r.Months)
		}
		checkChains(t, c)
	})
}

// TestRejectedRecordsDoNotLink: a record refused before the chain check leaves the
// head where it was, and the right record still links afterwards.
func TestRejectedRecordsDoNotLink(t *testing.T) {
	c := newCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, nil)
	d := newDevice(t, "d", nil)
	g := d.genesis()
	good := d.active(oct(1))
	forged := append([]byte(nil), good...)
	forged[len(forged)-1] ^= 1
	garbage := append([]byte(nil), good[:100]...)
	checkVerdicts(t, ingest(t, c, g, forged, garbage, good), "accepted", "rejected bad_signature", "rejected bad_format", "accepted")
}

// TestResultEchoesHeader: results carry epoch and seq, even of undecodable records
// when the header is readable.
func TestResultEchoesHeader(t *testing.T) {
	c := newCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, nil)
	d := newDevice(t, "d", nil)
	g := d.genesis()
	bad := append([]byte(nil), d.active(oct(1))...)
	binary.BigEndian.PutUint16(bad[5:], 0x8000) // unknown flag
	rs := ingest(t, c, g, bad, []byte{1, 2, 3})
	if rs[0].Epoch != 1 || rs[0].Seq != 1 || rs[1].Epoch != 1 || rs[1].Seq != 2 || rs[2].Epoch != 0 || rs[2].Seq != 0 {
		t.Errorf("results %+v", rs)
	}
	if rs[1].DeviceID != d.id() {
		t.Error("device_id not echoed")
	}
}

// TestConcurrentIngest: many batches at once, each device's records in order within
// its own goroutine, plus two goroutines racing with a cloned key.
func TestConcurrentIngest(t *testing.T) {
	ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
		c := newCollector(t, open(), &fixedClock{at(2026, time.November, 5, 12)}, nil)
		const devices, days = 8, 20
		var wg sync.WaitGroup
		errs := make(chan string, devices*days)
		for i := range devices {
			d := newDevice(t, "conc "+string(rune('a'+i)), nil)
			recs := [][]byte{d.genesis()}
			for day := 1; day <= days; day++ {
				recs = append(recs, d.active(oct(day)))
			}
			wg.Go(func() {
				for j := 0; j < len(recs); j += 3 {
					rc, err := c.Ingest(recs[j:min(j+3, len(recs))])
					if err != nil {
						errs <- err.Error()
						return
					}
					for _, r := range rc.Results {
						if r.Status != StatusAccepted {
							errs <- r.String()
						}
					}
				}
			})
		}
		// A cloned key: two goroutines each upload their own genesis. Exactly one
		// wins; the other is a fork, whatever the interleaving.
		a, b := newDevice(t, "racer", nil), newDevice(t, "racer", nil)
		b.flags = proof.FlagDebuggable
		ga, gb := a.genesis(), b.genesis()
		var ra, rb []Result
		wg.Go(func() { ra = ingest(t, c, ga) })
		wg.Go(func() { rb = ingest(t, c, gb) })
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		got := []string{verdicts(ra)[0], verdicts(rb)[0]}
		if !(got[0] == "accepted" && got[1] == "rejected chain_fork" || got[1] == "accepted" && got[0] == "rejected chain_fork") {
			t.Errorf("racing clones: %v", got)
		}
		checkChains(t, c)
	})
}

// TestRestartLosesNothing: a ledger.Bolt closed mid-stream and reopened keeps every
// acknowledged record; the stream resumes and a replay of everything is duplicates.
func TestRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	clock := &fixedClock{at(2026, time.November, 5, 12)}
	devs := make([]*device, 5)
	var stream [][][]byte // batches
	for i := range devs {
		devs[i] = newDevice(t, "restart "+string(rune('a'+i)), nil)
	}
	for day := 0; day <= 30; day++ {
		var batch [][]byte
		for _, d := range devs {
			if day == 0 {
				batch = append(batch, d.genesis())
			} else {
				batch = append(batch, d.active(oct(day)))
			}
		}
		stream = append(stream, batch)
	}
	open := func() *Collector {
		l, err := ledger.OpenBolt(dir, ledger.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return newCollector(t, l, clock, nil)
	}
	c := open()
	for _, b := range stream[:12] {
		checkVerdicts(t, ingest(t, c, b...), repeat("accepted", len(b))...)
	}
	if err := c.ledger.Close(); err != nil {
		t.Fatal(err)
	}
	c = open()
	defer c.ledger.Close()
	for i, b := range stream {
		want := "accepted"
		if i < 12 {
			want = "duplicate"
		}
		checkVerdicts(t, ingest(t, c, b...), repeat(want, len(b))...)
	}
	for _, b := range stream {
		checkVerdicts(t, ingest(t, c, b...), repeat("duplicate", len(b))...)
	}
	for _, d := range devs {
		r, err := c.Device(d.id())
		if err != nil {
			t.Fatal(err)
		}
		if r.Epochs[0].HeadSeq != 31 || r.Epochs[0].Accepted != 30 {
			t.Errorf("device %s: %+v", d.id(), r.Epochs[0])
		}
	}
	checkChains(t, c)
}

// TestLedgerFailureStoresNothing: when the transaction fails, Ingest returns an error
// and none of the batch is stored.
func TestLedgerFailureStoresNothing(t *testing.T) {
	mem := ledger.NewMem()
	c := newCollector(t, &failingLedger{Mem: mem, failAfter: 3}, &fixedClock{at(2026, time.November, 5, 12)}, nil)
	d := newDevice(t, "d", nil)
	recs := [][]byte{d.genesis(), d.active(oct(1)), d.active(oct(2)), d.active(oct(3))}
	if _, err := c.Ingest(recs); err == nil {
		t.Fatal("no error from a failing ledger")
	}
	c2 := newCollector(t, mem, &fixedClock{at(2026, time.November, 5, 12)}, nil)
	if _, err := c2.Device(d.id()); !errors.Is(err, ErrNotFound) {
		t.Errorf("after a failed batch: %v, want ErrNotFound", err)
	}
	checkVerdicts(t, ingest(t, c2, recs...), repeat("accepted", 4)...)
}

// failingLedger fails every write after failAfter.
type failingLedger struct {
	*ledger.Mem
	failAfter int
}

func (f *failingLedger) Update(fn func(ledger.Tx) error) error {
	return f.Mem.Update(func(tx ledger.Tx) error {
		return fn(&failingTx{Tx: tx, left: &f.failAfter})
	})
}

type failingTx struct {
	ledger.Tx
	left *int
}

func (f *failingTx) PutRecord(id proof.DeviceID, epoch uint32, seq uint64, r *ledger.Record) error {
	if *f.left--; *f.left < 0 {
		return errors.New("disk full")
	}
	return f.Tx.PutRecord(id, epoch, seq, r)
}

// TestReadOnlyBolt: a collector on a ledger.Bolt opened read-only reports what it
// holds and refuses to ingest.
func TestReadOnlyBolt(t *testing.T) {
	dir := t.TempDir()
	l, err := ledger.OpenBolt(dir, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := newDevice(t, "d", nil)
	c := newCollector(t, l, &fixedClock{at(2026, time.November, 5, 12)}, nil)
	ingest(t, c, d.genesis())
	l.Close()
	ro, err := ledger.OpenBolt(dir, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	c = newCollector(t, ro, &fixedClock{at(2026, time.November, 5, 12)}, nil)
	if _, err := c.Device(d.id()); err != nil {
		t.Error(err)
	}
	if _, err := c.Ingest([][]byte{d.active(oct(1))}); err == nil {
		t.Error("ingest into a read-only ledger succeeded")
	}
}
