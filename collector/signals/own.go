package signals

import (
	"fmt"
	"slices"
	"time"

	"amos.example/amosd/proof"
)

// Sheet computes the signals of one device that need only its own records, with
// buffers reused from one device to the next. A Sheet is used by one goroutine at a time.
type Sheet struct {
	th      Thresholds
	dayEnds map[proof.Date]int64 // Date.Next().Start(0).Unix() per odd date seen (see dayEnd)
	minted  []int64
	dateEp  []uint64 // date<<32 | epoch
	active  []proof.Date
	sat     []proof.Date // saturated dates
	// A cache of dayEnd: the date at slot date%64, and its end.
	slotDate [64]proof.Date
	slotEnd  [64]int64
}

// NewSheet returns a Sheet for thresholds th.
func NewSheet(th Thresholds) *Sheet { return &Sheet{th: th, dayEnds: map[proof.Date]int64{}} }

// Own returns d's distinct active dates, its active days per unlocks bin, and the
// findings that need only its own records (burst, backfill, replayed epoch, saturated)
// appended to findings.
func (s *Sheet) Own(d *Device, findings []Finding) (activeDays int32, unlocks [9]int32, _ []Finding) {
	th := &s.th
	s.minted, s.dateEp, s.active, s.sat = s.minted[:0], s.dateEp[:0], s.active[:0], s.sat[:0]
	late, lateSecs := 0, int64(th.BackfillLate/time.Second)
	for k := range d.Days {
		day := &d.Days[k]
		act := &day.Activity
		s.minted = append(s.minted, day.MintedAt)
		s.dateEp = append(s.dateEp, uint64(act.Date)<<32|uint64(day.Epoch))
		if day.Active {
			s.active = append(s.active, act.Date)
			unlocks[unlockBin(act.Unlocks)]++
		}
		if act.ActiveHours&proof.AllHours == proof.AllHours && act.InteractiveSeconds >= th.SaturatedSeconds {
			s.sat = append(s.sat, act.Date)
		}
		slot := act.Date % 64
		end := s.slotEnd[slot]
		if s.slotDate[slot] != act.Date || end == 0 {
			end = dayEnd(act.Date)
			s.slotDate[slot], s.slotEnd[slot] = act.Date, end
		}
		if end == 0 { // not a calendar date: as package time normalises it
			var ok bool
			if end, ok = s.dayEnds[act.Date]; !ok {
				end = act.Date.Next().Start(0).Unix()
				s.dayEnds[act.Date] = end
			}
		}
		if day.MintedAt-(end-int64(act.UTCOffsetMinutes)*60) > lateSecs { // Date.Next().Start(offset)
			late++
		}
	}
	activeDays = int32(distinct(s.active))
	add := func(sig Signal, format string, args ...any) {
		findings = append(findings, Finding{Signal: sig, Detail: fmt.Sprintf(format, args...)})
	}
	if !slices.IsSorted(s.minted) {
		slices.Sort(s.minted)
	}
	most, lo := 0, 0
	for hi, t := range s.minted {
		for t-s.minted[lo] > int64(th.BurstWindow/time.Second) {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	if most >= th.BurstRecords && most >= 2 {
		add(Burst, "%d records minted within %s (threshold %d)", most, duration(th.BurstWindow), th.BurstRecords)
	}
	if late >= th.BackfillRecords && late > 0 {
		add(Backfill, "%d records minted more than %s after the end of their date (threshold %d)",
			late, duration(th.BackfillLate), th.BackfillRecords)
	}
	if !slices.IsSorted(s.dateEp) {
		slices.Sort(s.dateEp)
	}
	ep, replayed := slices.Compact(s.dateEp), 0
	for k := 1; k < len(ep); k++ { // a date counts at its second epoch
		if ep[k]>>32 == ep[k-1]>>32 && (k == 1 || ep[k-2]>>32 != ep[k]>>32) {
			replayed++
		}
	}
	if replayed >= th.ReplayDates && replayed > 0 {
		add(Replay, "%d dates reported by two or more epochs (threshold %d)", replayed, th.ReplayDates)
	}

	if n := distinct(s.sat); n >= th.SaturatedDays && n > 0 {
		add(Saturated, "%d saturated days: all 24 active hours and at least %d interactive seconds (threshold %d)",
			n, th.SaturatedSeconds, th.SaturatedDays)
	}
	return activeDays, unlocks, findings
}

// distinct returns the number of distinct dates in v, which it sorts.
func distinct(v []proof.Date) int {
	if !slices.IsSorted(v) {
		slices.Sort(v)
	}
	return len(slices.Compact(v))
}

// dayEnd returns d.Next().Start(0).Unix(), the end of date d in UTC, for a date of
// the years 1970..9999 whose month is 1..12 and day 1..31; 0 for any other.
func dayEnd(d proof.Date) int64 {
	y, m, day := int64(d/10000), int64(d/100%100), int64(d%100)
	if y < 1970 || y > 9999 || m < 1 || m > 12 || day < 1 || day > 31 {
		return 0
	}
	// Days from 1970-01-01 to the civil date (H. Hinnant's days_from_civil), which
	// counts a day past the month's end into the next month, as time.Date does.
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	doy := (153*((m+9)%12)+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return (era*146097+doe-719468)*86400 + 86400
}
