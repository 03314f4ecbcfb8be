package signals

import (
	"crypto/sha256"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

const utc8 = 8 * 60

func devID(n int) proof.DeviceID { return sha256.Sum256(fmt.Appendf(nil, "device %d", n)) }

func serial(n int) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "serial %d", n)) }

// dates returns the dates of a month.
func dates(y int, m time.Month) []proof.Date {
	var out []proof.Date
	for d := proof.NewDate(y, m, 1); d.Month() == m; d = d.Next() {
		out = append(out, d)
	}
	return out
}

// hoursFor returns an active_hours mask that can hold secs: the first ceil(secs/3600)
// hours, at least one.
func hoursFor(secs uint32) uint32 {
	n := max(1, (secs+3599)/3600)
	return 1<<n - 1
}

// mk returns a record of date in the zone offset, minted 10 s after the date's end; it is
// active by the default eligibility (120 s, 1 unlock).
func mk(date proof.Date, offset int16, secs uint32, unlocks, screens uint16) Day {
	return Day{
		Epoch:    1,
		MintedAt: date.Next().Start(int(offset)).Unix() + 10,
		Activity: proof.ActivityDay{Date: date, UTCOffsetMinutes: offset, InteractiveSeconds: secs,
			Unlocks: unlocks, ScreenOns: screens, ActiveHours: hoursFor(secs)},
		Active: secs >= 120 && unlocks >= 1,
	}
}

// tuples hands out counters that no other call of the same tuples shares.
type tuples struct{ n uint32 }

func (t *tuples) day(date proof.Date) Day {
	t.n++
	return mk(date, utc8, 200+t.n, 5, 7)
}

// plain returns device n, attributed to maker "m" with its own serial tag, with one
// unique record per date.
func (t *tuples) plain(n int, ds []proof.Date) Device {
	d := Device{ID: devID(n), MakerID: "m", SerialTag: serial(n)}
	for _, date := range ds {
		d.Days = append(d.Days, t.day(date))
	}
	return d
}

func signalsOf(r *Report, devs []Device) map[int][]Signal {
	idx := map[proof.DeviceID]int{}
	for i, d := range devs {
		idx[d.ID] = i
	}
	out := map[int][]Signal{}
	for id, fs := range r.Devices {
		for _, f := range fs {
			out[idx[id]] = append(out[idx[id]], f.Signal)
		}
	}
	return out
}

func TestThresholds(t *testing.T) {
	feb27, feb28, nov, oct := dates(2027, 2), dates(2028, 2), dates(2026, 11), dates(2026, 10)
	yearEnd := append(dates(2026, 12)[28:], dates(2027, 1)[:3]...) // 12-29 .. 01-03

	// sharePair: devices 0 and 1 share the counters of `shared` dates; the date after is
	// shared too but inactive (it must not count); device 2 is unrelated.
	sharePair := func(shared int) func(*tuples) []Device {
		return func(tp *tuples) []Device {
			a, b, c := tp.plain(0, feb27[10:]), tp.plain(1, feb27[10:]), tp.plain(2, feb27)
			for k := range shared {
				b.Days[k].Activity = a.Days[k].Activity
			}
			idle := mk(feb27[10+shared], utc8, 100, 3, 3) // 100 s: not active
			a.Days[shared], b.Days[shared] = idle, idle
			return []Device{a, b, c}
		}
	}
	// hub: device 0 shares one tuple with `size-1` other devices on each of `n` dates,
	// never with the same ones twice.
	hub := func(size, n int) func(*tuples) []Device {
		return func(tp *tuples) []Device {
			devs := []Device{tp.plain(0, feb28)}
			for k := range n {
				for range size - 1 {
					d := tp.plain(len(devs), feb28[:5])
					d.Days[k].Activity = devs[0].Days[k].Activity
					devs = append(devs, d)
				}
			}
			return devs
		}
	}
	// twoEpochs: devices 0 and 1 share the counters of 2 dates, one of them reported
	// again in a second epoch with other counters that they also share: still 2 dates.
	twoEpochs := func(tp *tuples) []Device {
		devs := sharePair(2)(tp)
		for k := range 2 {
			again := devs[0].Days[1]
			again.Epoch, again.Activity.Unlocks = 2, 99
			devs[k].Days = append(devs[k].Days, again)
		}
		return devs
	}
	// hubTwice: hub(20, 2), and the hub's first date reported again in a second epoch
	// with other counters, shared by 19 more devices: still 2 mass dates.
	hubTwice := func(tp *tuples) []Device {
		devs := hub(20, 2)(tp)
		again := tp.day(devs[0].Days[0].Activity.Date)
		again.Epoch, again.MintedAt = 2, again.MintedAt+7200
		devs[0].Days = append(devs[0].Days, again)
		for range 19 {
			d := tp.plain(len(devs), dates(2028, 2)[:5])
			d.Days[0].Activity = again.Activity
			devs = append(devs, d)
		}
		return devs
	}
	saturate := func(n int) func(*tuples) []Device {
		return func(tp *tuples) []Device {
			d := tp.plain(0, nov)
			for k := range n {
				d.Days[k].Activity.ActiveHours = proof.AllHours
				d.Days[k].Activity.InteractiveSeconds = 57600 + uint32(k)
			}
			// neither of these is saturated: 23 hours, or one second short
			d.Days[20].Activity.ActiveHours, d.Days[20].Activity.InteractiveSeconds = proof.AllHours>>1, 80000
			d.Days[21].Activity.ActiveHours, d.Days[21].Activity.InteractiveSeconds = proof.AllHours, 57599
			return []Device{d}
		}
	}
	// burst: the records of 10-05, 10-06 and 10-07 are minted on 10-08 at +0, +30 min and
	// +span; the last in a second epoch.
	burst := func(span time.Duration) func(*tuples) []Device {
		return func(tp *tuples) []Device {
			d := tp.plain(0, oct[:7])
			e := tp.plain(0, oct[6:])
			for k := range e.Days {
				e.Days[k].Epoch = 2
			}
			d.Days = append(d.Days[:6], e.Days...)
			at := oct[7].Start(utc8)
			for k, off := range []time.Duration{0, 30 * time.Minute, span} {
				d.Days[4+k].MintedAt = at.Add(off).Unix()
			}
			return []Device{d}
		}
	}
	// backfill: the first `late` records of the turn of the year (UTC-5) are minted 36 h
	// and one second after their date's end, the next one exactly 36 h after.
	backfill := func(late int) func(*tuples) []Device {
		return func(tp *tuples) []Device {
			d := tp.plain(0, yearEnd)
			for k := range d.Days {
				d.Days[k] = mk(yearEnd[k], -300, 300+uint32(k), 4, 4)
				end := yearEnd[k].Next().Start(-300).Unix()
				switch {
				case k < late:
					d.Days[k].MintedAt = end + 36*3600 + 1
				case k == late:
					d.Days[k].MintedAt = end + 36*3600
				}
			}
			return []Device{d}
		}
	}
	// replay: epoch 2 reports again the last n dates of epoch 1 (2027-02).
	replay := func(n int) func(*tuples) []Device {
		return func(tp *tuples) []Device {
			d := tp.plain(0, feb27[:10])
			e := tp.plain(0, feb27[10-n:15])
			for k := range e.Days {
				e.Days[k].Epoch = 2
			}
			d.Days = append(d.Days, e.Days...)
			return []Device{d}
		}
	}
	// thrice: one date reported by three epochs, saturated in two of them, and one other
	// saturated date: one replayed date, two saturated days.
	thrice := func(tp *tuples) []Device {
		d := tp.plain(0, feb27[:10])
		for ep := range uint32(2) {
			e := tp.plain(0, feb27[9:12])
			for k := range e.Days {
				e.Days[k].Epoch = 2 + ep
				e.Days[k].MintedAt += int64(ep+1) * 7200 // no burst
			}
			d.Days = append(d.Days, e.Days[:1+ep*2]...)
		}
		for _, k := range []int{0, 10, 11} {
			d.Days[k].Activity.ActiveHours, d.Days[k].Activity.InteractiveSeconds = proof.AllHours, 60000
		}
		return []Device{d}
	}
	// sameCounters: epoch 2 reports the last 3 dates of epoch 1 again with the same
	// counters: the device shares nothing with another device.
	sameCounters := func(tp *tuples) []Device {
		d := tp.plain(0, feb27[:10])
		for _, again := range slices.Clone(d.Days[7:]) {
			again.Epoch, again.MintedAt = 2, again.MintedAt+7200
			d.Days = append(d.Days, again)
		}
		return []Device{d}
	}
	// keys: n device keys of serial tag 7 with an active date, and one without.
	keys := func(n int) func(*tuples) []Device {
		return func(tp *tuples) []Device {
			var devs []Device
			for k := range n + 1 {
				d := tp.plain(k, nov[:12])
				d.SerialTag = serial(7)
				devs = append(devs, d)
			}
			for k := range devs[n].Days {
				devs[n].Days[k].Active = false
			}
			return devs
		}
	}
	unattributed := func(tp *tuples) []Device {
		devs := sharePair(3)(tp)
		for k := range devs {
			devs[k].MakerID, devs[k].SerialTag = "", [32]byte{}
			for j := range devs[k].Days[10:] { // a burst: records minted a minute apart
				devs[k].Days[10+j].MintedAt = devs[k].Days[10].MintedAt + int64(j)*60
			}
		}
		return devs // three unattributed keys with active days: no many_keys
	}

	for _, tc := range []struct {
		name string
		devs func(*tuples) []Device
		want map[int][]Signal
	}{
		{"clone pair 3 dates", sharePair(3), map[int][]Signal{0: {Clone}, 1: {Clone}}},
		{"clone pair 2 dates", sharePair(2), map[int][]Signal{}},
		{"clone pair 2 dates, one in two epochs", twoEpochs, map[int][]Signal{}},
		{"clone mass 20 on 3 dates", hub(20, 3), map[int][]Signal{0: {Clone}}},
		{"clone mass 19 on 3 dates", hub(19, 3), map[int][]Signal{}},
		{"clone mass 20 on 2 dates", hub(20, 2), map[int][]Signal{}},
		{"clone mass 20 on 2 dates, one in two epochs", hubTwice, map[int][]Signal{}},
		{"saturated 3", saturate(3), map[int][]Signal{0: {Saturated}}},
		{"saturated 2", saturate(2), map[int][]Signal{}},
		{"burst 3 in 60 min", burst(time.Hour), map[int][]Signal{0: {Burst}}},
		{"burst 3 in 61 min", burst(61 * time.Minute), map[int][]Signal{}},
		{"backfill 3", backfill(3), map[int][]Signal{0: {Backfill}}},
		{"backfill 2", backfill(2), map[int][]Signal{}},
		{"replay 2 dates", replay(2), map[int][]Signal{0: {Replay}}},
		{"replay 1 date", replay(1), map[int][]Signal{}},
		{"replay of 3 dates with the same counters", sameCounters, map[int][]Signal{0: {Replay}}},
		{"one date in three epochs", thrice, map[int][]Signal{}},
		{"many keys 3", keys(3), map[int][]Signal{0: {ManyKeys}, 1: {ManyKeys}, 2: {ManyKeys}}},
		{"many keys 2", keys(2), map[int][]Signal{}},
		{"unattributed", unattributed, map[int][]Signal{0: {Burst, Clone}, 1: {Burst, Clone}, 2: {Burst}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs := tc.devs(&tuples{})
			r := Analyze(devs, DefaultThresholds())
			if got := signalsOf(r, devs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("signals %v, want %v; report %+v", got, tc.want, r.Devices)
			}
			for _, fs := range r.Devices {
				for _, f := range fs {
					if !strings.Contains(f.Detail, "(threshold ") {
						t.Errorf("detail %q names no threshold", f.Detail)
					}
				}
			}
		})
	}
}

func TestDetails(t *testing.T) {
	tp := &tuples{}
	ds := dates(2026, 10)
	a, b := tp.plain(0, ds), tp.plain(1, ds)
	for k := range b.Days {
		b.Days[k].Activity = a.Days[k].Activity
	}
	r := Analyze([]Device{a, b}, DefaultThresholds())
	want := fmt.Sprintf("shares identical counters with device %s… on 31 dates (threshold 3)", b.ID.String()[:8])
	if got := r.Devices[a.ID]; len(got) != 1 || got[0] != (Finding{Clone, want}) {
		t.Fatalf("findings %+v, want %q", got, want)
	}
	d := tp.plain(2, ds[:5])
	for k := range d.Days {
		d.Days[k].MintedAt = d.Days[0].MintedAt + int64(k)
	}
	r = Analyze([]Device{d}, DefaultThresholds())
	if got := r.Devices[d.ID]; len(got) != 1 || got[0].Detail != "5 records minted within 1h (threshold 3)" {
		t.Fatalf("findings %+v", got)
	}
}

// honest returns n devices of an honest fleet in a month of ds, minted at each date's
// local midnight (UTC+8) + 0..50 s, attributed to maker(i) with their own serial tags.
func honest(rng *rand.Rand, first, n int, ds []proof.Date, maker func(int) string) []Device {
	devs := make([]Device, n)
	for i := range devs {
		d := &devs[i]
		d.ID, d.MakerID, d.SerialTag = devID(first+i), maker(first+i), serial(first+i)
		k := 1 + rng.IntN(11)
		if rng.IntN(100) < 76 {
			k = 12 + rng.IntN(20)
		}
		k = min(k, len(ds))
		pick := rng.Perm(len(ds))[:k]
		slices.Sort(pick)
		for _, p := range pick {
			secs := uint32(120 + rng.IntN(14281))
			unlocks, screens := uint16(1+rng.IntN(120)), uint16(1+rng.IntN(150))
			if rng.IntN(10) == 0 { // a record that is not an active day
				secs, unlocks = uint32(rng.IntN(120)), uint16(rng.IntN(2))
			}
			h := min(24, int(max(1, (secs+3599)/3600))+rng.IntN(6))
			var hours uint32
			for bits.OnesCount32(hours) < h {
				hours |= 1 << rng.IntN(24)
			}
			if h == 24 {
				hours = proof.AllHours >> 1 // an honest phone sleeps some hour
			}
			d.Days = append(d.Days, Day{
				Epoch:    1,
				MintedAt: ds[p].Next().Start(utc8).Unix() + int64(rng.IntN(51)),
				Activity: proof.ActivityDay{Date: ds[p], UTCOffsetMinutes: utc8, InteractiveSeconds: secs,
					Unlocks: unlocks, ScreenOns: screens, ActiveHours: hours},
				Active: secs >= 120 && unlocks >= 1,
			})
		}
	}
	return devs
}

func roundRobin(i int) string { return fmt.Sprintf("maker%d", i%5) }

func TestHonestFleet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	devs := honest(rng, 0, 10000, dates(2026, 10), roundRobin)
	start := time.Now()
	r := Analyze(devs, DefaultThresholds())
	t.Logf("10,000 honest devices: %d with findings, in %s", len(r.Devices), time.Since(start))
	if len(r.Devices) > len(devs)/1000 {
		t.Errorf("%d honest devices with findings (at most 0.1%%): %v", len(r.Devices), r.Devices)
	}
	if len(r.Makers) != 5 {
		t.Fatalf("makers %+v", r.Makers)
	}
	for _, m := range r.Makers {
		t.Logf("%+v", m)
		if m.Flagged || m.Devices != 2000 || m.Threshold != 0.25 {
			t.Errorf("honest maker %+v", m)
		}
	}
}

// farmDevice returns a device with 1,440 unlocks on every date of ds, and random seconds.
func farmDevice(rng *rand.Rand, n int, maker string, ds []proof.Date) Device {
	d := Device{ID: devID(n), MakerID: maker, SerialTag: serial(n)}
	for _, date := range ds {
		d.Days = append(d.Days, mk(date, utc8, 3600+uint32(rng.IntN(40000)), 1440, 1440))
	}
	return d
}

func TestFarm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ds := dates(2026, 10)
	devs := honest(rng, 0, 300, ds, roundRobin)
	farm := mk(ds[0], utc8, 5000, 40, 50)
	for i := range 30 {
		d := Device{ID: devID(1000 + i), MakerID: "farm", SerialTag: serial(1000 + i)}
		for _, date := range ds {
			farm.Activity.Date, farm.MintedAt = date, date.Next().Start(utc8).Unix()+3
			d.Days = append(d.Days, farm)
		}
		devs = append(devs, d)
	}
	r := Analyze(devs, DefaultThresholds())
	for i, d := range devs {
		fs := r.Devices[d.ID]
		if isFarm := i >= 300; isFarm != (len(fs) == 1 && fs[0].Signal == Clone) {
			t.Errorf("device %d (farm %v): findings %+v", i, isFarm, fs)
		}
	}
	if fs := r.Devices[devs[300].ID]; len(fs) == 1 && !strings.Contains(fs[0].Detail, "20 or more devices on 31 dates") {
		t.Errorf("farm detail %q", fs[0].Detail)
	}
}

func TestMakerDistance(t *testing.T) {
	ds := dates(2026, 10)
	others := func(i int) string { return []string{"a", "b"}[i%2] }
	farm := func(rng *rand.Rand, first, n int, maker string) (devs []Device) {
		for i := range n {
			devs = append(devs, farmDevice(rng, first+i, maker, ds))
		}
		return devs
	}
	for _, tc := range []struct {
		name string
		devs func(*rand.Rand) []Device
		want map[string]bool // flagged, of the makers checked
	}{
		{"farm maker", func(rng *rand.Rand) []Device {
			devs := honest(rng, 0, 1000, ds, others)
			devs = append(devs, farm(rng, 2000, 300, "farmco")...)
			return append(devs, farm(rng, 5000, 50, "tiny")...) // too few devices to be flagged
		}, map[string]bool{"farmco": true, "tiny": false}},
		{"maker with a farm among its honest devices", func(rng *rand.Rand) []Device {
			devs := honest(rng, 0, 1000, ds, others)
			devs = append(devs, honest(rng, 3000, 300, ds, func(int) string { return "mixco" })...)
			return append(devs, farm(rng, 4000, 200, "mixco")...)
		}, map[string]bool{"mixco": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Analyze(tc.devs(rand.New(rand.NewPCG(5, 6))), DefaultThresholds())
			if !slices.IsSortedFunc(r.Makers, func(x, y MakerDistance) int { return strings.Compare(x.MakerID, y.MakerID) }) {
				t.Fatalf("makers not sorted: %+v", r.Makers)
			}
			got := map[string]MakerDistance{}
			for _, m := range r.Makers {
				got[m.MakerID] = m
				t.Logf("%+v", m)
			}
			if len(got) != 2+len(tc.want) {
				t.Fatalf("makers %+v", r.Makers)
			}
			for id, flagged := range tc.want {
				m := got[id]
				if m.Flagged != flagged || max(m.ActiveDays, m.Unlocks) <= 0.25 {
					t.Errorf("%s: %+v, want flagged %v and a distance > 0.25 (reported even when too few devices)", id, m, flagged)
				}
			}
			if m := got["farmco"]; m.MakerID != "" && (m.Devices != 300 || m.ActiveDays <= 0.25 || m.Unlocks <= 0.25) {
				t.Errorf("farmco %+v", m)
			}
		})
	}
}

func TestDistanceFigures(t *testing.T) {
	ds := dates(2027, 1)
	dev := func(n int, maker string, unlocks ...uint16) Device {
		d := Device{ID: devID(n), MakerID: maker, SerialTag: serial(n)}
		for k, u := range unlocks {
			d.Days = append(d.Days, mk(ds[k], utc8, 1000+uint32(n), u, 1))
		}
		if len(unlocks) == 0 { // one record, not an active day
			d.Days = append(d.Days, mk(ds[0], utc8, 60, 0, 1))
		}
		return d
	}
	devs := []Device{
		dev(1, "x", 1), dev(2, "x", 1, 200), dev(3, "y", 5, 5), dev(4, "z"),
		dev(5, "", 500, 500, 500), // unattributed: not in any distance
	}
	th := DefaultThresholds()
	th.MakerMinDevices = 2
	want := []MakerDistance{
		{MakerID: "x", Devices: 2, ActiveDays: 0.5, Unlocks: 1, Threshold: 0.25, Flagged: true},
		{MakerID: "y", Devices: 1, ActiveDays: 2.0 / 3, Unlocks: 1, Threshold: 0.25},
		{MakerID: "z", Devices: 1, ActiveDays: 1, Unlocks: 0, Threshold: 0.25}, // no active day: no unlocks distance
	}
	got := Analyze(devs, th).Makers
	if len(got) != len(want) {
		t.Fatalf("makers %+v", got)
	}
	for i := range want {
		g := got[i]
		if math.Abs(g.ActiveDays-want[i].ActiveDays) > 1e-12 || math.Abs(g.Unlocks-want[i].Unlocks) > 1e-12 {
			t.Errorf("%+v, want %+v", g, want[i])
		}
		g.ActiveDays, g.Unlocks = want[i].ActiveDays, want[i].Unlocks
		if g != want[i] {
			t.Errorf("%+v, want %+v", g, want[i])
		}
	}
	for n, bin := range map[uint16]int{0: 0, 1: 1, 2: 2, 3: 2, 4: 3, 7: 3, 8: 4, 15: 4, 16: 5, 63: 6, 64: 7, 127: 7, 128: 8, 1440: 8, 65535: 8} {
		if got := unlockBin(n); got != bin {
			t.Errorf("unlockBin(%d) = %d, want %d", n, got, bin)
		}
	}
}

// Unattributed devices take no part in the maker distances nor in many_keys.
func TestUnattributed(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ds := dates(2027, 2)
	devs := honest(rng, 0, 400, ds, func(i int) string { return []string{"a", "b"}[i%2] })
	before := Analyze(devs, DefaultThresholds())
	for i := range 300 {
		d := farmDevice(rng, 1000+i, "", ds)
		d.SerialTag = [32]byte{}
		devs = append(devs, d)
	}
	after := Analyze(devs, DefaultThresholds())
	if !reflect.DeepEqual(before.Makers, after.Makers) {
		t.Errorf("unattributed devices changed the makers:\n%+v\n%+v", before.Makers, after.Makers)
	}
	for _, fs := range after.Devices {
		for _, f := range fs {
			if f.Signal == ManyKeys {
				t.Errorf("many_keys among unattributed devices: %+v", f)
			}
		}
	}
}

func TestOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	ds := dates(2026, 10)
	devs := honest(rng, 0, 2000, ds, roundRobin)
	tp := &tuples{}
	for i := range 25 { // a mass group on 3 dates, and pairs within it on more
		d := tp.plain(5000+i, ds)
		for k := range 3 {
			d.Days[k].Activity.InteractiveSeconds, d.Days[k].Activity.Unlocks = 7777, uint16(k+1)
		}
		if i < 3 { // each of them has two partners on 3 dates: the lowest device_id is named
			for k := 3; k < 6; k++ {
				d.Days[k].Activity.InteractiveSeconds, d.Days[k].Activity.Unlocks = 8888, uint16(k)
			}
		}
		d.SerialTag = serial(5000 + i/3)
		devs = append(devs, d)
	}
	for i := range 150 {
		devs = append(devs, farmDevice(rng, 6000+i, "maker1", ds))
	}
	th := DefaultThresholds()
	want := Analyze(devs, th)
	if len(want.Devices) < 25 {
		t.Fatalf("only %d devices with findings", len(want.Devices))
	}
	for range 3 {
		shuffled := slices.Clone(devs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := Analyze(shuffled, th); !reflect.DeepEqual(got, want) {
			t.Fatalf("the report depends on the order of the devices")
		}
	}
}

func TestEmpty(t *testing.T) {
	r := Analyze(nil, DefaultThresholds())
	if r.Devices == nil || len(r.Devices) != 0 || len(r.Makers) != 0 {
		t.Fatalf("%+v", r)
	}
}

func BenchmarkAnalyze(b *testing.B) {
	devs := honest(rand.New(rand.NewPCG(11, 12)), 0, 10000, dates(2026, 10), roundRobin)
	th := DefaultThresholds()
	b.ReportAllocs()
	for b.Loop() {
		Analyze(devs, th)
	}
}

// TestRebase: counters filled in two parts, each with the indices of its own devices,
// then rebased, find the clones that one set of counters with every device's place in
// the month finds: a pair and a mass group, each across the two parts.
func TestRebase(t *testing.T) {
	ds := dates(2028, 2) // 29 days
	tp := &tuples{}
	const n, half = 60, 25
	devs := make([]Device, n)
	for i := range devs {
		devs[i] = tp.plain(i, ds)
	}
	devs[40].Days = slices.Clone(devs[3].Days) // a pair, one in each part
	for i := 10; i < 35; i++ {                 // a mass group of 25 on 3 dates
		for k := range 3 {
			devs[i].Days[10+k].Activity.InteractiveSeconds, devs[i].Days[10+k].Activity.Unlocks = 4242, uint16(k+1)
		}
	}
	th := DefaultThresholds()
	id := func(i int) proof.DeviceID { return devs[i].ID }
	var whole, lower, upper Counters
	for i := range devs {
		whole.Add(int32(i), devs[i].Days)
		if i < half {
			lower.Add(int32(i), devs[i].Days)
		} else {
			upper.Add(int32(i-half), devs[i].Days)
		}
	}
	upper.Rebase(half)
	want := Clones(n, id, []*Counters{&whole}, th)
	if len(want) != 2+25 || want[3].Signal != Clone || want[40].Signal != Clone || want[34].Signal != Clone {
		t.Fatalf("clones of the whole month: %v", want)
	}
	if got := Clones(n, id, []*Counters{&lower, &upper}, th); !reflect.DeepEqual(got, want) {
		t.Errorf("clones of two rebased parts:\n%v\nwant\n%v", got, want)
	}
}
