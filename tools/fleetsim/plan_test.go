package fleetsim

import (
	"math/rand/v2"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/rigs/testenv"
)

// TestNewPlanEveryMonthLength draws thousands of plans for months of 28, 29, 30 and 31
// days: none panics (a Regular owner used to draw up to 31 active days in any month),
// dates are distinct, ascending and inside the month, and each profile keeps its range.
func TestNewPlanEveryMonthLength(t *testing.T) {
	elig := collector.DefaultEligibility()
	for _, tc := range []struct {
		month collector.Month
		days  int
	}{
		{collector.Month{Year: 2027, Month: time.February}, 28},
		{collector.Month{Year: 2028, Month: time.February}, 29},
		{collector.Month{Year: 2026, Month: time.November}, 30},
		{collector.Month{Year: 2026, Month: time.October}, 31},
		{collector.Month{Year: 2026, Month: time.December}, 31},
		{collector.Month{Year: 2027, Month: time.January}, 31},
	} {
		t.Run(tc.month.String(), func(t *testing.T) {
			if got := tc.month.Last().Day(); got != tc.days {
				t.Fatalf("%s has %d days, want %d", tc.month, got, tc.days)
			}
			rng := rand.New(rand.NewPCG(uint64(tc.days), 7))
			maxRegular, profiles := 0, map[Profile]int{}
			const n = 4000
			for range n {
				p := NewPlan(rng, "konka", tc.days)
				profiles[p.Profile]++
				prev := 0
				for _, d := range p.Days {
					if int(d.Date) <= prev || int(d.Date) > tc.days {
						t.Fatalf("%s plan: day %d after %d (month of %d days)", p.Profile, d.Date, prev, tc.days)
					}
					prev = int(d.Date)
				}
				active := p.ActiveDays(elig)
				var lo, hi int
				switch p.Profile {
				case Dormant:
					lo, hi = 0, 0
				case Light:
					lo, hi = 1, 9
				case Borderline:
					lo, hi = 9, 10
				case Regular:
					lo, hi = 12, tc.days
					maxRegular = max(maxRegular, active)
				}
				if active < lo || active > hi {
					t.Fatalf("%s plan: %d active days, want %d..%d", p.Profile, active, lo, hi)
				}
			}
			if maxRegular != tc.days {
				t.Errorf("no regular owner used the phone every day of the month (at most %d of %d)", maxRegular, tc.days)
			}
			for p, share := range map[Profile]float64{Dormant: 0.06, Light: 0.12, Borderline: 0.06, Regular: 0.76} {
				if got := float64(profiles[p]) / n; got < share-0.03 || got > share+0.03 {
					t.Errorf("%s: share %.3f, want about %.2f", p, got, share)
				}
			}
		})
	}
}

func TestPreviousMonth(t *testing.T) {
	for _, pd := range testenv.PinnedDays(t) {
		if got := PreviousMonth(pd.Today.Add(23 * time.Hour)); got.String() != pd.Previous {
			t.Errorf("PreviousMonth(%s) = %s, want %s", pd.Today.Format(time.DateOnly), got, pd.Previous)
		}
	}
}
