package transport

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// The retry schedule of docs/protocol.md.
const (
	DefaultInitialBackoff      = 30 * time.Second
	DefaultMaxBackoff          = 6 * time.Hour
	BackoffMultiplier          = 2
	BackoffRandomizationFactor = 0.5
)

// Backoff is the retry schedule of the sync loop (docs/protocol.md): an exponential backoff of
// github.com/cenkalti/backoff/v4 with multiplier 2, randomization 0.5 and no limit on
// the elapsed time, whose interval starts at the initial backoff and grows to at most
// the maximum; each wait is the interval ±50 %. A server's Retry-After, plus up to 50 %
// at random, replaces the next wait (RetryAfter), and the interval can be saved and restored across a restart
// (Interval, SetInterval).
//
// A Backoff is not safe for concurrent use: the sync loop owns it.
type Backoff struct {
	b            *backoff.ExponentialBackOff
	initial, max time.Duration
	// interval mirrors the library's current interval (which it does not export): the
	// interval the next wait is drawn around, or 0 while no failure is pending.
	interval time.Duration
	imposed  *time.Duration // a Retry-After for the next wait, if any
}

// NewBackoff returns a reset Backoff. An initial or max of 0 means the default (30 s,
// 6 h); a max below initial is raised to initial.
func NewBackoff(initial, max time.Duration) *Backoff {
	if initial <= 0 {
		initial = DefaultInitialBackoff
	}
	if max <= 0 {
		max = DefaultMaxBackoff
	}
	if max < initial {
		max = initial
	}
	eb := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMultiplier(BackoffMultiplier),
		backoff.WithRandomizationFactor(BackoffRandomizationFactor),
		backoff.WithMaxInterval(max),
		backoff.WithMaxElapsedTime(0),
	)
	return &Backoff{b: eb, initial: initial, max: max}
}

// Next returns how long to wait before the next attempt after a failed one, and grows
// the interval. If RetryAfter was called since the last Next, the wait is that instead
// (the interval still grows, so that a server that keeps failing is tried less and less
// often once it stops sending Retry-After). It never returns backoff.Stop.
func (b *Backoff) Next() time.Duration {
	if b.interval == 0 {
		b.interval = b.initial
	}
	d := b.b.NextBackOff()
	b.interval = b.grow(b.interval)
	if b.imposed != nil {
		d = *b.imposed
		b.imposed = nil
	}
	return d
}

// grow is the library's interval step: multiply, capped at max without overflowing.
func (b *Backoff) grow(d time.Duration) time.Duration {
	if float64(d) >= float64(b.max)/BackoffMultiplier {
		return b.max
	}
	return time.Duration(float64(d) * BackoffMultiplier)
}

// RetryAfterJitter is the largest share of a Retry-After that RetryAfter adds to it at
// random: the randomization factor of the backoff, upwards only.
const RetryAfterJitter = BackoffRandomizationFactor

// RetryAfter makes the next Next return d, clamped to [0, MaxRetryAfter] — the wait a
// server asked for with Retry-After (see RetryAfterError) — plus a random part of up to
// half of it, never past MaxRetryAfter. Never earlier than the server asked, and not
// all at once: a server that gives every phone the same Retry-After (the HTTP date of
// the end of a maintenance, or 5 s while it sheds load) would otherwise get them all
// back in the same second (tools/fleetsim's outage scenario).
func (b *Backoff) RetryAfter(d time.Duration) {
	d = clampWait(d)
	if j := time.Duration(float64(d) * RetryAfterJitter); j > 0 {
		d = min(d+rand.N(j), MaxRetryAfter)
	}
	b.imposed = &d
}

// Reset starts the schedule over after a successful attempt and drops a pending
// RetryAfter.
func (b *Backoff) Reset() {
	b.b.Reset()
	b.interval = 0
	b.imposed = nil
}

// Interval returns the state to save across a restart: the interval the next wait will
// be drawn around, or 0 if no failure happened since the last Reset (the zero value of
// store.SyncState.BackoffInterval). A pending RetryAfter is not part of it: the caller
// saves the time of the next attempt it scheduled.
func (b *Backoff) Interval() time.Duration { return b.interval }

// SetInterval restores a state saved with Interval: 0 resets, anything else is clamped
// to [initial, max] and the next wait is drawn around it.
func (b *Backoff) SetInterval(d time.Duration) {
	if d <= 0 {
		b.Reset()
		return
	}
	d = min(max(d, b.initial), b.max)
	// The library keeps its interval unexported; Reset sets it to InitialInterval.
	b.b.InitialInterval = d
	b.b.Reset()
	b.b.InitialInterval = b.initial
	b.interval = d
	b.imposed = nil
}
