package collector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// uncertifiedFleet returns n new devices without a certificate and their geneses,
// signed in parallel. Their keys are P-256 (kind 3 geneses): its assembly keeps the
// 51,200 keys of the flood affordable under the race detector, where Ed25519's Go
// code is several times slower. The budget does not look at the key type.
func uncertifiedFleet(t testing.TB, prefix string, n int) ([]*device, [][]byte) {
	t.Helper()
	devs, recs := make([]*device, n), make([][]byte, n)
	var wg sync.WaitGroup
	w := runtime.GOMAXPROCS(0)
	for g := range w {
		wg.Go(func() {
			for i := g; i < n; i += w {
				devs[i] = &device{t: t, key: p256Signer(t, fmt.Sprintf("%s %d", prefix, i)), offset: cst}
				recs[i] = devs[i].genesis()
			}
		})
	}
	wg.Wait()
	return devs, recs
}

// storedDevices counts the devices, epochs and records the ledger holds.
func storedDevices(t testing.TB, c *Collector) (devices, epochs, records int) {
	t.Helper()
	err := c.ledger.View(func(tx ledger.Tx) error {
		return tx.Devices(func(d *ledger.Device) error {
			devices++
			return tx.Heads(d.ID, func(h *ledger.Head) error {
				epochs++
				return tx.Records(d.ID, h.Epoch, 1, h.Seq, func(uint64, *ledger.Record) error {
					records++
					return nil
				})
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return devices, epochs, records
}

func budgetCollector(t testing.TB, l ledger.Ledger, clock *fixedClock, reg Registry, perHour int) *Collector {
	t.Helper()
	c, err := New(l, Options{Makers: reg, Now: clock.now, UncertifiedDevicesPerHour: perHour})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUncertifiedFloodBounded is issue 18's attack: one client uploads 51,200 geneses of
// fresh uncertified keys, 256 a batch, over 16 s of the collector's clock, to a
// collector on a bbolt ledger with the default budget (1,000 an hour). Only the budget
// is stored: 1,000 devices, plus the 4 that 16 s refill; every other genesis is
// answered retry uncertified_limit and nothing of it is stored.
func TestUncertifiedFloodBounded(t *testing.T) {
	const total, batch, span = 51200, proof.MaxBatchRecords, 16 * time.Second
	dir := t.TempDir()
	l, err := ledger.OpenBolt(dir, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	start := at(2026, time.November, 5, 12)
	clock := &fixedClock{start}
	c := budgetCollector(t, l, clock, Registry{"konka": newMaker(t, "konka").key.PublicKey()}, 0)
	_, recs := uncertifiedFleet(t, "flood", total)

	counts := map[string]int{}
	batches := total / batch
	for b := range batches {
		clock.t = start.Add(span * time.Duration(b) / time.Duration(batches))
		for _, r := range ingest(t, c, recs[b*batch:(b+1)*batch]...) {
			counts[verdicts([]Result{r})[0]]++
		}
	}
	want := DefaultUncertifiedDevicesPerHour + int(clock.t.Sub(start)*DefaultUncertifiedDevicesPerHour/time.Hour)
	if want != 1004 {
		t.Fatalf("test arithmetic: want %d", want)
	}
	if counts["accepted"] != want || counts["retry uncertified_limit"] != total-want || len(counts) != 2 {
		t.Errorf("results %v, want %d accepted, the rest retry uncertified_limit", counts, want)
	}
	devices, epochs, records := storedDevices(t, c)
	if devices != want || epochs != want || records != want {
		t.Errorf("ledger holds %d devices, %d epochs, %d records; want %d of each", devices, epochs, records, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "collector.db")); err == nil {
		t.Logf("collector.db: %d KiB after %d uncertified geneses", fi.Size()>>10, total)
	}
	checkChains(t, c)
}

// TestUncertifiedBudget: each kind of genesis that no registered maker certified (none,
// an unknown maker, a certificate its maker did not sign) is admitted for a new device
// only within the budget; beyond it the genesis and the records after it in the batch
// are answered retry uncertified_limit and nothing is stored. A certified device, and
// a new epoch of a device already in the ledger, are admitted while the budget is
// spent. When the clock has refilled it, the refused records sent again are linked as
// they would have been.
func TestUncertifiedBudget(t *testing.T) {
	konka, tcl, ghost := newMaker(t, "konka"), newMaker(t, "tcl"), newMaker(t, "ghost")
	issued := at(2026, time.September, 1, 0)
	for _, tc := range []struct {
		name    string
		cert    func(label string) func(proof.Signer) *proof.Certificate
		genesis string // the verdict of an admitted genesis
	}{
		{"no certificate", func(string) func(proof.Signer) *proof.Certificate { return nil }, "accepted"},
		{"unknown maker", func(l string) func(proof.Signer) *proof.Certificate {
			return func(k proof.Signer) *proof.Certificate { return ghost.certify(t, k, l, issued) }
		}, "rejected unknown_maker"},
		{"bad certificate", func(l string) func(proof.Signer) *proof.Certificate {
			return func(k proof.Signer) *proof.Certificate {
				c := konka.certify(t, k, l, issued)
				c.Sign(tcl.key) // konka's name, tcl's signature
				return c
			}
		}, "rejected bad_cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
				clock := &fixedClock{at(2026, time.November, 5, 12)}
				c := budgetCollector(t, open(), clock, registry(konka, tcl), 2)
				var devs []*device
				for i := range 4 {
					l := fmt.Sprintf("%s %d", tc.name, i)
					devs = append(devs, newDevice(t, l, tc.cert(l)))
				}
				certified := newDevice(t, "certified", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "certified", issued) })

				// Two admitted, the third and fourth deferred with their days; the
				// certified device after them is accepted.
				var batch [][]byte
				for _, d := range devs[:4] {
					batch = append(batch, d.genesis(), d.active(oct(1)), d.active(oct(2)))
				}
				batch = append(batch, certified.genesis(), certified.active(oct(1)))
				deferred := repeat("retry uncertified_limit", 3)
				want := append([]string{tc.genesis, "accepted", "accepted", tc.genesis, "accepted", "accepted"}, deferred...)
				want = append(append(want, deferred...), "accepted", "accepted")
				rs := ingest(t, c, batch...)
				checkVerdicts(t, rs, want...)
				if rs[6].Detail == "" {
					t.Error("no detail on a deferred genesis")
				}
				for _, d := range devs[2:] {
					if _, err := c.Device(d.id()); !errors.Is(err, ErrNotFound) {
						t.Errorf("deferred device %s: %v, want ErrNotFound", d.id(), err)
					}
				}

				// Spent: a device already in the ledger starts a new epoch, uncertified.
				devs[0].cert = nil
				checkVerdicts(t, ingest(t, c, devs[0].genesis(), devs[0].active(oct(3))), "accepted", "accepted")

				// Half an hour refills one token: the third device's records, sent again
				// unchanged, are linked; the fourth still waits.
				clock.t = clock.t.Add(30 * time.Minute)
				retried := append(append([][]byte{}, batch[6:9]...), batch[9:12]...)
				checkVerdicts(t, ingest(t, c, retried...), append([]string{tc.genesis, "accepted", "accepted"}, deferred...)...)
				if r, err := c.Device(devs[2].id()); err != nil || r.Epochs[0].Accepted != 2 {
					t.Errorf("retried device: %+v %v", r, err)
				}
				if devices, _, _ := storedDevices(t, c); devices != 4 {
					t.Errorf("%d devices stored, want 4 (3 admitted, 1 certified)", devices)
				}
				checkChains(t, c)
			})
		})
	}
}

// TestUncertifiedBudgetRefill: the bucket holds the hourly budget and refills
// continuously on the collector's clock: one token every hour/budget, never more
// than the budget however long the clock runs, and nothing when it goes back.
func TestUncertifiedBudgetRefill(t *testing.T) {
	start := at(2026, time.November, 5, 12)
	clock := &fixedClock{start}
	c := budgetCollector(t, ledger.NewMem(), clock, nil, 10) // one token every 6 minutes
	_, recs := uncertifiedFleet(t, "refill", 40)
	next := 0
	send := func(n int) (accepted int) {
		t.Helper()
		rs := ingest(t, c, recs[next:next+n]...)
		for _, r := range rs {
			if r.Status == StatusAccepted {
				accepted++
				next++
			}
		}
		return accepted
	}
	for _, step := range []struct {
		at       time.Duration
		send     int
		accepted int
	}{
		{0, 12, 10},                         // full at start
		{6*time.Minute - time.Second, 2, 0}, // not quite one token back
		{6 * time.Minute, 2, 1},             // one
		{-time.Hour, 2, 0},                  // a clock that goes back refills nothing
		{6*time.Minute + time.Second, 2, 0}, // nor is the hour counted twice
		{12 * time.Minute, 2, 1},            // the next one
		{100 * time.Hour, 15, 10},           // never more than the budget
		{100*time.Hour + 30*time.Minute, 9, 5},
	} {
		clock.t = start.Add(step.at)
		if got := send(step.send); got != step.accepted {
			t.Errorf("at +%v: %d of %d accepted, want %d", step.at, got, step.send, step.accepted)
		}
	}
	if devices, _, _ := storedDevices(t, c); devices != next {
		t.Errorf("%d devices stored, %d accepted", devices, next)
	}
}

// TestUncertifiedNone: a budget of 0 (the configuration's 0, the Options' negative)
// admits no new uncertified device, ever; certified ones are admitted.
func TestUncertifiedNone(t *testing.T) {
	konka := newMaker(t, "konka")
	cfg, err := ParseConfig("c.json", []byte(`{"allow_insecure_http": true, "limits": {"uncertified_devices_per_hour": 0}}`))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Options()
	if o.UncertifiedDevicesPerHour >= 0 {
		t.Fatalf("Options from a configuration with 0: %d, want negative", o.UncertifiedDevicesPerHour)
	}
	clock := &fixedClock{at(2026, time.November, 5, 12)}
	o.Makers, o.Now = registry(konka), clock.now
	c, err := New(ledger.NewMem(), o)
	if err != nil {
		t.Fatal(err)
	}
	plain := newDevice(t, "plain", nil)
	certified := newDevice(t, "certified", func(k proof.Signer) *proof.Certificate {
		return konka.certify(t, k, "certified", at(2026, time.September, 1, 0))
	})
	checkVerdicts(t, ingest(t, c, plain.genesis(), certified.genesis()), "retry uncertified_limit", "accepted")
	clock.t = clock.t.Add(1000 * time.Hour)
	plain.epoch, plain.seq = 0, 0
	checkVerdicts(t, ingest(t, c, plain.genesis()), "retry uncertified_limit")

	for _, tc := range []struct {
		json string
		want int
	}{
		{`{"allow_insecure_http": true}`, DefaultUncertifiedDevicesPerHour},
		{`{"allow_insecure_http": true, "limits": {"uncertified_devices_per_hour": 7}}`, 7},
	} {
		cfg, err := ParseConfig("c.json", []byte(tc.json))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Options().UncertifiedDevicesPerHour; got != tc.want {
			t.Errorf("%s: Options().UncertifiedDevicesPerHour %d, want %d", tc.json, got, tc.want)
		}
	}
	if _, err := New(ledger.NewMem(), Options{UncertifiedDevicesPerHour: MaxUncertifiedDevicesPerHour + 1}); !errors.Is(err, ErrConfig) {
		t.Errorf("a budget above the maximum: %v, want ErrConfig", err)
	}
}

// TestUncertifiedBudgetFailedCommit: a transaction that fails spends none of the
// budget: the batch sent again is admitted.
func TestUncertifiedBudgetFailedCommit(t *testing.T) {
	mem := ledger.NewMem()
	fl := &failingLedger{Mem: mem, failAfter: 0}
	clock := &fixedClock{at(2026, time.November, 5, 12)}
	c := budgetCollector(t, fl, clock, nil, 1)
	d := newDevice(t, "d", nil)
	recs := [][]byte{d.genesis(), d.active(oct(1))}
	if _, err := c.Ingest(recs); err == nil {
		t.Fatal("no error from a failing ledger")
	}
	fl.failAfter = 1 << 30
	checkVerdicts(t, ingest(t, c, recs...), "accepted", "accepted")
}

// TestUncertifiedBudgetConcurrent: batches ingested at once, whose transactions are
// shared (group commit), admit exactly the budget between them.
func TestUncertifiedBudgetConcurrent(t *testing.T) {
	const clients, batches, per, budget = 8, 4, 64, 100
	c := budgetCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, nil, budget)
	_, recs := uncertifiedFleet(t, "concurrent", clients*batches*per)
	var mu sync.Mutex
	accepted := 0
	var wg sync.WaitGroup
	for g := range clients {
		wg.Go(func() {
			for b := range batches {
				i := (g*batches + b) * per
				rc, err := c.Ingest(recs[i : i+per])
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range rc.Results {
					if r.Status == StatusAccepted {
						accepted++
					} else if r.Reason != ReasonUncertifiedLimit {
						t.Errorf("result %v", r)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if devices, _, _ := storedDevices(t, c); accepted != budget || devices != budget {
		t.Errorf("%d accepted, %d stored; want %d", accepted, devices, budget)
	}
}
