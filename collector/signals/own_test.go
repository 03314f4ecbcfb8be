package signals

import (
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// TestDayEnd: dayEnd is Date.Next().Start(0).Unix() for every day 1..31 of every month
// of the years 1970..9999, and 0 outside them.
func TestDayEnd(t *testing.T) {
	for y := 1970; y <= 9999; y++ {
		for m := time.January; m <= time.December; m++ {
			for day := 1; day <= 31; day++ {
				d := proof.NewDate(y, m, day)
				if got, want := dayEnd(d), d.Next().Start(0).Unix(); got != want {
					t.Fatalf("dayEnd(%d) = %d, want %d", uint32(d), got, want)
				}
			}
		}
	}
	for _, d := range []proof.Date{0, 19691231, 20260001, 20261301, 20261000, 20261032, 100000101} {
		if got := dayEnd(d); got != 0 {
			t.Errorf("dayEnd(%d) = %d, want 0", uint32(d), got)
		}
	}
}
