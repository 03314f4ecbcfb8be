package ledger

import (
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// TestDaysIn: daysIn agrees with the calendar of package time.
func TestDaysIn(t *testing.T) {
	for y := 1970; y <= 9999; y++ {
		for m := 1; m <= 12; m++ {
			want := time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
			if got := daysIn(y, m); got != want {
				t.Fatalf("daysIn(%d, %d) = %d, want %d", y, m, got, want)
			}
			if !proof.NewDate(y, time.Month(m), want).Valid() || proof.NewDate(y, time.Month(m), want+1).Valid() {
				t.Fatalf("%d-%02d: %d days, but proof.Date disagrees", y, m, want)
			}
		}
	}
}
