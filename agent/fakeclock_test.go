package agent

import (
	"amos.example/amosd/agent/clock"
	"sync"
	"time"
)

// fakeClock is a clock.Clock the test drives: Advance moves both clocks, Suspend moves them
// while monotonic timers stand still (Go timers do not count suspend), SetWall jumps
// the wall clock alone.
type fakeClock struct {
	mu     sync.Mutex
	wall   time.Time
	boot   time.Duration
	bootID [16]byte
	timers []*fakeTimer
	alarms []*fakeAlarm
}

func newFakeClock(wall time.Time) *fakeClock {
	c := &fakeClock{wall: wall, boot: 10 * time.Second}
	copy(c.bootID[:], "fake-boot-id-001")
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall
}

func (c *fakeClock) Boottime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boot
}

func (c *fakeClock) BootID() [16]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bootID
}

// Advance moves time forward by d and fires what is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.boot += d
	c.wall = c.wall.Add(d)
	c.fire(false)
}

// Suspend sleeps for d: both clocks move, monotonic timers do not, and the wall alarm
// reports the resume the way a timerfd does (fired if due, else a clock change).
func (c *fakeClock) Suspend(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.boot += d
	c.wall = c.wall.Add(d)
	for _, t := range c.timers {
		t.deadline += d
	}
	c.fire(true)
}

// SetWall sets the wall clock: armed alarms report a clock change.
func (c *fakeClock) SetWall(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall = t
	for _, a := range c.alarms {
		if a.armed {
			a.armed = false
			a.send(clock.AlarmClockChanged)
		}
	}
}

func (c *fakeClock) fire(resumed bool) {
	for _, t := range c.timers {
		if t.armed && t.deadline <= c.boot {
			t.armed = false
			select {
			case t.ch <- c.wall:
			default:
			}
		}
	}
	for _, a := range c.alarms {
		switch {
		case a.armed && !c.wall.Before(a.at):
			a.armed = false
			a.send(clock.AlarmFired)
		case a.armed && resumed:
			a.armed = false
			a.send(clock.AlarmClockChanged)
		}
	}
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1), deadline: c.boot + d, armed: true}
	c.timers = append(c.timers, t)
	c.fire(false)
	return t
}

func (c *fakeClock) NewWallAlarm() (clock.WallAlarm, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := &fakeAlarm{c: c, ch: make(chan clock.AlarmEvent, 1)}
	c.alarms = append(c.alarms, a)
	return a, nil
}

type fakeTimer struct {
	c        *fakeClock
	ch       chan time.Time
	deadline time.Duration
	armed    bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.deadline, t.armed = t.c.boot+d, true
	t.c.fire(false)
}

// nextTimer returns how long until the earliest armed monotonic timer fires.
func (c *fakeClock) nextTimer() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best time.Duration
	found := false
	for _, t := range c.timers {
		if t.armed && (!found || t.deadline < best) {
			best, found = t.deadline, true
		}
	}
	return best - c.boot, found
}

// pending returns the deadline of the armed timers (for the no-polling checks).
func (c *fakeClock) armedTimers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.armed {
			n++
		}
	}
	return n
}

type fakeAlarm struct {
	c     *fakeClock
	ch    chan clock.AlarmEvent
	at    time.Time
	armed bool
}

func (a *fakeAlarm) send(ev clock.AlarmEvent) {
	select {
	case a.ch <- ev:
	default:
		if ev == clock.AlarmClockChanged { // a change replaces a pending fire
			select {
			case <-a.ch:
			default:
			}
			a.ch <- ev
		}
	}
}

func (a *fakeAlarm) Set(at time.Time) error {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	a.at, a.armed = at, true
	a.c.fire(false)
	return nil
}

func (a *fakeAlarm) C() <-chan clock.AlarmEvent { return a.ch }

func (a *fakeAlarm) Close() error { return nil }
