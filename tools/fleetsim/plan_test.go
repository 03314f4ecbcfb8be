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

// TestOffNights: about a fifth of the phones are off at one to three midnights after a
// day of use and mint that day when they start again, within 47 hours; a phone off for
// more than a day has no use on the next date, and every late mint falls in the month.
// Three dates minted more than 36 h late (the collector's backfill signal) stay rare.
func TestOffNights(t *testing.T) {
	for _, days := range []int{28, 31} {
		rng := rand.New(rand.NewPCG(uint64(days), 11))
		const n = 20000
		withOff, backfill := 0, 0
		for range n {
			p := NewPlan(rng, "konka", days)
			if p.Delays == nil {
				continue
			}
			if len(p.Delays) != len(p.Days) {
				t.Fatalf("%d delays for %d days", len(p.Delays), len(p.Days))
			}
			late, over36 := 0, 0
			for k, d := range p.Delays {
				if d == 0 {
					continue
				}
				late++
				date := int(p.Days[k].Date)
				end := time.Duration(date) * 24 * time.Hour // the end of the date, from the month's start
				if d < time.Hour || d >= 47*time.Hour || end+d >= time.Duration(days)*24*time.Hour {
					t.Fatalf("date %d of %d minted %s after its midnight", date, days, d)
				}
				if d >= 24*time.Hour && k+1 < len(p.Days) && int(p.Days[k+1].Date) == date+1 {
					t.Fatalf("off %s after date %d, yet used on the next date", d, date)
				}
				if d > 36*time.Hour {
					over36++
				}
			}
			if late > 0 {
				withOff++
			}
			if late > 3 {
				t.Fatalf("%d off nights", late)
			}
			if over36 >= 3 {
				backfill++
			}
		}
		if share := float64(withOff) / n; share < 0.15 || share > 0.22 {
			t.Errorf("%d days: %.3f of the phones off at a midnight, want about 0.19", days, share)
		}
		if backfill > 2 {
			t.Errorf("%d days: %d of %d phones with three dates minted more than 36 h late", days, backfill, n)
		}
	}
}
