package collector

import (
	"sync"
	"time"
)

// DefaultUncertifiedDevicesPerHour is the default of limits.uncertified_devices_per_hour.
const DefaultUncertifiedDevicesPerHour = 1000

// MaxUncertifiedDevicesPerHour is the largest limits.uncertified_devices_per_hour.
const MaxUncertifiedDevicesPerHour = 1000000

// admission is the budget of new devices whose genesis no registered maker certified
// (docs/protocol.md 10.7): a token bucket of perHour tokens, full when the collector
// starts, refilled continuously at perHour an hour on the collector's clock. It counts
// in exact integers: credit is tokens × one hour in nanoseconds.
type admission struct {
	mu      sync.Mutex
	perHour int64
	credit  int64
	at      time.Time // of the last refill; the zero time before the first
}

// left refills the bucket up to now and returns its whole tokens. A clock that moves
// back refills nothing.
func (b *admission) left(now time.Time) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if full := b.perHour * int64(time.Hour); b.at.IsZero() || now.Sub(b.at) >= time.Hour {
		b.credit, b.at = full, now
	} else if now.After(b.at) {
		b.credit, b.at = min(full, b.credit+int64(now.Sub(b.at))*b.perHour), now
	}
	return b.credit / int64(time.Hour)
}

// spend takes n tokens: those of the devices a committed transaction admitted.
func (b *admission) spend(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.credit -= n * int64(time.Hour)
}
