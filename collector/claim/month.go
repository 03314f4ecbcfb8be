package claim

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// ErrMonth means a month is not of the form YYYY-MM.
var ErrMonth = errors.New("malformed month")

// Month is a calendar month of the reporting zone.
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth parses exactly "YYYY-MM", years 1970..9999.
func ParseMonth(s string) (Month, error) {
	bad := func(why string) (Month, error) {
		return Month{}, fmt.Errorf("month %q: %s: %w", s, why, ErrMonth)
	}
	if len(s) != 7 || s[4] != '-' {
		return bad("want YYYY-MM")
	}
	for i, c := range []byte(s) {
		if i != 4 && (c < '0' || c > '9') {
			return bad("want YYYY-MM")
		}
	}
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[5:])
	switch {
	case y < 1970:
		return bad("year before 1970")
	case m < 1 || m > 12:
		return bad("month not 01..12")
	}
	return Month{y, time.Month(m)}, nil
}

// MonthOf returns the month of a date.
func MonthOf(d proof.Date) Month { return Month{d.Year(), d.Month()} }

// String returns the month as YYYY-MM.
func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// First returns the first date of the month.
func (m Month) First() proof.Date { return proof.NewDate(m.Year, m.Month, 1) }

// Last returns the last date of the month.
func (m Month) Last() proof.Date {
	t := time.Date(m.Year, m.Month+1, 0, 0, 0, 0, 0, time.UTC)
	return proof.NewDate(t.Year(), t.Month(), t.Day())
}

// Key returns the month as the ledger keys it.
func (m Month) Key() ledger.MonthKey { return ledger.MonthKey(m.Year*100 + int(m.Month)) }

// Schedule says when each month closes: AfterDays days after its last date, at 00:00
// of the reporting zone (UTC offset OffsetMinutes).
type Schedule struct {
	AfterDays     int
	OffsetMinutes int
}

// DefaultSchedule closes a month 10 days after its end, at 00:00 UTC+8.
func DefaultSchedule() Schedule { return Schedule{AfterDays: 10, OffsetMinutes: 480} }

// ClosesAt returns the moment month m closes.
func (s Schedule) ClosesAt(m Month) time.Time {
	zone := time.FixedZone("", s.OffsetMinutes*60)
	return time.Date(m.Year, m.Month+1, 1+s.AfterDays, 0, 0, 0, 0, zone)
}

// Closed reports whether month m is closed at now.
func (s Schedule) Closed(m Month, now time.Time) bool { return !now.Before(s.ClosesAt(m)) }
