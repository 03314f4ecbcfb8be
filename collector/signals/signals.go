// Package signals finds the fleet anomaly signals of one month's activity records (docs/eligibility.md): clones, saturated days, burst and backfill minting, replayed epochs, many keys on one serial tag, and makers whose distribution is far from the fleet's.
package signals

import (
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
	sums := make([]Summary, len(devs))
	sheet := NewSheet(th)
	var c Counters
	found := map[int32][]Finding{}
	makerIdx := map[string]int32{}
	var makers []string
	var byTag []int32
	for i := range devs {
		d, s := &devs[i], &sums[i]
		s.ID, s.SerialTag, s.Maker = d.ID, d.SerialTag, -1
		if d.MakerID != "" {
			k, ok := makerIdx[d.MakerID]
			if !ok {
				k = int32(len(makers))
				makerIdx[d.MakerID] = k
				makers = append(makers, d.MakerID)
			}
			s.Maker = k
		}
		var f []Finding
		s.ActiveDays, s.Unlocks, f = sheet.Own(d, nil)
		if len(f) > 0 {
			found[int32(i)] = f
		}
		c.Add(int32(i), d.Days)
		if d.SerialTag != ([32]byte{}) {
			byTag = append(byTag, int32(i))
		}
	}
	dev := func(i int) *Summary { return &sums[i] }
	SortByTag(byTag, dev)
	rep := &Report{Devices: map[proof.DeviceID][]Finding{}}
	clones := Clones(len(sums), func(i int) proof.DeviceID { return sums[i].ID }, []*Counters{&c}, th)
	rep.Makers = Cross(len(sums), dev, makers, byTag, clones, found, th)
	for i := range sums {
		f, id := found[int32(i)], sums[i].ID
		if len(f) == 0 {
			continue
		}
		if prev := rep.Devices[id]; prev != nil {
			f = append(prev, f...)
			slices.SortStableFunc(f, bySignal)
		}
		rep.Devices[id] = f
	}
	return rep
}

func bySignal(x, y Finding) int { return strings.Compare(string(x.Signal), string(y.Signal)) }

// Summary is what Cross reads of one device of the month.
type Summary struct {
	ID         proof.DeviceID
	Maker      int32    // its maker_id's index in the makers given to Cross, -1 if unattributed
	SerialTag  [32]byte // zero for an unattributed device
	ActiveDays int32    // distinct active dates (Sheet.Own)
	Unlocks    [9]int32 // active days per unlocks bin (Sheet.Own)
}

// Cross computes the many keys signal and the maker distances, and gathers every
// device's findings.
//
// The month has n devices, dev(i) being the i-th, those of a non-zero serial tag listed
// in byTag sorted by serial tag (others may be listed too); makers are the maker_ids
// their Maker indexes. found holds each device's own findings (Sheet.Own) by index:
// Cross adds there those of clones (what Clones returned) and its own, and sorts each
// device's findings by Signal. It returns one MakerDistance per maker with devices,
// sorted by maker_id. The result does not depend on the order of the devices.
func Cross(n int, dev func(i int) *Summary, makers []string, byTag []int32, clones map[int32]Finding, found map[int32][]Finding, th Thresholds) []MakerDistance {
	x := &cross{n: n, dev: dev, th: th, found: found}
	for i, f := range clones {
		found[i] = append(found[i], f)
	}
	x.manyKeys(byTag)
	for i, f := range found {
		if len(f) > 1 {
			slices.SortStableFunc(f, bySignal)
			found[i] = f
		}
	}
	return x.makerDistances(makers)
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

// makerDistances compares each maker's histograms with those of every other attributed
// device.
func (x *cross) makerDistances(makers []string) []MakerDistance {
	hs := make([]histogram, len(makers))
	var all histogram // of every attributed device
	for i := range x.n {
		d := x.dev(i)
		if d.Maker < 0 {
			continue
		}
		for _, h := range [2]*histogram{&hs[d.Maker], &all} {
			h.devices++
			h.days[min(int(d.ActiveDays), len(h.days)-1)]++
			for b, n := range d.Unlocks {
				h.unlocks[b] += int(n)
			}
		}
	}
	out := make([]MakerDistance, 0, len(makers))
	for k, id := range makers {
		own := &hs[k]
		if own.devices == 0 {
			continue
		}
		rest := all.minus(own)
		m := MakerDistance{MakerID: id, Devices: own.devices, Threshold: x.th.MakerDistance,
			ActiveDays: tvDistance(own.days[:], rest.days[:]), Unlocks: tvDistance(own.unlocks[:], rest.unlocks[:])}
		m.Flagged = own.devices >= x.th.MakerMinDevices && rest.devices >= x.th.MakerMinDevices &&
			(m.ActiveDays > m.Threshold || m.Unlocks > m.Threshold)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b MakerDistance) int { return strings.Compare(a.MakerID, b.MakerID) })
	return out
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
