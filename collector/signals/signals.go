// Package signals finds the fleet anomaly signals of one month's activity records (docs/eligibility.md): clones, saturated days, burst and backfill minting, replayed epochs, many keys on one serial tag, and makers whose distribution is far from the fleet's.
package signals

import (
	"bytes"
	"encoding/hex"
	"fmt"
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
// Device IDs are expected to be distinct; the findings of two entries with one ID are
// merged. Analyze does not modify devs.
func Analyze(devs []Device, th Thresholds) *Report {
	a := &analysis{
		devs:       devs,
		th:         th,
		found:      make([][]Finding, len(devs)),
		activeDays: make([]int32, len(devs)),
		makers:     map[string]*histogram{},
		dayEnds:    map[proof.Date]int64{},
	}
	a.clones()
	for i := range devs {
		a.device(i)
	}
	a.manyKeys()
	rep := &Report{Devices: map[proof.DeviceID][]Finding{}, Makers: a.makerDistances()}
	for i, f := range a.found {
		if len(f) > 0 {
			id := devs[i].ID
			f = append(rep.Devices[id], f...)
			slices.SortStableFunc(f, func(x, y Finding) int { return strings.Compare(string(x.Signal), string(y.Signal)) })
			rep.Devices[id] = f
		}
	}
	return rep
}

// unlockBins is the number of bins of the unlocks histogram: 0, 1, 2-3, ..., 64-127, 128+.
const unlockBins = 9

// histogram holds the distributions of one maker (or of all attributed devices).
type histogram struct {
	devices int
	days    [32]int         // devices per number of active days, 31 and more in the last bin
	unlocks [unlockBins]int // active days per unlocks bin
}

func (h *histogram) add(o *histogram, sign int) {
	h.devices += sign * o.devices
	for i := range h.days {
		h.days[i] += sign * o.days[i]
	}
	for i := range h.unlocks {
		h.unlocks[i] += sign * o.unlocks[i]
	}
}

// unlockBin returns the bin of n unlocks: bin k >= 1 holds 2^(k-1)..2^k-1, the last one 128+.
func unlockBin(n uint16) int { return min(bits.Len16(n), unlockBins-1) }

// analysis is the working state of one Analyze call.
type analysis struct {
	devs       []Device
	th         Thresholds
	found      [][]Finding // per device index
	activeDays []int32     // distinct active dates per device index
	makers     map[string]*histogram
	dayEnds    map[proof.Date]int64 // Date.Next().Start(0).Unix() per date seen

	// scratch buffers of device, reused across devices
	minted []int64
	dateEp []uint64
	active []proof.Date
	sat    []proof.Date
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
	// Bucket the active records by date (a counting sort): read the records once, in
	// device order, then scatter them so that each date holds its tuples in device order.
	dateIdx := map[proof.Date]int32{}
	var counts []int
	var idxIn []int32  // date index of each active record
	var tupIn []uint64 // interactive_seconds<<32 | unlocks<<16 | screen_ons
	var devIn []int32  // device index
	for di, d := range a.devs {
		for k := range d.Days {
			day := &d.Days[k]
			if !day.Active {
				continue
			}
			act := &day.Activity
			i, ok := dateIdx[act.Date]
			if !ok {
				i = int32(len(counts))
				dateIdx[act.Date] = i
				counts = append(counts, 0)
			}
			counts[i]++
			idxIn = append(idxIn, i)
			tupIn = append(tupIn, uint64(act.InteractiveSeconds)<<32|uint64(act.Unlocks)<<16|uint64(act.ScreenOns))
			devIn = append(devIn, int32(di))
		}
	}
	starts := make([]int, len(counts)+1)
	for i, c := range counts {
		starts[i+1] = starts[i] + c
	}
	pos := slices.Clone(starts[:len(counts)])
	tuples, owners := make([]uint64, len(tupIn)), make([]int32, len(tupIn))
	for k, i := range idxIn {
		tuples[pos[i]], owners[pos[i]] = tupIn[k], devIn[k]
		pos[i]++
	}

	pairs := map[uint64]int32{} // lo<<32|hi device indices -> dates shared
	mass := make([]int32, len(a.devs))
	lastMass := make([]int32, len(a.devs)) // date index+1 of the last mass date counted
	groups := map[uint64][]int32{}         // tuple shared on the date -> its devices
	var sorted, datePairs []uint64
	for di := range counts {
		tup, own := tuples[starts[di]:starts[di+1]], owners[starts[di]:starts[di+1]]
		// Find the shared tuples by sorting a copy: most tuples of a date are unique.
		sorted = append(sorted[:0], tup...)
		slices.Sort(sorted)
		clear(groups)
		for i := 1; i < len(sorted); i++ {
			if sorted[i] == sorted[i-1] {
				groups[sorted[i]] = nil
			}
		}
		if len(groups) == 0 {
			continue
		}
		for k, t := range tup {
			if g, ok := groups[t]; ok && (len(g) == 0 || g[len(g)-1] != own[k]) {
				groups[t] = append(g, own[k])
			}
		}
		datePairs = datePairs[:0]
		for _, members := range groups {
			switch {
			case len(members) >= a.th.CloneMassGroup:
				for _, m := range members {
					if lastMass[m] != int32(di+1) {
						lastMass[m] = int32(di + 1)
						mass[m]++
					}
				}
			case len(members) >= 2:
				for x, lo := range members {
					for _, hi := range members[x+1:] {
						datePairs = append(datePairs, uint64(lo)<<32|uint64(hi))
					}
				}
			}
		}
		// A device reported twice on one date (two epochs) shares that date once.
		slices.Sort(datePairs)
		for _, p := range slices.Compact(datePairs) {
			pairs[p]++
		}
	}

	// The partner named is the one with the most shared dates, then the lowest device_id.
	type partner struct{ dates, dev int32 }
	best := map[int32]partner{}
	better := func(p, q partner) bool {
		if p.dates != q.dates {
			return p.dates > q.dates
		}
		return bytes.Compare(a.devs[p.dev].ID[:], a.devs[q.dev].ID[:]) < 0
	}
	for p, c := range pairs {
		if int(c) < a.th.ClonePairDates {
			continue
		}
		lo, hi := int32(p>>32), int32(uint32(p))
		for _, s := range [2][2]int32{{lo, hi}, {hi, lo}} {
			cand := partner{c, s[1]}
			if cur, ok := best[s[0]]; !ok || better(cand, cur) {
				best[s[0]] = cand
			}
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

// dayEnd returns the unix time of the end of date d in the zone offset minutes east of
// UTC: d.Next().Start(offset).Unix().
func (a *analysis) dayEnd(d proof.Date, offset int16) int64 {
	end, ok := a.dayEnds[d]
	if !ok {
		end = d.Next().Start(0).Unix()
		a.dayEnds[d] = end
	}
	return end - int64(offset)*60
}

// device computes the signals of one device that need only its own records, its active
// days, and adds it to its maker's histogram.
func (a *analysis) device(i int) {
	d := &a.devs[i]
	th := &a.th
	var h *histogram
	if d.MakerID != "" {
		if h = a.makers[d.MakerID]; h == nil {
			h = &histogram{}
			a.makers[d.MakerID] = h
		}
	}
	a.minted, a.dateEp, a.active, a.sat = a.minted[:0], a.dateEp[:0], a.active[:0], a.sat[:0]
	lateSecs := int64(th.BackfillLate / time.Second)
	late := 0
	for k := range d.Days {
		day := &d.Days[k]
		act := &day.Activity
		a.minted = append(a.minted, day.MintedAt)
		a.dateEp = append(a.dateEp, uint64(act.Date)<<32|uint64(day.Epoch))
		if day.Active {
			a.active = append(a.active, act.Date)
			if h != nil {
				h.unlocks[unlockBin(act.Unlocks)]++
			}
		}
		if act.ActiveHours&proof.AllHours == proof.AllHours && act.InteractiveSeconds >= th.SaturatedSeconds {
			a.sat = append(a.sat, act.Date)
		}
		if day.MintedAt-a.dayEnd(act.Date, act.UTCOffsetMinutes) > lateSecs {
			late++
		}
	}

	slices.Sort(a.active)
	a.activeDays[i] = int32(len(slices.Compact(a.active)))
	if h != nil {
		h.devices++
		h.days[min(int(a.activeDays[i]), len(h.days)-1)]++
	}

	if len(a.minted) > 0 {
		slices.Sort(a.minted)
		window := int64(th.BurstWindow / time.Second)
		most, lo := 0, 0
		for hi, t := range a.minted {
			for t-a.minted[lo] > window {
				lo++
			}
			most = max(most, hi-lo+1)
		}
		if most >= th.BurstRecords && most >= 2 {
			a.add(i, Burst, "%d records minted within %s (threshold %d)", most, duration(th.BurstWindow), th.BurstRecords)
		}
	}

	if late >= th.BackfillRecords && late > 0 {
		a.add(i, Backfill, "%d records minted more than %s after the end of their date (threshold %d)", late, duration(th.BackfillLate), th.BackfillRecords)
	}

	slices.Sort(a.dateEp)
	ep := slices.Compact(a.dateEp)
	replayed := 0
	for k := 1; k < len(ep); k++ {
		// sorted by date then epoch, without repeats: a date that starts a second run counts
		if ep[k]>>32 == ep[k-1]>>32 && (k < 2 || ep[k-2]>>32 != ep[k]>>32) {
			replayed++
		}
	}
	if replayed >= th.ReplayDates && replayed > 0 {
		a.add(i, Replay, "%d dates reported by two or more epochs (threshold %d)", replayed, th.ReplayDates)
	}

	slices.Sort(a.sat)
	if n := len(slices.Compact(a.sat)); n >= th.SaturatedDays && n > 0 {
		a.add(i, Saturated, "%d saturated days: all 24 active hours and at least %d interactive seconds (threshold %d)",
			n, th.SaturatedSeconds, th.SaturatedDays)
	}
}

// duration formats d without trailing zero units: 1h, 36h, 1h1m, 90s.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
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
		if len(keys) < a.th.ManyKeys || len(keys) < 2 {
			continue
		}
		for _, i := range keys {
			a.add(int(i), ManyKeys, "serial tag %s… has %d device keys with an active date (threshold %d)",
				hex.EncodeToString(tag[:4]), len(keys), a.th.ManyKeys)
		}
	}
}

// makerDistances compares each maker's histograms with those of every other attributed
// device.
func (a *analysis) makerDistances() []MakerDistance {
	var all histogram
	ids := make([]string, 0, len(a.makers))
	for id, h := range a.makers {
		all.add(h, 1)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]MakerDistance, 0, len(ids))
	for _, id := range ids {
		own := a.makers[id]
		rest := all
		rest.add(own, -1)
		m := MakerDistance{
			MakerID:    id,
			Devices:    own.devices,
			ActiveDays: tvDistance(own.days[:], rest.days[:]),
			Unlocks:    tvDistance(own.unlocks[:], rest.unlocks[:]),
			Threshold:  a.th.MakerDistance,
		}
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
		np += p[i]
		nq += q[i]
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
