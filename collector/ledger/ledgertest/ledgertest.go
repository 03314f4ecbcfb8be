// Package ledgertest is the conformance suite every ledger backend passes: the same
// transactions give the same answers on bbolt, in memory and on PostgreSQL.
package ledgertest

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// Open returns a new, empty ledger for one subtest; the suite closes it.
type Open func(t *testing.T) ledger.Ledger

// Run runs every conformance test on ledgers from open.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, ledger.Ledger)
	}{
		{"empty", testEmpty},
		{"devices", testDevices},
		{"chains", testChains},
		{"nested reads", testNestedReads},
		{"rollback", testRollback},
		{"read your writes", testReadYourWrites},
		{"read-only view", testReadOnlyView},
		{"payer state", testPayerState},
		{"fork evidence", testForks},
		{"concurrent updates", testConcurrent},
		{"month aggregates", testDays},
		{"prefetch", testPrefetch},
		{"concurrent prefetched updates", testConcurrentPrefetch},
		{"forked scans", testForkedScans},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := open(t)
			defer l.Close()
			tc.fn(t, l)
		})
	}
}

// device returns a device with a fresh Ed25519 key (n seeds it).
func device(n int) *ledger.Device {
	seed := make([]byte, ed25519.SeedSize)
	binary.BigEndian.PutUint64(seed, uint64(n)+1)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	k := proof.Ed25519Key([32]byte(pub))
	return &ledger.Device{ID: k.DeviceID(), PublicKey: k, FirstSeen: 1_800_000_000 + int64(n)}
}

// record returns stored record bytes that name (id, epoch, seq): the ledger keeps them
// as given, so they need only the size of a record.
func record(id proof.DeviceID, epoch uint32, seq uint64) []byte {
	b := make([]byte, proof.HeaderSize+proof.SignatureSize+8)
	copy(b, id[:])
	binary.BigEndian.PutUint32(b[32:], epoch)
	binary.BigEndian.PutUint64(b[36:], seq)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testEmpty(t *testing.T, l ledger.Ledger) {
	must(t, l.View(func(tx ledger.Tx) error {
		id := device(0).ID
		if d, err := tx.Device(id); d != nil || err != nil {
			t.Errorf("Device: %v, %v", d, err)
		}
		if h, err := tx.Head(id, 1); h != nil || err != nil {
			t.Errorf("Head: %v, %v", h, err)
		}
		if r, err := tx.Record(id, 1, 2); r != nil || err != nil {
			t.Errorf("Record: %v, %v", r, err)
		}
		n := 0
		count := func(...any) error { n++; return nil }
		must(t, tx.Devices(func(*ledger.Device) error { return count() }))
		must(t, tx.Heads(id, func(*ledger.Head) error { return count() }))
		must(t, tx.Sales(func(*ledger.Sale) error { return count() }))
		must(t, tx.Late(202602, func(proof.DeviceID, uint32) error { return count() }))
		if n != 0 {
			t.Errorf("an empty ledger listed %d things", n)
		}
		return nil
	}))
}

func testDevices(t *testing.T, l ledger.Ledger) {
	var want []*ledger.Device
	for i := range 600 { // more than one page of a paged scan
		d := device(i)
		if i%3 == 0 {
			d.Attestation = &ledger.Attestation{Accepted: true, SecurityLevel: "StrongBox", VerifiedAt: 1_800_000_000, Epoch: 1, Serials: []string{"1f"}}
		}
		want = append(want, d)
	}
	must(t, l.Update(func(tx ledger.Tx) error {
		for _, d := range want {
			if err := tx.PutDevice(d); err != nil {
				return err
			}
		}
		return nil
	}))
	slices.SortFunc(want, func(a, b *ledger.Device) int { return slices.Compare(a.ID[:], b.ID[:]) })
	must(t, l.View(func(tx ledger.Tx) error {
		var got []*ledger.Device
		must(t, tx.Devices(func(d *ledger.Device) error { got = append(got, d); return nil }))
		if len(got) != len(want) {
			t.Fatalf("Devices listed %d, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || got[i].PublicKey != want[i].PublicKey || got[i].FirstSeen != want[i].FirstSeen || (got[i].Attestation == nil) != (want[i].Attestation == nil) {
				t.Fatalf("device %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
		d, err := tx.Device(want[7].ID)
		if err != nil || d == nil || d.FirstSeen != want[7].FirstSeen {
			t.Errorf("Device: %+v, %v", d, err)
		}
		return nil
	}))
}

func testChains(t *testing.T, l ledger.Ledger) {
	id := device(1).ID
	epochs := []uint32{1, 2, 7}
	const n = 700
	must(t, l.Update(func(tx ledger.Tx) error {
		for _, e := range epochs {
			for seq := uint64(1); seq <= n; seq++ {
				if err := tx.PutRecord(id, e, seq, &ledger.Record{Verdict: ledger.Verdict(seq % 4), Bytes: record(id, e, seq)}); err != nil {
					return err
				}
			}
			h := &ledger.Head{DeviceID: id, Epoch: e, Seq: n, Hash: proof.Hash{byte(e)}, LastDate: proof.NewDate(2028, time.February, 29), Counts: ledger.Counts{Accepted: 30}, Updated: 1_800_000_000}
			if err := tx.PutHead(h); err != nil {
				return err
			}
		}
		return nil
	}))
	must(t, l.View(func(tx ledger.Tx) error {
		var got []uint32
		must(t, tx.Heads(id, func(h *ledger.Head) error {
			got = append(got, h.Epoch)
			if h.Seq != n || h.Hash != (proof.Hash{byte(h.Epoch)}) || h.Counts.Accepted != 30 {
				t.Errorf("head %+v", h)
			}
			return nil
		}))
		if !slices.Equal(got, epochs) {
			t.Errorf("Heads listed epochs %v, want %v", got, epochs)
		}
		var seqs []uint64
		must(t, tx.Records(id, 2, 5, 600, func(seq uint64, r *ledger.Record) error {
			if r.Verdict != ledger.Verdict(seq%4) || binary.BigEndian.Uint64(r.Bytes[36:]) != seq {
				t.Errorf("record %d: %+v", seq, r)
			}
			seqs = append(seqs, seq)
			return nil
		}))
		if len(seqs) != 596 || seqs[0] != 5 || seqs[595] != 600 {
			t.Errorf("Records(5..600) gave %d records", len(seqs))
		}
		if r, err := tx.Record(id, 7, n+1); r != nil || err != nil {
			t.Errorf("Record above the head: %v, %v", r, err)
		}
		return nil
	}))
}

// testNestedReads: a scan's callback reads the transaction (the collector's claims do).
func testNestedReads(t *testing.T, l ledger.Ledger) {
	must(t, l.Update(func(tx ledger.Tx) error {
		for i := range 300 {
			d := device(i)
			must(t, tx.PutDevice(d))
			must(t, tx.PutRecord(d.ID, 1, 1, &ledger.Record{Bytes: record(d.ID, 1, 1)}))
			must(t, tx.PutHead(&ledger.Head{DeviceID: d.ID, Epoch: 1, Seq: 1, Counts: ledger.Counts{}}))
		}
		return nil
	}))
	must(t, l.View(func(tx ledger.Tx) error {
		n := 0
		return tx.Devices(func(d *ledger.Device) error {
			return tx.Heads(d.ID, func(h *ledger.Head) error {
				return tx.Records(d.ID, h.Epoch, 1, h.Seq, func(uint64, *ledger.Record) error {
					if again, err := tx.Device(d.ID); err != nil || again == nil {
						return fmt.Errorf("device %s inside its own scan: %v", d.ID, err)
					}
					n++
					return nil
				})
			})
		})
	}))
}

var errAbort = errors.New("abort")

func testRollback(t *testing.T, l ledger.Ledger) {
	d := device(3)
	err := l.Update(func(tx ledger.Tx) error {
		must(t, tx.PutDevice(d))
		must(t, tx.PutSale(&ledger.Sale{SerialTag: [32]byte{1}, MakerID: "konka", SoldAt: proof.NewDate(2027, time.January, 1), Channel: "jd", RegisteredAt: 1_800_000_000}))
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	must(t, l.View(func(tx ledger.Tx) error {
		if got, err := tx.Device(d.ID); got != nil || err != nil {
			t.Errorf("a device written by a failed Update is there: %v, %v", got, err)
		}
		if s, err := tx.Sale([32]byte{1}); s != nil || err != nil {
			t.Errorf("a sale written by a failed Update is there: %v, %v", s, err)
		}
		return nil
	}))
}

func testReadYourWrites(t *testing.T, l ledger.Ledger) {
	must(t, l.Update(func(tx ledger.Tx) error {
		d := device(4)
		must(t, tx.PutDevice(d))
		if got, err := tx.Device(d.ID); err != nil || got == nil || got.FirstSeen != d.FirstSeen {
			t.Errorf("Device after PutDevice: %v, %v", got, err)
		}
		d.FirstSeen++
		must(t, tx.PutDevice(d))
		n := 0
		must(t, tx.Devices(func(got *ledger.Device) error {
			if got.FirstSeen != d.FirstSeen {
				t.Errorf("scan sees first_seen %d, want the last write %d", got.FirstSeen, d.FirstSeen)
			}
			n++
			return nil
		}))
		if n != 1 {
			t.Errorf("scan listed %d devices, want 1", n)
		}
		return nil
	}))
}

func testReadOnlyView(t *testing.T, l ledger.Ledger) {
	err := l.View(func(tx ledger.Tx) error { return tx.PutDevice(device(5)) })
	if !errors.Is(err, ledger.ErrReadOnly) {
		t.Errorf("PutDevice in a View: %v, want ErrReadOnly", err)
	}
}

func testPayerState(t *testing.T, l ledger.Ledger) {
	id := device(6).ID
	sale := &ledger.Sale{SerialTag: [32]byte{31: 1}, MakerID: "konka", SoldAt: proof.NewDate(2028, time.February, 29), Channel: "taobao", RegisteredAt: 1_800_000_000}
	must(t, l.Update(func(tx ledger.Tx) error {
		must(t, tx.PutSale(sale))
		must(t, tx.PutClosedMonth(&ledger.ClosedMonth{Month: 202802, ClosedAt: 1_805_000_000, Claim: []byte("{}")}))
		for i, rel := range []bool{true, false} {
			d := &ledger.Decision{Month: 202802, DeviceID: id, Release: rel, At: int64(1_804_000_000 + i), By: "wang", Why: "receipt checked"}
			must(t, tx.AddDecision(d))
			if d.N != uint16(i) {
				t.Errorf("decision %d got N %d", i, d.N)
			}
		}
		must(t, tx.AddLate(202802, id))
		return tx.AddLate(202802, id)
	}))
	err := l.Update(func(tx ledger.Tx) error {
		return tx.PutClosedMonth(&ledger.ClosedMonth{Month: 202802, ClosedAt: 1, Claim: []byte("{}")})
	})
	if !errors.Is(err, ledger.ErrExists) {
		t.Errorf("closing a closed month again: %v, want ErrExists", err)
	}
	must(t, l.View(func(tx ledger.Tx) error {
		s, err := tx.Sale(sale.SerialTag)
		if err != nil || s == nil || *s != *sale {
			t.Errorf("Sale: %+v, %v", s, err)
		}
		c, err := tx.ClosedMonth(202802)
		if err != nil || c == nil || c.ClosedAt != 1_805_000_000 {
			t.Errorf("ClosedMonth: %+v, %v", c, err)
		}
		if c, err := tx.ClosedMonth(202803); c != nil || err != nil {
			t.Errorf("ClosedMonth of an open month: %+v, %v", c, err)
		}
		var ds []bool
		must(t, tx.Decisions(202802, func(d *ledger.Decision) error { ds = append(ds, d.Release); return nil }))
		if !slices.Equal(ds, []bool{true, false}) {
			t.Errorf("Decisions: %v", ds)
		}
		late := map[proof.DeviceID]uint32{}
		must(t, tx.Late(202802, func(id proof.DeviceID, n uint32) error { late[id] = n; return nil }))
		if len(late) != 1 || late[id] != 2 {
			t.Errorf("Late: %v", late)
		}
		return nil
	}))
}

func testForks(t *testing.T, l ledger.Ledger) {
	id := device(7).ID
	must(t, l.Update(func(tx ledger.Tx) error {
		for i, want := range []bool{true, true, false} {
			rec := record(id, 1, uint64(min(i, 1)+2))
			added, err := tx.AddForkEvidence(id, rec)
			if err != nil || added != want {
				t.Errorf("AddForkEvidence %d: %v, %v; want %v", i, added, err, want)
			}
		}
		return nil
	}))
	must(t, l.View(func(tx ledger.Tx) error {
		n := 0
		must(t, tx.ForkEvidence(id, func([]byte) error { n++; return nil }))
		if n != 2 {
			t.Errorf("ForkEvidence listed %d, want 2", n)
		}
		return nil
	}))
}

// testConcurrent: concurrent read-modify-write transactions on one key lose no update:
// the ledger serializes them, or aborts and runs them again.
func testConcurrent(t *testing.T, l ledger.Ledger) {
	const workers, each = 4, 25
	id := device(8).ID
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				if err := l.Update(func(tx ledger.Tx) error { return tx.AddLate(202612, id) }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	must(t, l.View(func(tx ledger.Tx) error {
		return tx.Late(202612, func(_ proof.DeviceID, n uint32) error {
			if n != workers*each {
				t.Errorf("%d concurrent increments left %d", workers*each, n)
			}
			return nil
		})
	}))
}

// testDays: the month aggregates list each device-epoch's days in the order added, by
// month, device and epoch; a date not after the last one is refused.
func testDays(t *testing.T, l ledger.Ledger) {
	devs := []proof.DeviceID{device(10).ID, device(11).ID}
	day := func(date proof.Date, n int) *ledger.Day {
		return &ledger.Day{MintedAt: 1_830_000_000 + int64(n), Activity: proof.ActivityDay{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: uint32(600 + n), Unlocks: 2, ScreenOns: 3, ActiveHours: 1 << 10}}
	}
	must(t, l.Update(func(tx ledger.Tx) error {
		for i, id := range devs {
			for _, epoch := range []uint32{2, 1} {
				// February 2028 has 29 days; the last two also reach March.
				for d := 27; d <= 31; d++ {
					tm := time.Date(2028, time.February, d, 0, 0, 0, 0, time.UTC) // 30 and 31 roll into March
					date := proof.NewDate(tm.Year(), tm.Month(), tm.Day())
					must(t, tx.AddDay(id, epoch, day(date, i*100+d)))
				}
			}
		}
		if err := tx.AddDay(devs[0], 1, day(proof.NewDate(2028, time.March, 1), 0)); err == nil {
			t.Error("a date not after the epoch's last one was added")
		}
		return nil
	}))
	must(t, l.View(func(tx ledger.Tx) error {
		var got []string
		must(t, tx.MonthDays(202802, func(id proof.DeviceID, epoch uint32, days []ledger.Day) error {
			var dates []string
			for _, d := range days {
				dates = append(dates, d.Activity.Date.String())
			}
			got = append(got, fmt.Sprint(id == devs[0], epoch, dates))
			return nil
		}))
		first := slices.Compare(devs[0][:], devs[1][:]) < 0
		want := []string{
			fmt.Sprint(first, 1, []string{"2028-02-27", "2028-02-28", "2028-02-29"}),
			fmt.Sprint(first, 2, []string{"2028-02-27", "2028-02-28", "2028-02-29"}),
			fmt.Sprint(!first, 1, []string{"2028-02-27", "2028-02-28", "2028-02-29"}),
			fmt.Sprint(!first, 2, []string{"2028-02-27", "2028-02-28", "2028-02-29"}),
		}
		if !slices.Equal(got, want) {
			t.Errorf("MonthDays(2028-02):\n%v\nwant\n%v", got, want)
		}
		// The same, decoded in batches by several workers (a database streams them).
		var mu sync.Mutex
		var batched []string
		must(t, tx.MonthDayBatches(202802, 3, func(first int, runs []ledger.DayRun) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range runs {
				var dates []string
				for _, d := range r.Days {
					dates = append(dates, d.Activity.Date.String())
				}
				batched = append(batched, fmt.Sprint(r.ID == devs[0], r.Epoch, dates))
			}
			return nil
		}))
		slices.Sort(batched)
		sorted := slices.Sorted(slices.Values(want))
		if !slices.Equal(batched, sorted) {
			t.Errorf("MonthDayBatches(2028-02):\n%v\nwant\n%v", batched, sorted)
		}
		n := 0
		must(t, tx.DeviceMonthDays(202803, devs[1], func(epoch uint32, days []ledger.Day) error {
			n += len(days)
			if days[0].Activity.InteractiveSeconds != 600+100+30 || days[0].MintedAt != 1_830_000_000+130 {
				t.Errorf("day %+v", days[0])
			}
			return nil
		}))
		if n != 4 {
			t.Errorf("DeviceMonthDays(2028-03) listed %d days, want 4", n)
		}
		return nil
	}))
}

// testPrefetch: lookups after Prefetch answer what they answer without it, writes of
// the transaction included, and a key prefetched as absent can be written.
func testPrefetch(t *testing.T, l ledger.Ledger) {
	a, b := device(20), device(21)
	const m = 202902 // February 2029: 28 days
	day := func(d int) *ledger.Day {
		return &ledger.Day{MintedAt: 1_870_000_000 + int64(d), Activity: proof.ActivityDay{Date: proof.NewDate(2029, time.February, d), UTCOffsetMinutes: 480, InteractiveSeconds: 600, Unlocks: 2, ScreenOns: 3, ActiveHours: 1}}
	}
	must(t, l.Update(func(tx ledger.Tx) error {
		must(t, tx.PutDevice(a))
		must(t, tx.PutHead(&ledger.Head{DeviceID: a.ID, Epoch: 1, Seq: 5, LastDate: proof.NewDate(2029, time.February, 27)}))
		return tx.AddDay(a.ID, 1, day(27))
	}))
	must(t, l.Update(func(tx ledger.Tx) error {
		must(t, tx.Prefetch([]ledger.ChainMonth{{ID: a.ID, Epoch: 1, Month: m}, {ID: b.ID, Epoch: 1, Month: m}, {ID: a.ID, Epoch: 1, Month: m}}))
		if d, err := tx.Device(a.ID); err != nil || d == nil || d.FirstSeen != a.FirstSeen {
			t.Errorf("prefetched device: %+v, %v", d, err)
		}
		if h, err := tx.Head(a.ID, 1); err != nil || h == nil || h.Seq != 5 {
			t.Errorf("prefetched head: %+v, %v", h, err)
		}
		if d, err := tx.Device(b.ID); err != nil || d != nil {
			t.Errorf("device prefetched as absent: %+v, %v", d, err)
		}
		must(t, tx.PutDevice(b))
		if d, err := tx.Device(b.ID); err != nil || d == nil {
			t.Errorf("device written after its prefetch: %+v, %v", d, err)
		}
		must(t, tx.AddDay(a.ID, 1, day(28)))
		must(t, tx.AddDay(b.ID, 1, day(1)))
		// Prefetching again after the writes changes nothing either.
		must(t, tx.Prefetch([]ledger.ChainMonth{{ID: b.ID, Epoch: 1, Month: m}}))
		if d, err := tx.Device(b.ID); err != nil || d == nil {
			t.Errorf("device written, then prefetched: %+v, %v", d, err)
		}
		return nil
	}))
	must(t, l.View(func(tx ledger.Tx) error {
		got := map[bool]int{}
		must(t, tx.MonthDays(m, func(id proof.DeviceID, _ uint32, days []ledger.Day) error {
			got[id == a.ID] += len(days)
			return nil
		}))
		if got[true] != 2 || got[false] != 1 {
			t.Errorf("days of a and b: %d and %d, want 2 and 1", got[true], got[false])
		}
		if d, err := tx.Device(b.ID); err != nil || d == nil {
			t.Errorf("device b after commit: %+v, %v", d, err)
		}
		return nil
	}))
}

// testConcurrentPrefetch: read-modify-write transactions that read a head through
// Prefetch lose no update when they run at once (a database must see the prefetched
// reads as reads of the transaction).
func testConcurrentPrefetch(t *testing.T, l ledger.Ledger) {
	const workers, each = 4, 20
	id := device(22).ID
	must(t, l.Update(func(tx ledger.Tx) error { return tx.PutHead(&ledger.Head{DeviceID: id, Epoch: 1, Seq: 1}) }))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				err := l.Update(func(tx ledger.Tx) error {
					if err := tx.Prefetch([]ledger.ChainMonth{{ID: id, Epoch: 1}}); err != nil {
						return err
					}
					h, err := tx.Head(id, 1)
					if err != nil {
						return err
					}
					h.Seq++
					return tx.PutHead(h)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	must(t, l.View(func(tx ledger.Tx) error {
		h, err := tx.Head(id, 1)
		if err != nil || h == nil || h.Seq != 1+workers*each {
			t.Errorf("%d concurrent increments left %+v, %v", workers*each, h, err)
		}
		return nil
	}))
}

// testForkedScans: the days, the devices and the sales scanned at once, the days in a
// View and the others in forks of it (when the backend has them), see one snapshot: a
// device, a day and a sale committed after the View began are invisible to all three.
// An Update has no fork.
func testForkedScans(t *testing.T, l ledger.Ledger) {
	const month = 202802
	add := func(n int) error {
		return l.Update(func(tx ledger.Tx) error {
			d := device(30 + n)
			if err := tx.PutDevice(d); err != nil {
				return err
			}
			date := proof.NewDate(2028, time.February, 1+n)
			if err := tx.AddDay(d.ID, 1, &ledger.Day{MintedAt: 1_830_000_000, Activity: proof.ActivityDay{Date: date, InteractiveSeconds: 600}}); err != nil {
				return err
			}
			return tx.PutSale(&ledger.Sale{SerialTag: [32]byte{byte(n)}, MakerID: "konka", SoldAt: date, Channel: "jd", RegisteredAt: 1_800_000_000})
		})
	}
	for n := range 3 {
		must(t, add(n))
	}
	must(t, l.Update(func(tx ledger.Tx) error {
		fork, end, err := tx.Fork()
		if fork != nil || end != nil || err != nil {
			t.Errorf("Fork of an Update: %v, %v", fork, err)
		}
		return nil
	}))
	forked := false
	must(t, l.View(func(tx ledger.Tx) error {
		// The View's snapshot is taken by its first read. A backend without forks
		// may hold a lock for the View: the writes are then left out.
		if _, err := tx.Device(device(30).ID); err != nil {
			return err
		}
		devTx, salesTx := tx, tx
		f1, end1, err := tx.Fork()
		must(t, err)
		if f1 != nil {
			defer end1()
			devTx, forked = f1, true
			must(t, add(3)) // committed after the View and its first fork began
		}
		f2, end2, err := tx.Fork()
		must(t, err)
		if (f1 == nil) != (f2 == nil) {
			t.Errorf("one Fork gave a Tx, the other %v", f2)
		}
		if f2 != nil {
			defer end2()
			salesTx = f2
			must(t, add(4)) // committed after the forks began
		}
		var days, devs, sales int
		var wg sync.WaitGroup
		errs := make([]error, 3)
		scans := []func(){
			func() {
				errs[0] = tx.MonthDayBatches(month, 1, func(_ int, runs []ledger.DayRun) error {
					days += len(runs)
					return nil
				})
			},
			func() {
				errs[1] = devTx.DeviceBatches(1, func(_ int, ds []ledger.Device) error { devs += len(ds); return nil })
			},
			func() {
				errs[2] = salesTx.SaleBatches(1, func(_ int, ss []ledger.Sale) error { sales += len(ss); return nil })
			},
		}
		if f1 != nil && f2 != nil {
			for _, scan := range scans {
				wg.Go(scan)
			}
			wg.Wait()
		} else {
			for _, scan := range scans {
				scan()
			}
		}
		for _, err := range errs {
			must(t, err)
		}
		if days != 3 || devs != 3 || sales != 3 {
			t.Errorf("scans of one snapshot saw %d device-epochs of days, %d devices, %d sales; want 3 each", days, devs, sales)
		}
		return nil
	}))
	must(t, l.View(func(tx ledger.Tx) error {
		n := 0
		must(t, tx.SaleBatches(1, func(_ int, ss []ledger.Sale) error { n += len(ss); return nil }))
		// The devices in two ranges are the devices (one per sale).
		var ids, all []proof.DeviceID
		for _, r := range [][2][]byte{{nil, {0x80}}, {{0x80}, nil}} {
			must(t, tx.DeviceRangeBatches(r[0], r[1], 1, func(_ int, ds []ledger.Device) error {
				for _, d := range ds {
					ids = append(ids, d.ID)
				}
				return nil
			}))
		}
		must(t, tx.DeviceBatches(1, func(_ int, ds []ledger.Device) error {
			for _, d := range ds {
				all = append(all, d.ID)
			}
			return nil
		}))
		if !slices.Equal(ids, all) || len(all) != n {
			t.Errorf("DeviceRangeBatches of two halves listed %d devices, DeviceBatches %d, want %d", len(ids), len(all), n)
		}
		// The month's days in two ranges are its days.
		var dayIDs, allDays []proof.DeviceID
		for _, r := range [][2][]byte{{nil, {0x80}}, {{0x80}, nil}} {
			first := -1
			must(t, tx.MonthDayRangeBatches(month, r[0], r[1], 1, func(f int, runs []ledger.DayRun) error {
				if first < 0 && f != 0 {
					t.Errorf("MonthDayRangeBatches(%x, %x) began at device %d, want 0", r[0], r[1], f)
				}
				first = f
				for _, run := range runs {
					dayIDs = append(dayIDs, run.ID)
				}
				return nil
			}))
		}
		must(t, tx.MonthDayBatches(month, 1, func(_ int, runs []ledger.DayRun) error {
			for _, run := range runs {
				allDays = append(allDays, run.ID)
			}
			return nil
		}))
		if !slices.Equal(dayIDs, allDays) || len(allDays) != n {
			t.Errorf("MonthDayRangeBatches of two halves listed %d device-epochs, MonthDayBatches %d, want %d", len(dayIDs), len(allDays), n)
		}
		lower := 0
		for _, id := range allDays {
			if id[0] < 0x80 {
				lower++
			}
		}
		if lower == 0 || lower == len(allDays) {
			t.Errorf("all %d devices of the month in one half: the halves are not both tested", len(allDays))
		}
		if !forked {
			n += 2 // no writes during the first View
		}
		if n != 5 {
			t.Errorf("a later View saw %d sales, want 5", n)
		}
		return nil
	}))
}
