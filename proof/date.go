package proof

import (
	"fmt"
	"time"
)

// Date is a calendar date in the reporting zone, as the number YYYYMMDD (docs/protocol.md).
type Date uint32

// Dates outside these years are rejected as malformed.
const (
	minYear = 1970
	maxYear = 9999
)

// Reporting-zone offsets allowed in a record: UTC-12:00 to UTC+14:00, the range of the
// world's civil time zones.
const (
	MinUTCOffsetMinutes = -12 * 60
	MaxUTCOffsetMinutes = 14 * 60
)

// NewDate returns the Date for year, month and day; it does not check them (see Valid).
func NewDate(year int, month time.Month, day int) Date {
	return Date(year*10000 + int(month)*100 + day)
}

// DateOf returns the date of instant t in the zone utcOffsetMinutes east of UTC.
func DateOf(t time.Time, utcOffsetMinutes int) Date {
	l := t.UTC().Add(time.Duration(utcOffsetMinutes) * time.Minute)
	return NewDate(l.Year(), l.Month(), l.Day())
}

// Year returns the year of d.
func (d Date) Year() int { return int(d / 10000) }

// Month returns the month of d.
func (d Date) Month() time.Month { return time.Month(d / 100 % 100) }

// Day returns the day of the month of d.
func (d Date) Day() int { return int(d % 100) }

// Valid reports whether d is a real calendar date between the years 1970 and 9999.
func (d Date) Valid() bool {
	y, m, day := d.Year(), d.Month(), d.Day()
	if y < minYear || y > maxYear || m < time.January || m > time.December || day < 1 {
		return false
	}
	t := time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
	return t.Month() == m && t.Day() == day
}

// Start returns the first instant of d in the zone utcOffsetMinutes east of UTC.
func (d Date) Start(utcOffsetMinutes int) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC).
		Add(-time.Duration(utcOffsetMinutes) * time.Minute)
}

// Next returns the date after d.
func (d Date) Next() Date {
	t := time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, time.UTC)
	return NewDate(t.Year(), t.Month(), t.Day())
}

// String returns d as YYYY-MM-DD.
func (d Date) String() string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year(), int(d.Month()), d.Day())
}
