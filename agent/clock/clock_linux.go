package clock

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// bootIDPath is where the kernel publishes the id of the current boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// systemClock is the real Clock of a Linux system.
type systemClock struct {
	bootID [16]byte
}

var _ Clock = (*systemClock)(nil)

// NewSystemClock returns the clock of the running Linux system: the wall clock,
// CLOCK_BOOTTIME, the kernel's boot id (read once, here), monotonic timers and
// timerfd-based wall-clock alarms. It fails when the boot id cannot be read or parsed,
// or when CLOCK_BOOTTIME is not available.
func NewSystemClock() (Clock, error) {
	return newSystemClock(bootIDPath)
}

func newSystemClock(bootIDFile string) (*systemClock, error) {
	if _, err := boottime(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return nil, fmt.Errorf("system clock: %w", err)
	}
	id, err := parseBootID(string(b))
	if err != nil {
		return nil, fmt.Errorf("system clock: %s: %w", bootIDFile, err)
	}
	return &systemClock{bootID: id}, nil
}

// Now returns time.Now().
func (c *systemClock) Now() time.Time { return time.Now() }

// Boottime returns CLOCK_BOOTTIME.
func (c *systemClock) Boottime() time.Duration {
	d, err := boottime()
	if err != nil {
		// NewSystemClock read this clock successfully, and the kernel does not take a
		// clock away from a running process.
		panic(err)
	}
	return d
}

// BootID returns the boot id read by NewSystemClock.
func (c *systemClock) BootID() [16]byte { return c.bootID }

// NewTimer returns a time.Timer (CLOCK_MONOTONIC, which does not count suspend).
func (c *systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

// NewWallAlarm returns a disarmed timerfd alarm on CLOCK_REALTIME.
func (c *systemClock) NewWallAlarm() (WallAlarm, error) {
	a, err := newWallAlarm()
	if err != nil {
		return nil, err
	}
	a.start(a.f.Read)
	return a, nil
}

func boottime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime(CLOCK_BOOTTIME): %w", err)
	}
	// Nano widens before multiplying: Sec is an int32 on 32-bit arm.
	return time.Duration(ts.Nano()), nil
}

// parseBootID parses a boot id as the kernel writes it: a UUID in the canonical
// 8-4-4-4-12 hexadecimal form, in either case, optionally followed by one newline.
func parseBootID(s string) ([16]byte, error) {
	var id [16]byte
	u := strings.TrimSuffix(s, "\n")
	if len(u) != 36 {
		return id, fmt.Errorf("boot id %q: want 36 characters, have %d", s, len(u))
	}
	for _, i := range [...]int{8, 13, 18, 23} {
		if u[i] != '-' {
			return id, fmt.Errorf("boot id %q: want '-' at offset %d", s, i)
		}
	}
	h := u[0:8] + u[9:13] + u[14:18] + u[19:23] + u[24:36]
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return [16]byte{}, fmt.Errorf("boot id %q: %w", s, err)
	}
	return id, nil
}

// sysTimer is a Timer on time.Timer.
type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time   { return t.t.C }
func (t sysTimer) Stop() bool            { return t.t.Stop() }
func (t sysTimer) Reset(d time.Duration) { t.t.Reset(d) }

// wallAlarm is a WallAlarm on a timerfd on CLOCK_REALTIME armed with
// TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET.
//
// One goroutine per alarm reads the timerfd through the runtime's netpoller (epoll), so
// nothing runs, and the CPU is not woken, until the timer expires or the wall clock is
// set. Each read returns an expiration count (AlarmFired) or ECANCELED when the wall
// clock was set since the timer was armed or last read (AlarmClockChanged).
//
// Events are delivered on a channel with room for one, without ever blocking:
//   - a new event is dropped when an event is already pending, except that an
//     AlarmClockChanged replaces a pending AlarmFired. So at most one event is pending,
//     and an AlarmClockChanged is never hidden. Either event means "recompute the
//     deadline and Set again".
//   - AlarmFired is delivered at most once per Set, and only when the setting made by
//     the latest Set has expired: an expiration of a setting that Set has since
//     replaced is dropped. (If a Set in the past races with the expiry of the
//     previous setting, their one AlarmFired stands for both.)
//   - AlarmClockChanged disarms the alarm (the kernel would otherwise still fire it
//     at its time on the new clock). The disarm happens before the event is queued,
//     so a Set racing with it may be undone, but only by an AlarmClockChanged that the
//     consumer has yet to receive: Setting again on receipt, as the consumer does to
//     recompute its deadline, always leaves the alarm armed.
//   - The kernel reports a change to the first of the reader and Set to look: when
//     timerfd_settime sees it, Set arms the new setting all the same (as the kernel
//     does) and delivers AlarmClockChanged itself, without disarming.
//
// Note that Linux also reports a resume from suspend as a change of the wall clock
// (CLOCK_REALTIME moved against CLOCK_MONOTONIC; fs/timerfd.c, timerfd_resume), and
// may then drop an expiration that fell in the suspend: after a resume the consumer
// gets AlarmClockChanged, possibly alone.
type wallAlarm struct {
	f       *os.File
	rc      syscall.RawConn
	settime func(fd, flags int, newValue, oldValue *unix.ItimerSpec) error // unix.TimerfdSettime; tests wrap it
	ch      chan AlarmEvent
	done    chan struct{} // closed when the reader has returned

	mu      sync.Mutex
	fired   bool // AlarmFired was delivered for the latest Set
	closed  bool // Close was called
	stopped bool // the reader returned and closed ch
}

func newWallAlarm() (*wallAlarm, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("wall alarm: timerfd_create(CLOCK_REALTIME): %w", err)
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	// A nonblocking descriptor that the netpoller refused would make Read return
	// EAGAIN instead of parking; deadlines are only supported on pollable files.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("wall alarm: timerfd is not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wall alarm: %w", err)
	}
	return &wallAlarm{
		f:       f,
		rc:      rc,
		settime: unix.TimerfdSettime,
		ch:      make(chan AlarmEvent, 1),
		done:    make(chan struct{}),
	}, nil
}

// start runs the reader, which reads the timerfd with read (a.f.Read but in tests).
func (a *wallAlarm) start(read func([]byte) (int, error)) { go a.run(read) }

func (a *wallAlarm) run(read func([]byte) (int, error)) {
	defer close(a.done)
	var buf [8]byte
	for {
		n, err := read(buf[:])
		if !a.handle(n, err) {
			a.mu.Lock()
			a.stopped = true
			close(a.ch)
			a.mu.Unlock()
			return
		}
	}
}

// handle turns the result of one read into an event. It reports whether the reader
// should go on.
func (a *wallAlarm) handle(n int, err error) bool {
	switch {
	case err == nil && n == 8:
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.fired && !a.armed() {
			a.fired = true
			a.deliver(AlarmFired)
		}
		return true
	case errors.Is(err, unix.ECANCELED):
		a.mu.Lock()
		defer a.mu.Unlock()
		a.disarm()
		a.deliver(AlarmClockChanged)
		return true
	default:
		// os.ErrClosed after Close. Anything else (a short read, EAGAIN from a
		// descriptor outside the netpoller) would repeat forever: stop, which closes C.
		return false
	}
}

// armed reports whether the timer is set for a time still to come. a.mu is held.
func (a *wallAlarm) armed() bool {
	var cur unix.ItimerSpec
	var gerr error
	if err := a.rc.Control(func(fd uintptr) { gerr = unix.TimerfdGettime(int(fd), &cur) }); err != nil || gerr != nil {
		return false // when in doubt, report: a spurious AlarmFired only costs a recompute
	}
	return cur.Value.Sec != 0 || cur.Value.Nsec != 0
}

// disarm stops the timer. a.mu is held.
func (a *wallAlarm) disarm() {
	var off unix.ItimerSpec
	// Errors can only mean the alarm is being closed.
	_ = a.rc.Control(func(fd uintptr) { _ = a.settime(int(fd), 0, &off, nil) })
}

// deliver queues ev without blocking (see wallAlarm). a.mu is held, so there is one
// sender at a time and the final send cannot block.
func (a *wallAlarm) deliver(ev AlarmEvent) {
	if a.stopped {
		return
	}
	select {
	case a.ch <- ev:
		return
	default:
	}
	if ev != AlarmClockChanged {
		return
	}
	select {
	case <-a.ch:
	default:
	}
	a.ch <- ev
}

// Set arms the alarm for at, replacing any earlier setting. A time already past
// fires at once. Set may be called from any goroutine.
func (a *wallAlarm) Set(at time.Time) error {
	// A zero it_value would disarm the timer, and a negative one is invalid: a time
	// at or before the epoch is as past as the epoch's first nanosecond.
	if first := time.Unix(0, 1); at.Before(first) {
		at = first
	}
	ts, err := unix.TimeToTimespec(at)
	if err != nil { // beyond 2038 on 32-bit arm
		return fmt.Errorf("wall alarm: set %v: %w", at, err)
	}
	spec := unix.ItimerSpec{Value: ts}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("wall alarm: set: %w", os.ErrClosed)
	}
	var serr error
	if err := a.rc.Control(func(fd uintptr) {
		serr = a.settime(int(fd), unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET, &spec, nil)
	}); err != nil {
		return fmt.Errorf("wall alarm: set: %w", err)
	}
	canceled := errors.Is(serr, unix.ECANCELED)
	if serr != nil && !canceled {
		return fmt.Errorf("wall alarm: timerfd_settime: %w", serr)
	}
	a.fired = false
	if canceled {
		// The wall clock was set since the timer was last armed or read. The kernel
		// armed the new setting before it said so, and the reader will not hear of
		// this change.
		a.deliver(AlarmClockChanged)
	}
	return nil
}

// C delivers the alarm's events. It is closed by the time Close returns, or earlier if
// reading the timerfd fails (which Linux gives no reason to).
func (a *wallAlarm) C() <-chan AlarmEvent { return a.ch }

// Close disarms the alarm, closes its timerfd and waits for its reader to return,
// which closes C. Closing again does nothing.
func (a *wallAlarm) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	err := a.f.Close() // wakes the reader with os.ErrClosed
	<-a.done
	if err != nil {
		return fmt.Errorf("wall alarm: close: %w", err)
	}
	return nil
}
