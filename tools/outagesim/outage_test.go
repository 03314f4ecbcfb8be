package outagesim

import (
	"strings"
	"testing"
	"time"
)

func TestOutageSchedule(t *testing.T) {
	for _, mode := range []OutageMode{OutageDown, OutageRetryAfter, OutageRetryDate} {
		t.Run(mode.String(), func(t *testing.T) {
			var out strings.Builder
			start := time.Now()
			res, err := RunOutage(OutageConfig{Devices: 10000, Seed: 3, Mode: mode, Out: &out})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s\n%s", time.Since(start).Round(time.Millisecond), out.String())
			if res.SteadyRequests < 10000/2 || res.SteadyPeak == 0 || res.Peak == 0 {
				t.Fatalf("steady %d requests, peak %d, outage peak %d", res.SteadyRequests, res.SteadyPeak, res.Peak)
			}
			if r := res.RatioToSteadyPeak(); r <= 0 || r > 100 {
				t.Errorf("ratio %.2f", r)
			}
			if res.Queued == 0 || res.Failed == 0 {
				t.Errorf("the outage (over midnight) left %d devices queued and failed %d requests", res.Queued, res.Failed)
			}
			// Drained within the longest wait the agent can draw: 1.5 × 6 h.
			if d := res.DrainTime(); d <= 0 || d > 9*time.Hour+time.Minute {
				t.Errorf("drain time %s", d)
			}
		})
	}
}

func TestOutageDuringTheDayHardlyMatters(t *testing.T) {
	res, err := RunOutage(OutageConfig{Devices: 10000, Seed: 3, Start: 10 * time.Hour, Length: 6 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Peak > res.SteadyPeak {
		t.Errorf("an outage from 10:00 to 16:00 made a peak of %d/min, above the normal day's %d", res.Peak, res.SteadyPeak)
	}
}

func TestEventHeapOrders(t *testing.T) {
	var h eventHeap
	for _, v := range []int64{5, 3, 9, 1, 1, 7, 2} {
		h.push(event{t: v})
	}
	prev := int64(-1)
	for len(h) > 0 {
		e := h.pop()
		if e.t < prev {
			t.Fatalf("%d after %d", e.t, prev)
		}
		prev = e.t
	}
}

// TestOutageRetryDateSpreads: phones all told the HTTP date of the end of the outage
// come back over an hour and a half, not in one second (transport.Backoff's jitter on
// Retry-After; without it the busiest second held every queued phone).
func TestOutageRetryDateSpreads(t *testing.T) {
	res, err := RunOutage(OutageConfig{Devices: 10000, Seed: 3, Mode: OutageRetryDate})
	if err != nil {
		t.Fatal(err)
	}
	if res.PeakSecond > res.Queued/5 || res.RatioToSteadyPeak() > 1.5 {
		t.Fatalf("busiest second %d of %d queued phones, %.2fx the normal peak minute", res.PeakSecond, res.Queued, res.RatioToSteadyPeak())
	}
}
