package fleetsim

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/proof"
)

// Profile is how a simulated owner used the phone during the month.
type Profile uint8

// Profiles, with their share of the fleet.
const (
	Dormant    Profile = iota // set up (the genesis went out), then never used: 6 %
	Light                     // 1 to 9 active days: 12 %
	Borderline                // exactly 10 active days, or 9 and a short one: 6 %
	Regular                   // 12 active days to every day of the month, a few short days besides: 76 %
)

var profileNames = [...]string{"dormant", "light", "borderline", "regular"}

func (p Profile) String() string { return profileNames[p] }

// Plan is one device's month: the dates it had interaction (each one record) and when
// it reaches the network.
type Plan struct {
	Profile Profile
	Maker   string
	Days    []proof.ActivityDay // dates ascending; Date is the day of the month until Month fixes it
	// SyncEvery is 1 for a phone that is online every night (it uploads right after
	// each midnight mint, as amosd does), k > 1 for one that reaches the network every
	// k days (offline stretches), 0 for one that is online only at the end of the month.
	SyncEvery int
	SyncPhase int
	// Delays, when not nil, are how long after the midnight that ends each of Days the
	// phone mints it: 0 at that midnight, more when the phone was off then (a flat
	// battery) and amosd minted the open day when it started again (its one catch-up
	// per start, docs/eligibility.md). A phone off for more than a day has no use on the
	// next date.
	Delays []time.Duration
}

// MintedAt returns when the phone mints Days[k], in the zone offset minutes east of UTC.
func (p *Plan) MintedAt(k, offset int) time.Time {
	at := p.Days[k].Date.Next().Start(offset)
	if p.Delays != nil {
		at = at.Add(p.Delays[k])
	}
	return at
}

// ActiveDays counts the dates the collector's default eligibility makes active.
func (p *Plan) ActiveDays(e collector.Eligibility) int {
	n := 0
	for i := range p.Days {
		if e.Active(&p.Days[i]) {
			n++
		}
	}
	return n
}

// SyncsOn reports whether the phone is online after the midnight that closes day d of
// a month of last days.
func (p *Plan) SyncsOn(d, last int) bool {
	switch {
	case d >= last:
		return true
	case p.SyncEvery == 1:
		return true
	case p.SyncEvery > 1:
		return d%p.SyncEvery == p.SyncPhase
	}
	return false
}

// NewPlan draws the month of a device: days is the number of days of the month (28 to
// 31). A Regular owner uses the phone on 12 days up to every day of the month, weighted
// towards the top; short days fill only days that are left.
func NewPlan(rng *rand.Rand, maker string, days int) Plan {
	if days < 28 || days > 31 {
		panic(fmt.Sprintf("fleetsim: NewPlan: a month of %d days", days))
	}
	p := Plan{Maker: maker}
	switch u := rng.Float64(); {
	case u < 0.06:
		p.Profile = Dormant
	case u < 0.18:
		p.Profile = Light
	case u < 0.24:
		p.Profile = Borderline
	default:
		p.Profile = Regular
	}
	var active, short int
	switch p.Profile {
	case Light:
		active, short = 1+rng.IntN(9), rng.IntN(3)
	case Borderline:
		if rng.IntN(2) == 0 {
			active, short = 10, 0
		} else {
			active, short = 9, 1
		}
	case Regular:
		active = 12 + int(float64(days-12)*math.Sqrt(rng.Float64())+0.5)
		short = rng.IntN(4)
	}
	short = max(0, min(short, days-active))
	used := rng.Perm(days)[:active+short]
	isShort := map[int]bool{}
	for _, d := range used[active:] {
		isShort[d] = true
	}
	for d := range days {
		if !contains(used, d) {
			continue
		}
		var a proof.ActivityDay
		if isShort[d] {
			a = shortDay(rng)
		} else {
			a = activeDay(rng)
		}
		a.Date = proof.Date(d + 1)
		p.Days = append(p.Days, a)
	}
	switch u := rng.Float64(); {
	case u < 0.70:
		p.SyncEvery = 1
	case u < 0.95:
		p.SyncEvery = 2 + rng.IntN(6)
		p.SyncPhase = rng.IntN(p.SyncEvery)
	}
	p.offNights(rng, days)
	return p
}

// offNights draws the nights the phone was off at midnight after a day of use: none
// for 80 % of the phones, one for 14 %, two for 5 %, three for 1 %. It started again 1
// to 12 hours later (7 in 10), 12 to 24 hours (2 in 10), or 24 to 47 hours when the
// next date had no use (else within a day). The last date of the month is minted at
// its midnight, and a late one before the month's end.
func (p *Plan) offNights(rng *rand.Rand, days int) {
	if len(p.Days) == 0 {
		return
	}
	var n int
	switch u := rng.Float64(); {
	case u < 0.80:
		return
	case u < 0.94:
		n = 1
	case u < 0.99:
		n = 2
	default:
		n = 3
	}
	p.Delays = make([]time.Duration, len(p.Days))
	within := func(lo, hi time.Duration) time.Duration {
		return (lo + time.Duration(rng.Int64N(int64(hi-lo)))).Truncate(time.Second)
	}
	for range n {
		k := rng.IntN(len(p.Days))
		d := int(p.Days[k].Date)
		if d >= days || p.Delays[k] > 0 {
			continue
		}
		var delay time.Duration
		switch u := rng.Float64(); {
		case u < 0.7:
			delay = within(time.Hour, 12*time.Hour)
		case u < 0.9:
			delay = within(12*time.Hour, 24*time.Hour)
		default:
			delay = within(24*time.Hour, 47*time.Hour)
		}
		if nextUsed := k+1 < len(p.Days) && int(p.Days[k+1].Date) == d+1; delay >= 24*time.Hour && (nextUsed || d+2 > days) {
			delay = within(time.Hour, 23*time.Hour)
		}
		p.Delays[k] = delay
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// activeDay draws the counters of a day of real use: from two minutes to about ten
// hours of interaction (log-normal around 1.5 h), spread over waking hours.
func activeDay(rng *rand.Rand) proof.ActivityDay {
	secs := uint32(min(max(math.Exp(rng.NormFloat64()*0.9+math.Log(5400)), 120), 36000))
	hours := hoursFor(rng, secs)
	unlocks := uint16(2 + rng.IntN(90))
	return proof.ActivityDay{InteractiveSeconds: secs, Unlocks: unlocks, ScreenOns: unlocks + uint16(rng.IntN(30)), ActiveHours: hours}
}

// shortDay draws a day with interaction that does not make it active: under two
// minutes, or no unlock.
func shortDay(rng *rand.Rand) proof.ActivityDay {
	if rng.IntN(2) == 0 {
		return proof.ActivityDay{InteractiveSeconds: uint32(5 + rng.IntN(115)), Unlocks: 1, ScreenOns: 1 + uint16(rng.IntN(3)),
			ActiveHours: 1 << (8 + rng.IntN(14))}
	}
	secs := uint32(120 + rng.IntN(600))
	return proof.ActivityDay{InteractiveSeconds: secs, Unlocks: 0, ScreenOns: 1 + uint16(rng.IntN(3)), ActiveHours: hoursFor(rng, secs)}
}

// hoursFor sets enough active_hours bits for secs, mostly between 07:00 and 23:59.
func hoursFor(rng *rand.Rand, secs uint32) uint32 {
	need := int(secs+3599) / 3600
	want := min(max(need, need+rng.IntN(6)), 24)
	var h uint32
	for bits.OnesCount32(h) < want {
		if bits.OnesCount32(h) < 17 && rng.IntN(10) > 0 {
			h |= 1 << (7 + rng.IntN(17))
		} else {
			h |= 1 << rng.IntN(24)
		}
	}
	return h
}
