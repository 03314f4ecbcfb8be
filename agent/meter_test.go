package agent

import (
	"amos.example/amosd/sources"
	"testing"
	"time"
)

// step is one event at a second offset of the scenario (boottime = wall offset).
type step struct {
	at  int // seconds since the start
	src string
	ev  sources.EventKind
	cap sources.Caps
}

func TestMeterScenarios(t *testing.T) {
	base := time.Date(2026, 11, 24, 9, 0, 0, 0, time.FixedZone("CST", 8*3600)) // 01:00 UTC
	power := sources.CapScreen | sources.CapLock | sources.CapInput
	tests := []struct {
		name    string
		steps   []step
		until   int // account up to this second
		seconds uint32
		unlocks uint16
		screens uint16
		hours   uint32
	}{
		{"power: screen on, unlock, one input", []step{
			{0, "amos-power", sources.EventAvailable, power},
			{10, "amos-power", sources.EventScreenOn, 0}, {12, "amos-power", sources.EventUnlocked, 0}, {20, "amos-power", sources.EventInput, 0},
		}, 600, 30, 1, 1, 1 << 9},
		{"two sources report the same input: counted once", []step{
			{0, "amos-power", sources.EventAvailable, power}, {0, "evdev", sources.EventAvailable, sources.CapInput},
			{1, "amos-power", sources.EventScreenOn, 0}, {1, "amos-power", sources.EventUnlocked, 0},
			{100, "amos-power", sources.EventInput, 0}, {100, "evdev", sources.EventInput, 0}, {110, "evdev", sources.EventInput, 0}, {115, "amos-power", sources.EventInput, 0},
		}, 600, 45, 1, 1, 1 << 9},
		{"overlapping screen reports: one screen_on, one unlock", []step{
			{0, "amos-power", sources.EventAvailable, power},
			{1, "amos-power", sources.EventScreenOn, 0}, {1, "api", sources.EventScreenOn, 0},
			{2, "amos-power", sources.EventUnlocked, 0}, {2, "api", sources.EventUnlocked, 0}, {3, "api", sources.EventInput, 0},
		}, 600, 30, 1, 1, 1 << 9},
		{"locked: input does not count", []step{
			{0, "amos-power", sources.EventAvailable, power},
			{1, "amos-power", sources.EventScreenOn, 0}, {1, "amos-power", sources.EventLocked, 0}, {5, "amos-power", sources.EventInput, 0},
		}, 600, 0, 0, 1, 0},
		{"screen off ends the interval", []step{
			{0, "amos-power", sources.EventAvailable, power},
			{1, "amos-power", sources.EventScreenOn, 0}, {1, "amos-power", sources.EventUnlocked, 0}, {5, "amos-power", sources.EventInput, 0},
			{15, "amos-power", sources.EventScreenOff, 0},
		}, 600, 10, 1, 1, 1 << 9},
		{"evdev only: input windows", []step{
			{0, "evdev", sources.EventAvailable, sources.CapInput}, {10, "evdev", sources.EventInput, 0}, {100, "evdev", sources.EventInput, 0},
		}, 600, 60, 0, 0, 1 << 9},
		{"api only, no input source: screen on and unlocked suffice", []step{
			{10, "api", sources.EventScreenOn, 0}, {10, "api", sources.EventUnlocked, 0}, {130, "api", sources.EventScreenOff, 0},
		}, 600, 120, 1, 1, 1 << 9},
		{"no source at all: nothing", []step{{10, "evdev", sources.EventInput, 0}}, 600, 0, 0, 0, 0},
		{"logind idle hint: active until idle", []step{
			{0, "logind", sources.EventAvailable, sources.CapLock | sources.CapIdle}, {0, "logind", sources.EventUnlocked, 0},
			{60, "logind", sources.EventActive, 0}, {360, "logind", sources.EventIdle, 0},
		}, 600, 300, 1, 0, 1 << 9},
		{"suspend stops the clock", []step{
			{0, "amos-power", sources.EventAvailable, power}, {0, "logind", sources.EventAvailable, sources.CapIdle},
			{1, "amos-power", sources.EventScreenOn, 0}, {1, "amos-power", sources.EventUnlocked, 0}, {1, "logind", sources.EventActive, 0},
			{61, "logind", sources.EventSuspend, 0}, {500, "logind", sources.EventResume, 0},
		}, 560, 120, 1, 1, 1 << 9},
		{"a source that goes away stops the clock: its screen state is stale", []step{
			{0, "amos-power", sources.EventAvailable, power},
			{1, "amos-power", sources.EventScreenOn, 0}, {1, "amos-power", sources.EventUnlocked, 0}, {1, "amos-power", sources.EventInput, 0},
			{10, "amos-power", sources.EventUnavailable, power},
		}, 3600, 9, 1, 1, 1 << 9},
		{"the same state told again is no transition", []step{
			{0, "amos-power", sources.EventAvailable, power},
			{1, "amos-power", sources.EventScreenOn, 0}, {1, "amos-power", sources.EventUnlocked, 0},
			{5, "amos-power", sources.EventUnavailable, power}, {6, "amos-power", sources.EventAvailable, power},
			{7, "amos-power", sources.EventScreenOn, 0}, {7, "amos-power", sources.EventUnlocked, 0},
		}, 10, 0, 1, 1, 0},
		{"an interval across an hour boundary marks both hours", []step{
			{0, "api", sources.EventScreenOn, 0}, {0, "api", sources.EventUnlocked, 0},
		}, 3630, 3630, 1, 1, 1<<9 | 1<<10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMeter(480, 20261124, 0)
			for _, s := range tc.steps {
				now := time.Duration(s.at) * time.Second
				m.advance(now, base.Add(now))
				m.apply(sources.Event{Source: s.src, Kind: s.ev, Caps: s.cap}, now)
			}
			end := time.Duration(tc.until) * time.Second
			m.advance(end, base.Add(end))
			got := m.tally
			if got.InteractiveSeconds != tc.seconds || got.Unlocks != tc.unlocks || got.ScreenOns != tc.screens || got.ActiveHours != tc.hours {
				t.Fatalf("got %d s, %d unlocks, %d screen_ons, hours %024b; want %d s, %d, %d, %024b",
					got.InteractiveSeconds, got.Unlocks, got.ScreenOns, got.ActiveHours, tc.seconds, tc.unlocks, tc.screens, tc.hours)
			}
		})
	}
}

func TestMeterRestoreAndClamp(t *testing.T) {
	m := newMeter(480, 20261124, 0)
	m.apply(sources.Event{Source: "api", Kind: sources.EventScreenOn}, 0)
	m.apply(sources.Event{Source: "api", Kind: sources.EventLocked}, 0)
	saved := m.tally
	saved.State = m.state()
	r := newMeter(480, 20261124, 0)
	r.restore(saved, true)
	if !r.screenKnown || !r.screenOn || !r.lockKnown || !r.locked {
		t.Fatalf("state not restored within the boot: %+v", r)
	}
	r2 := newMeter(480, 20261124, 0)
	r2.restore(saved, false)
	if r2.screenKnown || r2.lockKnown {
		t.Fatal("state restored across a boot")
	}
	// Two hours of use placed in one local hour (the wall clock went back): the
	// record's seconds are clamped to what one hour holds.
	r.tally.InteractiveSeconds, r.tally.ActiveHours = 7200, 1<<10
	if a := r.activity(); a.InteractiveSeconds != 3600 {
		t.Fatalf("clamped to %d", a.InteractiveSeconds)
	}
}
