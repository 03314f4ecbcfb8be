package agent

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
)

// threeYears is how far the lying server's clock runs ahead (the real date is in 2026,
// the lie in 2029).
const threeYears = int64(3 * 365 * 24 * 3600)

// lyingCollector is a collector whose server_time is the rig's clock plus what lie
// holds, and whose answers say retry chain_gap while hold is set (so that the
// record stays queued and every Flush gets an answer).
func lyingCollector(t *testing.T, r **rig) (*testenv.Collector, *atomic.Int64, *atomic.Bool) {
	col := testenv.StartCollector(t)
	var lie atomic.Int64
	var hold atomic.Bool
	col.SetNow(func() int64 { return (*r).clock.Now().Unix() + lie.Load() })
	col.SetVerdict(func(*proof.Record) (string, string) {
		if hold.Load() {
			return "retry", "chain_gap"
		}
		return "", ""
	})
	return col, &lie, &hold
}

func (r *rig) status() (date proof.Date, trusted bool) {
	r.t.Helper()
	st, err := r.a.Status(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return proof.Date(st.TodayDate), st.ClockTrusted
}

func (r *rig) flush() {
	r.t.Helper()
	if _, _, err := r.a.Flush(context.Background()); err != nil {
		r.t.Logf("flush: %v", err)
	}
}

// TestServerTimeThatLiesOnce: one answer three years ahead changes nothing: the
// device keeps the real date, before and after a restart, and mints real dates.
func TestServerTimeThatLiesOnce(t *testing.T) {
	var r *rig
	col, lie, _ := lyingCollector(t, &r)
	r = newRig(t, morning, power, withCollector(col))
	r.start()
	r.waitMinted()
	r.waitTrace("sync") // the genesis; its answer agrees with the wall clock
	if d, ok := r.status(); d != 20261124 || !ok {
		t.Fatalf("today %s, clock trusted %v; want 2026-11-24, trusted", d, ok)
	}
	r.at("09:00:00")
	r.use(time.Minute)
	lie.Store(threeYears)
	r.at("00:00:00")
	if a, _ := r.waitMinted().Activity(); a.Date != 20261124 {
		t.Fatalf("minted %s at midnight, want 2026-11-24", a.Date)
	}
	r.waitTraceAny("sync") // the lying answer
	lie.Store(0)
	if d, _ := r.status(); d != 20261125 {
		t.Fatalf("after one answer of 2029 today is %s, want 2026-11-25", d)
	}
	r.stop()
	r.start()
	if d, _ := r.status(); d != 20261125 {
		t.Fatalf("after a restart today is %s, want 2026-11-25", d)
	}
	r.at("09:00:00")
	r.use(time.Minute)
	r.at("00:00:00")
	rec := r.waitMinted()
	if a, _ := rec.Activity(); a.Date != 20261125 || rec.Epoch != 1 || rec.Flags&proof.FlagClockJumped != 0 {
		t.Fatalf("minted %s epoch %d flags %#x, want 2026-11-25 in epoch 1 without clock_jumped", a.Date, rec.Epoch, rec.Flags)
	}
	r.waitTraceAny("sync")
	if _, n := col.Counts(); n != 3 {
		t.Fatalf("the collector holds %d records, want the genesis and two days", n)
	}
}

// TestServerTimeThatLiesForAnHour: a server three years (less half an hour) ahead for
// an hour, confirmed by a second answer 20 minutes after the first, is believed; the
// device even mints the lie's date at the lie's midnight. The first true answer after
// the hour undoes it without a restart: the wrong tally is dropped, the chain goes on in
// epoch 2 (genesis reason clock_corrected), and the real date is counted again.
func TestServerTimeThatLiesForAnHour(t *testing.T) {
	var r *rig
	col, lie, hold := lyingCollector(t, &r)
	r = newRig(t, morning, power, withCollector(col))
	r.start()
	r.waitMinted()
	r.waitTrace("sync")
	r.at("09:00:00")
	r.use(time.Minute)

	lie.Store(threeYears - 1800)
	hold.Store(true)
	r.at("00:00:00") // 2026-11-25 00:00; the lie reads 2029-11-23 23:30
	if a, _ := r.waitMinted().Activity(); a.Date != 20261124 {
		t.Fatalf("minted %s, want 2026-11-24", a.Date)
	}
	r.waitTraceAny("sync") // held: one answer is not enough
	if d, _ := r.status(); d != 20261125 {
		t.Fatalf("after the first lie today is %s, want 2026-11-25", d)
	}
	r.advance(20 * time.Minute)
	r.flush() // confirmed: an answer 20 minutes after the first agrees with it
	if d, ok := r.status(); d != 20291123 || !ok {
		t.Fatalf("after the confirming lie today is %s (trusted %v), want 2029-11-23", d, ok)
	}
	r.use(time.Minute)               // 00:21-00:22, counted on 2029-11-23
	r.clock.Advance(9 * time.Minute) // the lie's midnight
	rec := r.waitMinted()
	if a, _ := rec.Activity(); a.Date != 20291123 {
		t.Fatalf("minted %s at the lie's midnight, want 2029-11-23", a.Date)
	}
	r.use(2 * time.Minute) // counted on 2029-11-24, lost when the lie is undone

	r.advance(time.Hour - 32*time.Minute) // 01:00: the lie ends
	lie.Store(0)
	hold.Store(false)
	r.flush() // the true answer agrees with the wall clock: believed at once
	if d, ok := r.status(); d != 20261125 || !ok {
		t.Fatalf("after the true answer today is %s (trusted %v), want 2026-11-25", d, ok)
	}
	r.at("09:00:00")
	r.use(time.Minute)
	r.at("00:00:00")
	g := r.waitMinted()
	if gen, ok := g.Genesis(); !ok || g.Epoch != 2 || gen.Reason != proof.ReasonClockCorrected {
		t.Fatalf("first record after the correction: epoch %d %+v, want the genesis of epoch 2, reason clock_corrected", g.Epoch, g.Body)
	}
	rec = r.waitMinted()
	a, _ := rec.Activity()
	if a.Date != 20261125 || rec.Epoch != 2 || a.InteractiveSeconds != 30 || rec.Flags&proof.FlagClockJumped == 0 {
		t.Fatalf("minted %+v epoch %d flags %#x, want 2026-11-25 in epoch 2: 30 s, clock_jumped", a, rec.Epoch, rec.Flags)
	}
	r.waitTraceAny("sync")
	r.stop()
	r.start()
	if d, _ := r.status(); d != 20261126 {
		t.Fatalf("after a restart today is %s, want 2026-11-26", d)
	}
}

// TestServerTimeLieAcrossAReboot: the lie is believed, the phone used on the lie's date,
// and the phone reboots before any true answer. The new boot has no believed time and a
// tally dated three years after its wall clock: with nothing queued no answer would come
// until 2029, so the tally is closed at start; its upload brings a true server_time, and
// the dates are undone as without the reboot.
func TestServerTimeLieAcrossAReboot(t *testing.T) {
	var r *rig
	col, lie, hold := lyingCollector(t, &r)
	r = newRig(t, morning, power, withCollector(col))
	r.start()
	r.waitMinted()
	r.waitTrace("sync")
	r.at("09:00:00")
	r.use(time.Minute)
	lie.Store(threeYears)
	hold.Store(true)
	r.at("00:00:00") // 2026-11-24 is minted and stays queued: its answers lie
	r.waitMinted()
	r.waitTraceAny("sync") // held
	r.advance(20 * time.Minute)
	r.flush() // confirmed
	if d, _ := r.status(); d != 20291124 {
		t.Fatalf("today is %s after the confirmed lie, want 2029-11-24", d)
	}
	r.use(time.Minute) // counted on 2029-11-24
	r.stop()

	// A new boot: CLOCK_BOOTTIME starts again, another boot_id, the wall clock is right.
	wall := r.clock.Now().Add(time.Minute)
	r.clock = newFakeClock(wall)
	copy(r.clock.bootID[:], "fake-boot-id-002")
	lie.Store(0)
	hold.Store(false)
	r.start()
	rec := r.waitMinted()
	if a, ok := rec.Activity(); !ok || a.Date != 20291124 || rec.Epoch != 1 {
		t.Fatalf("minted at start: epoch %d %+v, want the doubtful 2029-11-24 closed in epoch 1", rec.Epoch, rec.Body)
	}
	r.advance(3 * time.Minute) // the backoff of the held answers survived the reboot
	r.waitTraceAny("sync")     // its answer: true, and the wall clock agrees
	if d, ok := r.status(); d != 20261125 || !ok {
		t.Fatalf("after the true answer today is %s (trusted %v), want 2026-11-25", d, ok)
	}
	r.at("09:00:00")
	r.use(time.Minute)
	r.at("00:00:00")
	if g := r.waitMinted(); g.Epoch != 2 || g.Kind() != proof.KindGenesis {
		t.Fatalf("after the correction: epoch %d kind %d, want the genesis of epoch 2", g.Epoch, g.Kind())
	}
	if a, _ := r.waitMinted().Activity(); a == nil || a.Date != 20261125 {
		t.Fatalf("the real date is not minted in epoch 2: %+v", a)
	}
}
