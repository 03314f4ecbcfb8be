package agent

import (
	"math/bits"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/sources"
	"amos.example/amosd/store"
)

// InputWindow is how long after an input the owner counts as interacting, where an
// input or idle source exists (docs/eligibility.md).
const InputWindow = 30 * time.Second

// forever is an interactive end that no event will reach.
const forever = time.Duration(1<<63 - 1)

// Bits of store.Tally.State: the sources' last known state, restored after a restart
// within the same boot.
const (
	stScreenKnown uint8 = 1 << iota
	stScreenOn
	stLockKnown
	stLocked
	stIdleKnown
	stIdle
)

// meter accounts the owner's use for one reporting-zone date: it unites what every
// source says into one state, so that overlapping sources never count twice.
type meter struct {
	utcOffset int // minutes east of UTC

	caps                  map[string]sources.Caps // what each available source can report
	screenKnown, screenOn bool
	lockKnown, locked     bool
	idleKnown, idle       bool
	suspended             bool
	hasInput              bool
	lastInput             time.Duration // CLOCK_BOOTTIME of the last input

	counting    bool          // consent given: time and transitions are counted
	at          time.Duration // CLOCK_BOOTTIME up to which time is accounted
	tally       store.Tally   // the date's counters and flags
	interactive time.Duration // the date's interactive time, unrounded
	dirty       bool          // tally changed since it was last saved
}

func newMeter(utcOffset int, date proof.Date, at time.Duration) *meter {
	return &meter{
		utcOffset: utcOffset,
		caps:      map[string]sources.Caps{},
		counting:  true,
		locked:    true, // a phone boots to its lock screen, screen off until told
		at:        at,
		tally:     store.Tally{Date: date, UTCOffsetMinutes: int16(utcOffset)},
	}
}

// restore continues a saved tally; the source state is trusted only within the boot
// that saved it.
func (m *meter) restore(t store.Tally, sameBoot bool) {
	m.tally = t
	m.tally.UTCOffsetMinutes = int16(m.utcOffset)
	m.interactive = time.Duration(t.InteractiveSeconds) * time.Second
	if sameBoot {
		s := t.State
		m.screenKnown, m.screenOn = s&stScreenKnown != 0, s&stScreenOn != 0
		m.lockKnown, m.locked = s&stLockKnown != 0, s&stLocked != 0
		m.idleKnown, m.idle = s&stIdleKnown != 0, s&stIdle != 0
		if s == 0 {
			m.locked = true // nothing was known: the boot state
		}
	}
}

// state packs the source state for store.Tally.State.
func (m *meter) state() uint8 {
	var s uint8
	for _, b := range []struct {
		on  bool
		bit uint8
	}{{m.screenKnown, stScreenKnown}, {m.screenOn, stScreenOn}, {m.lockKnown, stLockKnown},
		{m.locked, stLocked}, {m.idleKnown, stIdleKnown}, {m.idle, stIdle}} {
		if b.on {
			s |= b.bit
		}
	}
	return s
}

// newDay starts date with zero counters, keeping what the sources last said, and
// the flags if the date stays the same (a clock jump or a lost tally still happened).
func (m *meter) newDay(date proof.Date) {
	var flags proof.Flags
	if date == m.tally.Date {
		flags = m.tally.Flags
	}
	m.tally = store.Tally{Date: date, UTCOffsetMinutes: int16(m.utcOffset), Flags: flags}
	m.interactive = 0
	m.dirty = true
}

// used reports whether the date had any interaction: only such a date gets a record.
func (m *meter) used() bool {
	t := m.tally
	return t.InteractiveSeconds > 0 || t.Unlocks > 0 || t.ScreenOns > 0 || t.ActiveHours != 0
}

func (m *meter) allCaps() sources.Caps {
	var c sources.Caps
	for _, v := range m.caps {
		c |= v
	}
	return c
}

// interactiveEnd returns the CLOCK_BOOTTIME until which the owner counts as
// interacting from m.at on, if no further event comes: m.at if not interacting now.
// Interactive means screen on, unlocked, and, where an input or idle source exists,
// input within InputWindow or an idle hint that is off (docs/eligibility.md).
func (m *meter) interactiveEnd() time.Duration {
	caps := m.allCaps()
	if m.suspended || caps == 0 && !m.screenKnown && !m.lockKnown {
		return m.at
	}
	if (caps&sources.CapScreen != 0 || m.screenKnown) && !m.screenOn {
		return m.at
	}
	if (caps&sources.CapLock != 0 || m.lockKnown) && m.locked {
		return m.at
	}
	if caps&(sources.CapInput|sources.CapIdle) == 0 {
		return forever
	}
	if caps&sources.CapIdle != 0 && m.idleKnown && !m.idle {
		return forever
	}
	if m.hasInput {
		return max(m.at, m.lastInput+InputWindow)
	}
	return m.at
}

// interacting reports whether the owner counts as interacting at m.at.
func (m *meter) interacting() bool { return m.interactiveEnd() > m.at }

// advance accounts the time from m.at to now (CLOCK_BOOTTIME); wall is the trusted
// time at now, which places the interactive time in the date's local hours.
func (m *meter) advance(now time.Duration, wall time.Time) {
	if now <= m.at {
		return
	}
	if end := min(now, m.interactiveEnd()); end > m.at && m.counting {
		m.addInterval(wall.Add(m.at-now), wall.Add(end-now))
	}
	m.at = now
}

// addInterval adds interactive time [from, to) and marks its local hours.
func (m *meter) addInterval(from, to time.Time) {
	m.interactive += to.Sub(from)
	zone := time.FixedZone("", m.utcOffset*60)
	for t := from; t.Before(to); {
		l := t.In(zone)
		next := time.Date(l.Year(), l.Month(), l.Day(), l.Hour()+1, 0, 0, 0, zone)
		if next.After(to) {
			next = to
		}
		if next.After(t) {
			m.tally.ActiveHours |= 1 << uint(l.Hour())
		}
		t = next
	}
	m.tally.InteractiveSeconds = uint32(min(86400, (m.interactive+time.Second/2)/time.Second))
	m.dirty = true
}

// apply changes the state by one event observed at now (CLOCK_BOOTTIME). The caller
// advances the meter to now first.
func (m *meter) apply(ev sources.Event, now time.Duration) {
	before := m.state()
	defer func() {
		if m.state() != before && m.counting {
			m.dirty = true // the state is saved with the tally
		}
	}()
	switch ev.Kind {
	case sources.EventScreenOn:
		// Transitions count from the last value, known or assumed at boot (off,
		// locked), so that a source telling the same state again counts nothing.
		if !m.screenOn && m.counting {
			m.tally.ScreenOns = satAdd(m.tally.ScreenOns)
			m.dirty = true
		}
		m.screenKnown, m.screenOn = true, true
	case sources.EventScreenOff:
		m.screenKnown, m.screenOn = true, false
	case sources.EventLocked:
		m.lockKnown, m.locked = true, true
	case sources.EventUnlocked:
		if m.locked && m.counting {
			m.tally.Unlocks = satAdd(m.tally.Unlocks)
			m.dirty = true
		}
		m.lockKnown, m.locked = true, false
	case sources.EventInput:
		m.hasInput, m.lastInput = true, now
	case sources.EventIdle:
		m.idleKnown, m.idle = true, true
	case sources.EventActive:
		m.idleKnown, m.idle = true, false
		m.hasInput, m.lastInput = true, now
	case sources.EventSuspend:
		m.suspended = true
	case sources.EventResume:
		m.suspended = false
	case sources.EventAvailable:
		m.caps[ev.Source] |= ev.Caps
	case sources.EventUnavailable:
		m.caps[ev.Source] &^= ev.Caps
		if m.caps[ev.Source] == 0 {
			delete(m.caps, ev.Source)
		}
		// What a gone source said is stale: without it the screen and lock conditions
		// fall back to what the remaining sources can tell (docs/eligibility.md), never to "on".
		left := m.allCaps()
		if ev.Caps&sources.CapScreen != 0 && left&sources.CapScreen == 0 {
			m.screenKnown = false
		}
		if ev.Caps&sources.CapLock != 0 && left&sources.CapLock == 0 {
			m.lockKnown = false
		}
		if left&sources.CapIdle == 0 {
			m.idleKnown = false // nobody can say any more
		}
	}
}

func satAdd(v uint16) uint16 {
	if v == 1<<16-1 {
		return v
	}
	return v + 1
}

// activity returns the record body of the date. Interactive seconds are clamped to
// what its active hours can hold: a wall clock set back can place more than an hour
// of use in one local hour, and the record must stay valid (docs/protocol.md).
func (m *meter) activity() *proof.ActivityDay {
	t := m.tally
	secs := min(t.InteractiveSeconds, 3600*uint32(bits.OnesCount32(t.ActiveHours)), 86400)
	return &proof.ActivityDay{
		Date:               t.Date,
		UTCOffsetMinutes:   int16(m.utcOffset),
		InteractiveSeconds: secs,
		Unlocks:            t.Unlocks,
		ScreenOns:          t.ScreenOns,
		ActiveHours:        t.ActiveHours & proof.AllHours,
	}
}
