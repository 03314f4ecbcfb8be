package collector

import (
	"fmt"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// TestDailyActive: a device counts once a date however many epochs report it, an
// inactive day does not count, nor a device left out of keep; the counts go by label.
func TestDailyActive(t *testing.T) {
	konka := newMaker(t, "konka")
	c := newCollector(t, ledger.NewMem(), &fixedClock{at(2027, time.March, 1, 12)}, registry(konka))
	feb := Month{Year: 2027, Month: time.February}
	issued := at(2026, time.October, 1, 0)
	mk := func(label string) *device {
		return newDevice(t, label, func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, label, issued) })
	}
	a, b, other := mk("a"), mk("b"), mk("other")
	date := func(d int) proof.Date { return proof.NewDate(2027, time.February, d) }
	// a: days 1-3 active in epoch 1, then days 2-4 again in epoch 2 (3 only idle there).
	ingest(t, c, a.genesis(), a.active(date(1)), a.active(date(2)), a.active(date(3)))
	ingest(t, c, a.genesis(), a.active(date(2)), a.day(date(3), 5, 0), a.active(date(4)))
	// b: day 28 active, day 27 idle.
	ingest(t, c, b.genesis(), b.day(date(27), 5, 0), b.active(date(28)))
	ingest(t, c, other.genesis(), other.active(date(1)))
	got, err := c.DailyActive(feb, map[proof.DeviceID]string{a.id(): "x", b.id(): "y"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"x": make([]int, 28), "y": make([]int, 28)}
	for _, d := range []int{1, 2, 3, 4} {
		want["x"][d-1] = 1
	}
	want["y"][27] = 1
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("DailyActive\n got %v\nwant %v", got, want)
	}
	if c.MinActiveDays() != DefaultEligibility().MinActiveDays {
		t.Errorf("MinActiveDays %d", c.MinActiveDays())
	}
}
