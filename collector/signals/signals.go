// Package signals finds the fleet anomaly signals of one month's activity records (docs/eligibility.md): clones, saturated days, burst and backfill minting, replayed epochs, many keys on one serial tag, and makers whose distribution is far from the fleet's.
package signals

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"amos.example/amosd/proof"
)

// Day is one accepted activity record of a device dated in the month.
type Day struct {
	Epoch    uint32
	MintedAt int64 // unix seconds, the record's minted_at
	Activity proof.ActivityDay
	Active   bool // the collector's eligibility made this date active
}

// Device is one device key's month: its accepted activity records of the month in
// chain order per epoch (epochs ascending), and who certified it.
type Device struct {
	ID        proof.DeviceID
	MakerID   string   // "" for an unattributed device
	SerialTag [32]byte // zero for an unattributed device
	Days      []Day
}

// Signal names one anomaly.
type Signal string

// The signals a device can get.
const (
	Clone     Signal = "clone"
	Saturated Signal = "saturated"
	Burst     Signal = "burst"
	Backfill  Signal = "backfill"
	Replay    Signal = "replayed_epoch"
	ManyKeys  Signal = "many_keys"
)

// Finding is one signal of one device, with a human-readable detail naming the figures
// (e.g. "shares identical counters with device 3f2a… on 31 dates (threshold 3)").
type Finding struct {
	Signal Signal `json:"signal"`
	Detail string `json:"detail"`
}

// Thresholds of every signal (docs/eligibility.md states them).
type Thresholds struct {
	ClonePairDates   int           // 3: a device shares an identical (interactive_seconds, unlocks, screen_ons) tuple of an ACTIVE date with the SAME other device on at least this many dates
	CloneMassGroup   int           // 20: an identical tuple on one active date shared by at least this many devices makes a "mass" date for each of them ...
	CloneMassDates   int           // 3: ... and a device with at least this many mass dates is a clone
	SaturatedSeconds uint32        // 57600: a saturated day has all 24 active_hours bits AND interactive_seconds >= this
	SaturatedDays    int           // 3: at least this many saturated days in the month
	BurstWindow      time.Duration // 1h: records minted within this window of each other ...
	BurstRecords     int           // 3: ... at least this many of them (sliding window over the device's minted_at, across epochs)
	BackfillLate     time.Duration // 36h: a record minted more than this after the end of its date (Date.Next().Start(int(UTCOffsetMinutes))) is a late mint ...
	BackfillRecords  int           // 3: ... at least this many late mints in the month
	ReplayDates      int           // 2: at least this many dates reported by two or more epochs of the device
	ManyKeys         int           // 3: at least this many device keys of one serial tag with an active date in the month: every one of them gets the signal
	MakerMinDevices  int           // 100: the distribution test needs at least this many devices of the maker and of the rest of the fleet
	MakerDistance    float64       // 0.25: total variation distance above which a maker is flagged
}

// DefaultThresholds returns the thresholds of docs/eligibility.md.
//
// Whatever the thresholds, a signal needs what it names to happen at least once: a
// shared date, a saturated day, a late mint, a replayed date; two records for a burst,
// two keys for many keys.
func DefaultThresholds() Thresholds {
	return Thresholds{
		ClonePairDates:   3,
		CloneMassGroup:   20,
		CloneMassDates:   3,
		SaturatedSeconds: 57600,
		SaturatedDays:    3,
		BurstWindow:      time.Hour,
		BurstRecords:     3,
		BackfillLate:     36 * time.Hour,
		BackfillRecords:  3,
		ReplayDates:      2,
		ManyKeys:         3,
		MakerMinDevices:  100,
		MakerDistance:    0.25,
	}
}

// MakerDistance compares one maker's devices with the rest of the fleet.
type MakerDistance struct {
	MakerID    string  `json:"maker_id"`
	Devices    int     `json:"devices"`
	ActiveDays float64 `json:"active_days_distance"` // total variation distance of the histograms of active days per device (0..31, one bin per value)
	Unlocks    float64 `json:"unlocks_distance"`     // total variation distance of the histograms of unlocks per active day, bins 0,1,2-3,4-7,8-15,16-31,32-63,64-127,128+
	Threshold  float64 `json:"threshold"`
	Flagged    bool    `json:"flagged"` // either distance > Threshold (and both sides have >= MakerMinDevices devices)
}

// Report is the outcome of Analyze.
type Report struct {
	Devices map[proof.DeviceID][]Finding // only devices with at least one finding; findings sorted by Signal
	Makers  []MakerDistance              // one per maker_id present (non-empty), sorted by maker_id
}

// Analyze computes every signal over one month's devices. The result does not depend on the order of devs.
//
// Device IDs are expected to be distinct (the findings of two entries with one ID are
// merged). devs is not modified.
func Analyze(devs []Device, th Thresholds) *Report {
	a := &analysis{devs: devs, th: th, found: make([][]Finding, len(devs)), activeDays: make([]int32, len(devs)),
		makers: map[string]*histogram{}, dayEnds: map[proof.Date]int64{}}
	a.clones()
	for i := range devs {
		a.device(i)
	}
	a.manyKeys()
	rep := &Report{Devices: map[proof.DeviceID][]Finding{}, Makers: a.makerDistances()}
	for i, f := range a.found {
		if len(f) > 0 {
			f = append(rep.Devices[devs[i].ID], f...)
			slices.SortStableFunc(f, func(x, y Finding) int { return strings.Compare(string(x.Signal), string(y.Signal)) })
			rep.Devices[devs[i].ID] = f
		}
	}
	return rep
}

// histogram holds the distributions of one maker, or of all attributed devices.
type histogram struct {
	devices int
	days    [32]int // devices per number of distinct active dates, 31 and more in the last bin
	unlocks [9]int  // active days per unlocks bin: 0, 1, 2-3, 4-7, ..., 64-127, 128+
}

// minus returns h - o, bin by bin.
func (h histogram) minus(o *histogram) histogram {
	h.devices -= o.devices
	for i := range h.days {
		h.days[i] -= o.days[i]
	}
	for i := range h.unlocks {
		h.unlocks[i] -= o.unlocks[i]
	}
	return h
}

// unlockBin returns the bin of n unlocks: bin k >= 1 holds 2^(k-1)..2^k-1, the last one 128+.
func unlockBin(n uint16) int { return min(bits.Len16(n), 8) }

// analysis is the working state of one Analyze call.
type analysis struct {
	devs       []Device
	th         Thresholds
	found      [][]Finding // per device index
	activeDays []int32     // distinct active dates per device index
	makers     map[string]*histogram
	all        histogram            // of every attributed device
	dayEnds    map[proof.Date]int64 // Date.Next().Start(0).Unix() per date seen
	minted     []int64              // scratch buffers of device, reused across devices
	dateEp     []uint64             // date<<32 | epoch
	active     []proof.Date
	sat        []proof.Date // saturated dates
}

func (a *analysis) add(i int, s Signal, format string, args ...any) {
	a.found[i] = append(a.found[i], Finding{Signal: s, Detail: fmt.Sprintf(format, args...)})
}

// clones finds the devices that share the counters of their active dates with others.
//
// At tens of millions of phones two honest phones often report the same
// (interactive_seconds, unlocks, screen_ons) on one date, but the same pair sharing it
// on ClonePairDates dates of a month is astronomically unlikely: it is one script or one
// copied store. A group of CloneMassGroup identical tuples on one date is a script too;
// such groups are not expanded into pairs (that would be quadratic in the farm's size):
// each member gets a mass date instead.
func (a *analysis) clones() {
	type bucket struct {
		tuples []uint64 // interactive_seconds<<32 | unlocks<<16 | screen_ons
		owners []int32  // device index of each tuple, ascending
	}
	dateIdx := map[proof.Date]int{}
	var buckets []bucket // the active records of each date
	for di, d := range a.devs {
		for k := range d.Days {
			if act := &d.Days[k].Activity; d.Days[k].Active {
				i, ok := dateIdx[act.Date]
				if !ok {
					i = len(buckets)
					dateIdx[act.Date] = i
					buckets = append(buckets, bucket{})
				}
				b := &buckets[i]
				b.tuples = append(b.tuples, uint64(act.InteractiveSeconds)<<32|uint64(act.Unlocks)<<16|uint64(act.ScreenOns))
				b.owners = append(b.owners, int32(di))
			}
		}
	}

	pairs := map[uint64]int32{} // lo<<32|hi device indices -> dates shared
	mass := make([]int32, len(a.devs))
	lastMass := make([]int32, len(a.devs)) // date index+1 of the last mass date counted
	groups := map[uint64][]int32{}         // tuple shared on the date -> its devices
	var sorted, buf, datePairs []uint64
	for di, b := range buckets {
		// Find the shared tuples by sorting a copy: most tuples of a date are unique.
		sorted = radixSort(append(sorted[:0], b.tuples...), &buf)
		clear(groups)
		for i := 1; i < len(sorted); i++ {
			if sorted[i] == sorted[i-1] {
				groups[sorted[i]] = nil
			}
		}
		for k, t := range b.tuples {
			if g, ok := groups[t]; ok && (len(g) == 0 || g[len(g)-1] != b.owners[k]) {
				groups[t] = append(g, b.owners[k])
			}
		}
		datePairs = datePairs[:0]
		for _, members := range groups {
			if len(members) >= a.th.CloneMassGroup {
				for _, m := range members {
					if lastMass[m] != int32(di+1) {
						lastMass[m] = int32(di + 1)
						mass[m]++
					}
				}
				continue
			}
			for x, lo := range members {
				for _, hi := range members[x+1:] {
					datePairs = append(datePairs, uint64(lo)<<32|uint64(hi))
				}
			}
		}
		// A device reported twice on one date (two epochs) shares that date once.
		slices.Sort(datePairs)
		for _, p := range slices.Compact(datePairs) {
			pairs[p]++
		}
	}

	// Name the partner with the most shared dates, then the lowest device_id.
	type partner struct{ dates, dev int32 }
	best := map[int32]partner{}
	consider := func(self, other, dates int32) {
		cur, ok := best[self]
		if !ok || dates > cur.dates || dates == cur.dates && bytes.Compare(a.devs[other].ID[:], a.devs[cur.dev].ID[:]) < 0 {
			best[self] = partner{dates, other}
		}
	}
	for p, c := range pairs {
		if int(c) >= a.th.ClonePairDates {
			consider(int32(p>>32), int32(uint32(p)), c)
			consider(int32(uint32(p)), int32(p>>32), c)
		}
	}
	for i := range a.devs {
		var parts []string
		if p, ok := best[int32(i)]; ok {
			parts = append(parts, fmt.Sprintf("shares identical counters with device %s… on %d dates (threshold %d)",
				a.devs[p.dev].ID.String()[:8], p.dates, a.th.ClonePairDates))
		}
		if int(mass[i]) >= a.th.CloneMassDates && mass[i] > 0 {
			parts = append(parts, fmt.Sprintf("shares identical counters with %d or more devices on %d dates (threshold %d)",
				a.th.CloneMassGroup, mass[i], a.th.CloneMassDates))
		}
		if len(parts) > 0 {
			a.add(i, Clone, "%s", strings.Join(parts, "; "))
		}
	}
}

// radixSort sorts v (least significant byte first) with *buf as scratch, and returns the
// sorted slice: v or *buf, the other one becoming the scratch.
func radixSort(v []uint64, buf *[]uint64) []uint64 {
	if cap(*buf) < len(v) {
		*buf = make([]uint64, len(v))
	}
	w := (*buf)[:len(v)]
	for shift := 0; shift < 64 && len(v) > 0; shift += 8 {
		var at [256]int
		for _, x := range v {
			at[x>>shift&0xff]++
		}
		if at[v[0]>>shift&0xff] == len(v) {
			continue // the same byte everywhere
		}
		for b, n := 0, 0; b < 256; b++ {
			at[b], n = n, n+at[b]
		}
		for _, x := range v {
			w[at[x>>shift&0xff]] = x
			at[x>>shift&0xff]++
		}
		v, w = w, v
	}
	*buf = w
	return v
}

// device computes the signals of one device that need only its own records and its
// active days, and adds it to the histograms of its maker and of all attributed devices.
func (a *analysis) device(i int) {
	d, th := &a.devs[i], &a.th
	a.minted, a.dateEp, a.active, a.sat = a.minted[:0], a.dateEp[:0], a.active[:0], a.sat[:0]
	var unlocks [9]int
	late, lateSecs := 0, int64(th.BackfillLate/time.Second)
	for k := range d.Days {
		day := &d.Days[k]
		act := &day.Activity
		a.minted = append(a.minted, day.MintedAt)
		a.dateEp = append(a.dateEp, uint64(act.Date)<<32|uint64(day.Epoch))
		if day.Active {
			a.active = append(a.active, act.Date)
			unlocks[unlockBin(act.Unlocks)]++
		}
		if act.ActiveHours&proof.AllHours == proof.AllHours && act.InteractiveSeconds >= th.SaturatedSeconds {
			a.sat = append(a.sat, act.Date)
		}
		end, ok := a.dayEnds[act.Date]
		if !ok {
			end = act.Date.Next().Start(0).Unix()
			a.dayEnds[act.Date] = end
		}
		if day.MintedAt-(end-int64(act.UTCOffsetMinutes)*60) > lateSecs { // Date.Next().Start(offset)
			late++
		}
	}
	a.activeDays[i] = int32(distinct(a.active))
	if d.MakerID != "" {
		h := a.makers[d.MakerID]
		if h == nil {
			h = &histogram{}
			a.makers[d.MakerID] = h
		}
		for _, h := range [2]*histogram{h, &a.all} {
			h.devices++
			h.days[min(int(a.activeDays[i]), len(h.days)-1)]++
			for b, n := range unlocks {
				h.unlocks[b] += n
			}
		}
	}
	slices.Sort(a.minted)
	most, lo := 0, 0
	for hi, t := range a.minted {
		for t-a.minted[lo] > int64(th.BurstWindow/time.Second) {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	if most >= th.BurstRecords && most >= 2 {
		a.add(i, Burst, "%d records minted within %s (threshold %d)", most, duration(th.BurstWindow), th.BurstRecords)
	}
	if late >= th.BackfillRecords && late > 0 {
		a.add(i, Backfill, "%d records minted more than %s after the end of their date (threshold %d)",
			late, duration(th.BackfillLate), th.BackfillRecords)
	}
	slices.Sort(a.dateEp)
	ep, replayed := slices.Compact(a.dateEp), 0
	for k := 1; k < len(ep); k++ { // a date counts at its second epoch
		if ep[k]>>32 == ep[k-1]>>32 && (k == 1 || ep[k-2]>>32 != ep[k]>>32) {
			replayed++
		}
	}
	if replayed >= th.ReplayDates && replayed > 0 {
		a.add(i, Replay, "%d dates reported by two or more epochs (threshold %d)", replayed, th.ReplayDates)
	}

	if n := distinct(a.sat); n >= th.SaturatedDays && n > 0 {
		a.add(i, Saturated, "%d saturated days: all 24 active hours and at least %d interactive seconds (threshold %d)",
			n, th.SaturatedSeconds, th.SaturatedDays)
	}
}

// distinct returns the number of distinct dates in v, which it sorts.
func distinct(v []proof.Date) int {
	slices.Sort(v)
	return len(slices.Compact(v))
}

// duration formats d without trailing zero units: 1h, 36h, 1h1m.
func duration(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, zero) {
			s = s[:len(s)-2]
		}
	}
	return s
}

// manyKeys flags the device keys of a serial tag that too many keys used in the month.
func (a *analysis) manyKeys() {
	byTag := map[[32]byte][]int32{}
	for i := range a.devs {
		if d := &a.devs[i]; d.SerialTag != ([32]byte{}) && a.activeDays[i] > 0 {
			byTag[d.SerialTag] = append(byTag[d.SerialTag], int32(i))
		}
	}
	for tag, keys := range byTag {
		if len(keys) >= a.th.ManyKeys && len(keys) >= 2 {
			for _, i := range keys {
				a.add(int(i), ManyKeys, "serial tag %s… has %d device keys with an active date (threshold %d)",
					hex.EncodeToString(tag[:4]), len(keys), a.th.ManyKeys)
			}
		}
	}
}

// makerDistances compares each maker's histograms with those of every other attributed
// device.
func (a *analysis) makerDistances() []MakerDistance {
	ids := slices.Sorted(maps.Keys(a.makers))
	out := make([]MakerDistance, 0, len(ids))
	for _, id := range ids {
		own := a.makers[id]
		rest := a.all.minus(own)
		m := MakerDistance{MakerID: id, Devices: own.devices, Threshold: a.th.MakerDistance,
			ActiveDays: tvDistance(own.days[:], rest.days[:]), Unlocks: tvDistance(own.unlocks[:], rest.unlocks[:])}
		m.Flagged = own.devices >= a.th.MakerMinDevices && rest.devices >= a.th.MakerMinDevices &&
			(m.ActiveDays > m.Threshold || m.Unlocks > m.Threshold)
		out = append(out, m)
	}
	return out
}

// tvDistance returns the total variation distance of two histograms with the same bins,
// 0.5 × Σ|p_i − q_i| of their normalised forms; 0 if either is empty.
func tvDistance(p, q []int) float64 {
	np, nq := 0, 0
	for i := range p {
		np, nq = np+p[i], nq+q[i]
	}
	if np == 0 || nq == 0 {
		return 0
	}
	s := 0.0
	for i := range p {
		s += math.Abs(float64(p[i])/float64(np) - float64(q[i])/float64(nq))
	}
	return s / 2
}
