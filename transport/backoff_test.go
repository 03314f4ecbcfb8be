package transport

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// within reports whether d is a wait drawn around interval with randomization 0.5.
func within(d, interval time.Duration) bool {
	lo := time.Duration(float64(interval) * (1 - BackoffRandomizationFactor))
	hi := time.Duration(float64(interval)*(1+BackoffRandomizationFactor)) + 1 // the library's +1
	return d >= lo && d <= hi
}

func TestBackoffSchedule(t *testing.T) {
	for _, tc := range []struct {
		initial, max time.Duration
		intervals    []time.Duration // the interval each successive wait is drawn around
	}{
		{0, 0, []time.Duration{ // docs/protocol.md defaults
			30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
			16 * time.Minute, 32 * time.Minute, 64 * time.Minute, 128 * time.Minute, 256 * time.Minute,
			6 * time.Hour, 6 * time.Hour, 6 * time.Hour,
		}},
		{10 * time.Second, 45 * time.Second, []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 45 * time.Second, 45 * time.Second}},
		{time.Minute, time.Second, []time.Duration{time.Minute, time.Minute}}, // max raised to initial
	} {
		// Many runs, so that the randomization shows both ends of its range.
		ceiling := tc.max // the largest interval
		if ceiling == 0 {
			ceiling = DefaultMaxBackoff
		}
		ceiling = max(ceiling, tc.initial)
		lowSeen, highSeen := false, false
		for run := 0; run < 200; run++ {
			b := NewBackoff(tc.initial, tc.max)
			if b.Interval() != 0 {
				t.Fatalf("fresh backoff has interval %v", b.Interval())
			}
			for i, iv := range tc.intervals {
				d := b.Next()
				if !within(d, iv) {
					t.Fatalf("%v/%v wait %d: %v, want %v ±50%%", tc.initial, tc.max, i, d, iv)
				}
				lowSeen = lowSeen || d < iv*3/4
				highSeen = highSeen || d > iv*5/4
				if want := min(iv*2, ceiling); b.Interval() != want {
					t.Fatalf("%v/%v after wait %d: interval %v, want %v", tc.initial, tc.max, i, b.Interval(), want)
				}
			}
		}
		if !lowSeen || !highSeen {
			t.Errorf("%v/%v: 200 runs never drew from both ends of ±50%%", tc.initial, tc.max)
		}
	}
}

func TestBackoffNeverStops(t *testing.T) {
	b := NewBackoff(time.Nanosecond, time.Millisecond)
	for i := 0; i < 10000; i++ {
		if d := b.Next(); d < 0 {
			t.Fatalf("wait %d: %v (Stop)", i, d)
		}
	}
	if b.Interval() != time.Millisecond {
		t.Fatalf("interval %v", b.Interval())
	}
}

func TestBackoffReset(t *testing.T) {
	b := NewBackoff(0, 0)
	for range 5 {
		b.Next()
	}
	b.RetryAfter(time.Hour)
	b.Reset()
	if b.Interval() != 0 {
		t.Fatalf("interval %v after Reset", b.Interval())
	}
	if d := b.Next(); !within(d, 30*time.Second) {
		t.Fatalf("first wait after Reset: %v (a Retry-After survived?)", d)
	}
}

func TestBackoffRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		header string        // a Retry-After value
		d      time.Duration // or a duration, when header is ""
		want   time.Duration
	}{
		{"seconds", "120", 0, 2 * time.Minute},
		{"zero", "0", 0, 0},
		{"http date", now.Add(90 * time.Minute).Format(http.TimeFormat), 0, 90 * time.Minute},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, 0},
		{"over 24 h in seconds", "86401", 0, 24 * time.Hour},
		{"huge seconds", "99999999999999999999999999", 0, 24 * time.Hour},
		{"date over 24 h", now.Add(72 * time.Hour).Format(http.TimeFormat), 0, 24 * time.Hour},
		{"negative duration", "", -time.Minute, 0},
		{"duration over 24 h", "", 25 * time.Hour, 24 * time.Hour},
	} {
		d := tc.d
		if tc.header != "" {
			var err error
			if d, err = ParseRetryAfter(tc.header, now); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		b := NewBackoff(0, 0)
		b.Next() // one failure: the interval is now 1 m
		b.RetryAfter(d)
		// Never earlier than asked, at most half as much again, never past 24 h.
		if got := b.Next(); got < tc.want || got > min(tc.want*3/2, MaxRetryAfter) {
			t.Errorf("%s: imposed wait %v, want %v to %v", tc.name, got, tc.want, min(tc.want*3/2, MaxRetryAfter))
		}
		// The interval went on growing (1 m → 2 m); the next wait is drawn again.
		if b.Interval() != 2*time.Minute {
			t.Errorf("%s: interval %v after the imposed wait, want 2m", tc.name, b.Interval())
		}
		if got := b.Next(); !within(got, 2*time.Minute) {
			t.Errorf("%s: wait after the imposed one: %v, want 2m ±50%%", tc.name, got)
		}
	}
	// The garbage a server may send never reaches the Backoff: ParseRetryAfter refuses it.
	for _, bad := range []string{"", " ", "-5", "+5", "1.5", "5s", "soon", "Mon, 32 Nov 2026 08:00:00 GMT", "0x10"} {
		if d, err := ParseRetryAfter(bad, now); !errors.Is(err, ErrRetryAfter) {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want ErrRetryAfter", bad, d, err)
		}
	}
}

func TestParseRetryAfterFormats(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"30":                              30 * time.Second,
		" 30 ":                            30 * time.Second,
		"00030":                           30 * time.Second,
		"86400":                           24 * time.Hour,
		"Tue, 24 Nov 2026 08:05:00 GMT":   5 * time.Minute, // IMF-fixdate
		"Tuesday, 24-Nov-26 08:05:00 GMT": 5 * time.Minute, // RFC 850
		"Tue Nov 24 08:05:00 2026":        5 * time.Minute, // asctime
	} {
		got, err := ParseRetryAfter(in, now)
		if err != nil || got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestBackoffState(t *testing.T) {
	b := NewBackoff(0, 0)
	for range 4 {
		b.Next()
	}
	saved := b.Interval()
	if saved != 8*time.Minute {
		t.Fatalf("interval after 4 failures: %v, want 8m", saved)
	}
	// A restart: a new Backoff picks up where the old one was.
	r := NewBackoff(0, 0)
	r.SetInterval(saved)
	if r.Interval() != saved {
		t.Fatalf("restored interval %v", r.Interval())
	}
	for _, want := range []time.Duration{8 * time.Minute, 16 * time.Minute, 32 * time.Minute} {
		if d := r.Next(); !within(d, want) {
			t.Fatalf("restored wait %v, want %v ±50%%", d, want)
		}
	}
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 0},                          // not backing off
		{-time.Second, 0},               // nonsense: start over
		{time.Second, 30 * time.Second}, // below initial
		{48 * time.Hour, 6 * time.Hour}, // above max
		{90 * time.Second, 90 * time.Second},
	} {
		r := NewBackoff(0, 0)
		r.Next()
		r.RetryAfter(time.Hour) // a restore drops a pending Retry-After
		r.SetInterval(tc.in)
		if r.Interval() != tc.want {
			t.Errorf("SetInterval(%v): interval %v, want %v", tc.in, r.Interval(), tc.want)
		}
		want := tc.want
		if want == 0 {
			want = 30 * time.Second
		}
		if d := r.Next(); !within(d, want) {
			t.Errorf("SetInterval(%v): next wait %v, want %v ±50%%", tc.in, d, want)
		}
	}
}

// TestBackoffRetryAfterSpreads: phones given the same Retry-After come back over half
// of it again, not in the same second (the HTTP date of the end of an outage would
// otherwise bring every queued phone back at once).
func TestBackoffRetryAfterSpreads(t *testing.T) {
	const asked = 3 * time.Hour
	seconds := map[time.Duration]bool{}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 2000 {
		b := NewBackoff(0, 0)
		b.RetryAfter(asked)
		d := b.Next()
		if d < asked || d >= asked*3/2 {
			t.Fatalf("wait %v for a Retry-After of %v", d, asked)
		}
		seconds[d.Truncate(time.Second)] = true
		lo, hi = min(lo, d), max(hi, d)
	}
	if len(seconds) < 1500 || hi-lo < asked/2*9/10 { // 2000 draws over 5400 s: about 1670 distinct
		t.Fatalf("2000 phones came back in %d distinct seconds, over %v", len(seconds), hi-lo)
	}
}
