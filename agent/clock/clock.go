package clock

import "time"

// Clock is everything the agent knows of time, so that tests can drive it.
type Clock interface {
	// Now returns the wall clock (CLOCK_REALTIME).
	Now() time.Time
	// Boottime returns CLOCK_BOOTTIME: monotonic, counting suspend.
	Boottime() time.Duration
	// BootID returns the kernel's boot id (/proc/sys/kernel/random/boot_id).
	BootID() [16]byte
	// NewTimer returns a one-shot timer on the monotonic clock that fires after d.
	NewTimer(d time.Duration) Timer
	// NewWallAlarm returns an alarm on the wall clock that also reports when the wall
	// clock is set.
	NewWallAlarm() (WallAlarm, error)
}

// Timer is a one-shot monotonic timer, as time.Timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration)
}

// AlarmEvent is what a WallAlarm reports.
type AlarmEvent uint8

// Alarm events.
const (
	AlarmFired        AlarmEvent = iota + 1 // the wall clock reached the time set
	AlarmClockChanged                       // the wall clock was set; the alarm is disarmed
)

// WallAlarm fires at an absolute wall-clock time, also after a suspend that slept
// through it, and reports a change of the wall clock (a timerfd on CLOCK_REALTIME with
// TFD_TIMER_CANCEL_ON_SET on Linux). It never polls.
type WallAlarm interface {
	// Set arms the alarm for at, replacing any earlier setting.
	Set(at time.Time) error
	// C delivers the alarm's events.
	C() <-chan AlarmEvent
	// Close releases the alarm.
	Close() error
}
