package testenv

import (
	"testing"
	"time"
)

// PinnedDay is a "today" that a test pins a clock to, and the month before it
// (YYYY-MM), which the demo and the fleet simulator take by default.
type PinnedDay struct {
	Today    time.Time // 00:00 UTC of the day
	Previous string
}

// PinnedDays are the days the tests pin "today" to: the end of a leap February, the
// first of a month after a 28-day February, and both sides of a new year. The months
// before them have 29, 28, 30 and 31 days.
func PinnedDays(t testing.TB) []PinnedDay {
	t.Helper()
	var days []PinnedDay
	for _, d := range [][2]string{{"2028-02-29", "2028-01"}, {"2027-03-01", "2027-02"}, {"2026-12-31", "2026-11"}, {"2027-01-01", "2026-12"}} {
		today, err := time.Parse(time.DateOnly, d[0])
		if err != nil {
			t.Fatal(err)
		}
		days = append(days, PinnedDay{Today: today, Previous: d[1]})
	}
	return days
}
