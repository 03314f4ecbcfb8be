package sources

import (
	"sync"
	"time"
)

// SpoofLogInterval is the least time between two log lines of one D-Bus source about
// forged signals (docs/dbus-api.md, "Owners and spoofed signals"): the first forged
// signal after a quiet interval is logged at once; those that follow it are only
// counted, and summed up in one line at the end of each interval in which some came.
const SpoofLogInterval = time.Minute

// timerSource is the time source of the rate limit of forged-signal log lines:
// time.AfterFunc in the daemon, a fake that the test advances in tests.
type timerSource interface {
	// AfterFunc calls f in its own goroutine after d, unless stop is called first;
	// stop reports whether it stopped the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realTimers is the timerSource of the daemon: time.AfterFunc, on the monotonic clock.
type realTimers struct{}

func (realTimers) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// spoofLog writes the log lines of one source's forged signals at a bounded rate: at
// most one line per SpoofLogInterval, plus one when the connection ends. The count of
// Status (spoofed_signals) is kept by the source, exactly, whatever is logged.
type spoofLog struct {
	source string // "amos-power", "logind": the prefix of the lines
	logf   func(string, ...any)
	timers timerSource

	mu      sync.Mutex
	armed   bool        // a line was written less than SpoofLogInterval ago
	stop    func() bool // the armed timer's
	gen     uint64      // bumped by flush: a timer armed before it does nothing
	pending uint64      // forged signals not logged yet
	latest  string      // the last of them
}

func newSpoofLog(source string, logf func(string, ...any)) *spoofLog {
	return &spoofLog{source: source, logf: logf, timers: realTimers{}}
}

// forged logs, or counts for the next summary, one forged signal; what says what it
// was and who sent it.
func (s *spoofLog) forged(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.armed {
		s.logf("%s: ignored %s", s.source, what)
		s.arm()
		return
	}
	s.pending++
	s.latest = what
}

func (s *spoofLog) arm() {
	s.armed = true
	gen := s.gen
	s.stop = s.timers.AfterFunc(SpoofLogInterval, func() { s.tick(gen) })
}

// tick ends an interval: it sums up the forged signals that came in it, if any, and
// starts the next; after an interval without any, the next one is logged at once.
func (s *spoofLog) tick(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return
	}
	if s.pending == 0 {
		s.armed, s.stop = false, nil
		return
	}
	s.summary()
	s.arm()
}

func (s *spoofLog) summary() {
	s.logf("%s: ignored %d more forged signals since the last line; the latest: %s", s.source, s.pending, s.latest)
	s.pending, s.latest = 0, ""
}

// flush logs the forged signals not logged yet and stops the timer: when the
// connection ends, so that the log misses none and no timer outlives the connection.
func (s *spoofLog) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
	}
	s.gen++
	if s.pending > 0 {
		s.summary()
	}
	s.armed, s.stop = false, nil
}
