package timetrust

import (
	"strings"
	"testing"
	"time"
)

// real is the true time at CLOCK_BOOTTIME 0 in these tests; the wall clock reads it too
// unless a step says otherwise.
var real0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

const threeYears = 3 * 365 * 24 * time.Hour

type answer struct {
	at     time.Duration // CLOCK_BOOTTIME
	offset time.Duration // server_time = real + offset
	wall   time.Duration // wall clock = real + wall
	want   Outcome
	trust  time.Duration // trusted time - real after the answer (checked when believed)
}

func TestObserve(t *testing.T) {
	build := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		answers []answer
	}{
		{"first answer agrees with the wall clock", []answer{
			{at: time.Minute, offset: 2 * time.Second, want: Believed, trust: 2 * time.Second},
		}},
		{"drift within Agree is believed at once", []answer{
			{at: time.Minute, want: Believed},
			{at: 2 * time.Hour, offset: 4 * time.Minute, wall: 0, want: Believed, trust: 4 * time.Minute},
		}},
		{"a proxy that lies once is never believed", []answer{
			{at: time.Minute, want: Believed},
			{at: time.Hour, offset: threeYears, want: Held},
			{at: 2 * time.Hour, want: Believed},
			{at: 26 * time.Hour, want: Believed},
		}},
		{"a lie repeated at once is not a confirmation", []answer{
			{at: time.Minute, want: Believed},
			{at: time.Hour, offset: threeYears, want: Held},
			{at: time.Hour + time.Second, offset: threeYears, want: Held},
			{at: time.Hour + 14*time.Minute, offset: threeYears, want: Held},
		}},
		{"a proxy that lies for an hour is believed, then undone by the first true answer", []answer{
			{at: time.Minute, want: Believed},
			{at: time.Hour, offset: threeYears, want: Held},
			{at: time.Hour + 20*time.Minute, offset: threeYears, want: Corrected, trust: threeYears},
			{at: time.Hour + 40*time.Minute, offset: threeYears, want: Believed, trust: threeYears},
			{at: 2*time.Hour + time.Minute, want: Corrected},
		}},
		{"a wrong wall clock: the server is confirmed by its second answer", []answer{
			{at: time.Minute, wall: -26 * 365 * 24 * time.Hour, want: Held},
			{at: 30 * time.Hour, wall: -26 * 365 * 24 * time.Hour, want: Corrected},
			{at: 31 * time.Hour, wall: -26 * 365 * 24 * time.Hour, want: Believed},
		}},
		{"a disagreeing second answer replaces the candidate", []answer{
			{at: time.Minute, want: Believed},
			{at: time.Hour, offset: threeYears, want: Held},
			{at: 2 * time.Hour, offset: 2 * threeYears, want: Held},
			{at: 3 * time.Hour, offset: threeYears, want: Held},
			{at: 3*time.Hour + ConfirmAfter, offset: threeYears, want: Corrected, trust: threeYears},
		}},
		{"before the build date is ignored", []answer{
			{at: time.Minute, offset: -40 * 24 * time.Hour, wall: -40 * 24 * time.Hour, want: Ignored},
		}},
		{"more than 30 years after the build is ignored", []answer{
			{at: time.Minute, offset: 31 * 365 * 24 * time.Hour, want: Ignored},
		}},
		{"backwards lie held, undone by truth", []answer{
			{at: time.Minute, want: Believed},
			{at: time.Hour, offset: -2 * time.Hour, want: Held},
			{at: 2 * time.Hour, want: Believed},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := New(build)
			for i, a := range tt.answers {
				real := real0.Add(a.at)
				got, why := j.Observe(real.Add(a.offset).Unix(), a.at, real.Add(a.wall))
				if got != a.want {
					t.Fatalf("answer %d (%+v): %v (%s), want %v", i, a, got, why, a.want)
				}
				if why == "" {
					t.Errorf("answer %d: no reason given", i)
				}
				if got == Believed || got == Corrected {
					anc, ok := j.Anchor()
					if !ok {
						t.Fatalf("answer %d: %v but no anchor", i, got)
					}
					if d := anc.Time(a.at).Sub(real) - a.trust; d > time.Second || d < -time.Second {
						t.Errorf("answer %d: trusted time is real%+v, want real%+v", i, anc.Time(a.at).Sub(real), a.trust)
					}
				}
			}
		})
	}
}

func TestReasonsNameTheTimes(t *testing.T) {
	j := New(time.Time{})
	_, why := j.Observe(real0.Add(threeYears).Unix(), time.Minute, real0)
	if !strings.Contains(why, "2029-12-01") || !strings.Contains(why, "2026-12-02") {
		t.Errorf("reason %q does not name the disputed time and the wall clock", why)
	}
	_, why = j.Observe(time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Minute, real0)
	if !strings.Contains(why, "2019-01-01") || !strings.Contains(why, "2026-01-01") {
		t.Errorf("reason %q does not name the time and the build date", why)
	}
}

func TestRestore(t *testing.T) {
	j := New(time.Time{})
	j.Restore(Anchor{ServerTime: real0.Unix(), At: time.Hour})
	if got, _ := j.Observe(real0.Add(time.Hour).Unix(), 2*time.Hour, real0.Add(-threeYears)); got != Believed {
		t.Errorf("an answer agreeing with the restored anchor: %v, want believed", got)
	}
}
