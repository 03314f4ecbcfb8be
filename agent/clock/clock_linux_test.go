package clock

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bound is how long a test waits for something that must happen. It is generous
// because the tests also run under qemu-user.
const bound = 5 * time.Second

func formatBootID(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newTestClock(t *testing.T) Clock {
	t.Helper()
	c, err := NewSystemClock()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSystemClockNow(t *testing.T) {
	c := newTestClock(t)
	before := time.Now()
	now := c.Now()
	after := time.Now()
	if now.Before(before) || now.After(after) {
		t.Errorf("Now() = %v, not within [%v, %v]", now, before, after)
	}
}

func TestSystemClockBoottime(t *testing.T) {
	c := newTestClock(t)
	prev := time.Duration(0)
	for i := 0; i < 1000; i++ {
		var mono unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
			t.Fatal(err)
		}
		bt := c.Boottime()
		if bt < prev {
			t.Fatalf("Boottime went back from %v to %v", prev, bt)
		}
		if m := time.Duration(mono.Nano()); bt < m {
			t.Fatalf("Boottime %v < CLOCK_MONOTONIC %v read before it", bt, m)
		}
		prev = bt
	}
	if prev <= 0 {
		t.Fatalf("Boottime = %v", prev)
	}
	start := c.Boottime()
	time.Sleep(20 * time.Millisecond)
	if d := c.Boottime() - start; d < 20*time.Millisecond {
		t.Errorf("Boottime advanced by %v over a 20ms sleep", d)
	}
}

func TestSystemClockBootID(t *testing.T) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseBootID(string(b))
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClock(t)
	if got := c.BootID(); got != want {
		t.Fatalf("BootID() = %s, %s says %q", formatBootID(got), bootIDPath, b)
	}
	if got := c.BootID(); got != want {
		t.Fatalf("second BootID() = %s, want %s", formatBootID(got), formatBootID(want))
	}
	if got := newTestClock(t).BootID(); got != want {
		t.Fatalf("BootID() of a second clock = %s, want %s", formatBootID(got), formatBootID(want))
	}
	if want == [16]byte{} {
		t.Error("boot id is all zero")
	}
}

func TestNewSystemClockBadBootID(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "boot_id")
	if err := os.WriteFile(bad, []byte("not-a-uuid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newSystemClock(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("malformed boot id file: err = %v, want an error naming %s", err, bad)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := newSystemClock(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing boot id file: err = %v, want ErrNotExist naming %s", err, missing)
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("3F1C2A4B-0D1E-4F20-8a9b-0123456789AB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := newSystemClock(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := formatBootID(c.BootID()); got != "3f1c2a4b-0d1e-4f20-8a9b-0123456789ab" {
		t.Errorf("BootID() = %s", got)
	}
}

func TestParseBootID(t *testing.T) {
	want := [16]byte{0x3f, 0x1c, 0x2a, 0x4b, 0x0d, 0x1e, 0x4f, 0x20, 0x8a, 0x9b, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab}
	for _, s := range []string{
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789ab",
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789ab\n",
		"3F1C2A4B-0D1E-4F20-8A9B-0123456789AB",
		"3F1C2A4B-0D1E-4F20-8A9B-0123456789AB\n",
		"3f1C2a4B-0d1E-4f20-8A9b-0123456789aB\n",
	} {
		got, err := parseBootID(s)
		if err != nil {
			t.Errorf("parseBootID(%q): %v", s, err)
		} else if got != want {
			t.Errorf("parseBootID(%q) = %x, want %x", s, got, want)
		}
	}
	for _, s := range []string{
		"",
		"\n",
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789a",   // short
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789abc", // long
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789ab\n\n", // two newlines
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789ab ",    // trailing space
		" 3f1c2a4b-0d1e-4f20-8a9b-0123456789ab",    // leading space
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789ab\r\n", // CRLF
		"\n3f1c2a4b-0d1e-4f20-8a9b-0123456789ab",   // newline first
		"3f1c2a4b0d1e4f208a9b0123456789ab",         // no dashes
		"3f1c2a4b00d1e-4f20-8a9b-0123456789ab",     // dash moved
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789ab"[:35] + "g",
		"3f1c2a4g-0d1e-4f20-8a9b-0123456789ab",      // non-hex
		"3f1c2a4b-0d1e-4f20-8a9b-0123456789a\u00e9", // non-ASCII, right byte length
		"3f1c2a4b_0d1e_4f20_8a9b_0123456789ab",      // wrong separator
		"3f1c2a4b-0d1e-4f20-8a9b-01234567-9ab",      // extra dash
		"{3f1c2a4b-0d1e-4f20-8a9b-0123456789ab}",    // braces
		"+f1c2a4b-0d1e-4f20-8a9b-0123456789ab",      // sign
	} {
		if got, err := parseBootID(s); err == nil {
			t.Errorf("parseBootID(%q) = %x, want an error", s, got)
		}
	}
}

func FuzzParseBootID(f *testing.F) {
	f.Add("3f1c2a4b-0d1e-4f20-8a9b-0123456789ab\n")
	f.Add("3F1C2A4B-0D1E-4F20-8A9B-0123456789AB")
	f.Add("3f1c2a4b0d1e4f208a9b0123456789ab")
	f.Add("00000000-0000-0000-0000-000000000000\n\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseBootID(s)
		if err != nil {
			if id != [16]byte{} {
				t.Errorf("parseBootID(%q) failed but returned %x", s, id)
			}
			return
		}
		canon := formatBootID(id)
		if want := strings.ToLower(strings.TrimSuffix(s, "\n")); canon != want {
			t.Errorf("parseBootID(%q) = %s, want %s", s, canon, want)
		}
		again, err := parseBootID(canon + "\n")
		if err != nil || again != id {
			t.Errorf("canonical form %q does not parse back to %x: %x, %v", canon, id, again, err)
		}
	})
}

func TestSystemTimer(t *testing.T) {
	c := newTestClock(t)
	start := time.Now()
	tm := c.NewTimer(50 * time.Millisecond)
	select {
	case <-tm.C():
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("timer fired after %v", d)
		}
	case <-time.After(bound):
		t.Fatal("timer did not fire")
	}
	tm.Reset(time.Hour)
	if !tm.Stop() {
		t.Error("Stop of a running timer returned false")
	}
	tm.Reset(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(bound):
		t.Fatal("reset timer did not fire")
	}
}

// The tests of real alarms below run on machines whose wall clock anyone may set at any
// moment (a time daemon, or the shared test host whose CLOCK_REALTIME another process
// sets every 100ms or so). Each set cancels the alarm, which reports AlarmClockChanged
// and disarms: not a fault of the alarm, and not a firing. The tests do what the daemon
// does, Set the same time again, but only once a clockSets watch confirms that the
// clock was indeed set: on a machine nobody disturbs, an AlarmClockChanged still fails
// them.

// clockSets watches for the wall clock being set: a timerfd on CLOCK_REALTIME armed a
// day ahead with TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET, which the kernel cancels
// whenever it cancels the alarms under test, provided it was armed before them.
type clockSets struct {
	fd   int
	seen bool // the clock was set since the watch was armed
}

// watchClockSets arms a clockSets, to be made before the alarms it accounts for are
// first Set.
func watchClockSets(t *testing.T) *clockSets {
	t.Helper()
	fd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	ts, err := unix.TimeToTimespec(time.Now().Add(24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	spec := unix.ItimerSpec{Value: ts}
	if err := unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET, &spec, nil); err != nil {
		t.Fatal(err)
	}
	return &clockSets{fd: fd}
}

// accountFor fails the test unless the wall clock was set since w was armed, which
// accounts for an AlarmClockChanged that the test did not cause (what). The kernel
// cancels every timerfd in one pass, but may reach w after the alarm, so w is given up
// to bound to show the set.
//
// Once w has seen a set, later AlarmClockChanged are accepted without a set of their
// own: w cannot count sets (it reports all those since its last read as one), and the
// kernel may report to an alarm, at its next Set, a set that came between the read that
// reported an earlier set and the disarm that followed.
func (w *clockSets) accountFor(t *testing.T, what string) {
	t.Helper()
	if w.seen {
		return
	}
	deadline := time.Now().Add(bound)
	for !w.seen {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s, but the wall clock was not set", what)
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatal(err)
		}
		var b [8]byte
		_, err := unix.Read(w.fd, b[:])
		switch {
		case errors.Is(err, unix.ECANCELED):
			w.seen = true
		case err == nil: // the clock reached a day ahead: it was set, and more than once
			w.seen = true
		case errors.Is(err, unix.EAGAIN):
		default:
			t.Fatal(err)
		}
	}
	t.Logf("%s: the host's wall clock is being set by another process", what)
}

func newTestAlarm(t *testing.T) (WallAlarm, *clockSets) {
	t.Helper()
	w := watchClockSets(t)
	a, err := newTestClock(t).NewWallAlarm()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, w
}

// waitEvent returns the next event of c, failing the test after bound.
func waitEvent(t *testing.T, c <-chan AlarmEvent) AlarmEvent {
	t.Helper()
	select {
	case ev, ok := <-c:
		if !ok {
			t.Fatal("alarm channel closed")
		}
		return ev
	case <-time.After(bound):
		t.Fatalf("no alarm event within %v", bound)
		return 0
	}
}

// waitFired waits for a, last Set for at, to deliver AlarmFired, and returns when it
// did, failing the test after bound. An AlarmClockChanged that w accounts for (a set of
// the wall clock, which disarmed a) makes it Set a for at again, as the daemon does.
func waitFired(t *testing.T, w *clockSets, a WallAlarm, at time.Time) time.Time {
	t.Helper()
	timeout := time.NewTimer(bound)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-a.C():
			got := time.Now()
			switch {
			case !ok:
				t.Fatal("alarm channel closed")
			case ev == AlarmFired:
				return got
			case ev == AlarmClockChanged:
				w.accountFor(t, "AlarmClockChanged while waiting for AlarmFired")
				if err := a.Set(at); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("event %d, want AlarmFired", ev)
			}
		case <-timeout.C:
			t.Fatalf("no AlarmFired within %v", bound)
		}
	}
}

// quiet fails the test if a fires, or closes its channel, within d. An
// AlarmClockChanged that w accounts for is no firing; it disarmed a, which quiet Sets
// for rearm again, unless rearm is zero (a has fired for its latest Set).
func quiet(t *testing.T, w *clockSets, a WallAlarm, d time.Duration, rearm time.Time) {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-a.C():
			if !ok || ev != AlarmClockChanged {
				t.Fatalf("unexpected alarm event %d (open %v)", ev, ok)
			}
			w.accountFor(t, "AlarmClockChanged while the alarm must stay quiet")
			if !rearm.IsZero() {
				if err := a.Set(rearm); err != nil {
					t.Fatal(err)
				}
			}
		case <-timeout.C:
			return
		}
	}
}

// early reports whether an alarm Set at set (a reading of both clocks) for at, which
// fired at got, fired more than slack before its time by the wall clock it follows and
// by the monotonic clock. Where nobody sets the wall clock the two agree; where someone
// does, the alarm follows the wall clock, which may have stepped forward (an alarm on
// time by the wall clock is then early by the monotonic one) or, since it fired, back.
func early(set, at, got time.Time, slack time.Duration) bool {
	return got.Round(0).Before(at.Round(0).Add(-slack)) && got.Sub(set) < at.Sub(set)-slack
}

func TestWallAlarmFires(t *testing.T) {
	a, w := newTestAlarm(t)
	start := time.Now()
	at := start.Add(300 * time.Millisecond)
	if err := a.Set(at); err != nil {
		t.Fatal(err)
	}
	if got := waitFired(t, w, a, at); early(start, at, got, 50*time.Millisecond) {
		t.Fatalf("alarm for +300ms fired after %v", got.Sub(start))
	}
	quiet(t, w, a, 100*time.Millisecond, time.Time{})
	// The alarm can be used again.
	at = time.Now().Add(50 * time.Millisecond)
	if err := a.Set(at); err != nil {
		t.Fatal(err)
	}
	waitFired(t, w, a, at)
}

func TestWallAlarmPast(t *testing.T) {
	a, w := newTestAlarm(t)
	for _, at := range []time.Time{
		time.Now().Add(-time.Hour),
		time.Now(),
		time.Unix(0, 0), // a zero it_value would disarm
		time.Unix(-1, 0),
		{},
	} {
		start := time.Now()
		if err := a.Set(at); err != nil {
			t.Fatalf("Set(%v): %v", at, err)
		}
		if d := waitFired(t, w, a, at).Sub(start); d > time.Second {
			t.Errorf("Set(%v) fired after %v", at, d)
		}
	}
}

func TestWallAlarmFarFuture(t *testing.T) {
	a, w := newTestAlarm(t)
	at := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	err := a.Set(at)
	if unsafe.Sizeof(unix.Timespec{}.Sec) == 4 {
		// 32-bit arm: the timerfd_settime of x/sys takes a 32-bit time_t.
		if !errors.Is(err, unix.ERANGE) {
			t.Fatalf("Set(%v) with a 32-bit time_t: %v, want ERANGE", at, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Set(%v): %v", at, err)
	}
	far := time.Unix(1<<62, 0)
	if err := a.Set(far); err != nil {
		t.Fatalf("Set(far beyond ktime): %v", err)
	}
	quiet(t, w, a, 50*time.Millisecond, far)
}

func TestWallAlarmResetReplaces(t *testing.T) {
	a, w := newTestAlarm(t)
	start := time.Now()
	if err := a.Set(start.Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	at := start.Add(600 * time.Millisecond)
	if err := a.Set(at); err != nil {
		t.Fatal(err)
	}
	if got := waitFired(t, w, a, at); early(start, at, got, 50*time.Millisecond) {
		t.Fatalf("alarm re-set to +600ms fired after %v", got.Sub(start))
	}
	quiet(t, w, a, 300*time.Millisecond, time.Time{})

	// Moving the alarm earlier works too.
	start = time.Now()
	if err := a.Set(start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	at = start.Add(100 * time.Millisecond)
	if err := a.Set(at); err != nil {
		t.Fatal(err)
	}
	waitFired(t, w, a, at)
}

func TestWallAlarmSetConcurrently(t *testing.T) {
	a, w := newTestAlarm(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if err := a.Set(time.Now().Add(time.Hour)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	quiet(t, w, a, 50*time.Millisecond, time.Now().Add(time.Hour))
	at := time.Now().Add(-time.Second)
	if err := a.Set(at); err != nil {
		t.Fatal(err)
	}
	waitFired(t, w, a, at)
}

// timerfds counts the process's open timerfds.
func timerfds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && l == "anon_inode:[timerfd]" {
			n++
		}
	}
	return n
}

func TestWallAlarmClose(t *testing.T) {
	w := watchClockSets(t) // a timerfd too: made before the count
	before := timerfds(t)
	a, err := newTestClock(t).NewWallAlarm()
	if err != nil {
		t.Fatal(err)
	}
	if n := timerfds(t); n != before+1 {
		t.Fatalf("%d timerfds open with an alarm, %d before", n, before)
	}
	if err := a.Set(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for closed := false; !closed; {
		select {
		case ev, ok := <-a.C():
			switch {
			case !ok:
				closed = true
			case ev == AlarmClockChanged:
				// Pending from a set of the wall clock: delivered before C closes.
				w.accountFor(t, "AlarmClockChanged pending at Close")
			default:
				t.Fatalf("event %d after Close, want C closed", ev)
			}
		default:
			t.Fatal("C not closed when Close returned")
		}
	}
	if n := timerfds(t); n != before {
		t.Fatalf("%d timerfds open after Close, %d before", n, before)
	}
	if err := a.Set(time.Now()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Set after Close: %v, want os.ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// threads returns the number of threads of the process.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads in /proc/self/status")
	return 0
}

// Waiting alarms park in the netpoller: they do not hold a thread each.
func TestWallAlarmNoThreadPerAlarm(t *testing.T) {
	const n = 64
	w := watchClockSets(t)
	c := newTestClock(t)
	before := threads(t)
	var alarms []WallAlarm
	for i := 0; i < n; i++ {
		a, err := c.NewWallAlarm()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := a.Set(time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		alarms = append(alarms, a)
	}
	time.Sleep(50 * time.Millisecond) // give blocking reads, were there any, time to take threads
	if after := threads(t); after-before >= n/2 {
		t.Errorf("%d threads with %d waiting alarms, %d before", after, n, before)
	}
	// They all still work.
	ats := make([]time.Time, n)
	for i, a := range alarms {
		ats[i] = time.Now()
		if err := a.Set(ats[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range alarms {
		waitFired(t, w, a, ats[i])
	}
}

func TestWallAlarmCloseWithPendingEvent(t *testing.T) {
	w := watchClockSets(t)
	deadline := time.Now().Add(bound)
	for {
		a, err := newWallAlarm()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		// The reader reads the timerfd, and says so each time it comes to read: once
		// the event of the expiration is queued, it comes back.
		reading := make(chan struct{}, 1)
		a.start(func(b []byte) (int, error) {
			select {
			case reading <- struct{}{}:
			default: // one unreceived is as good
			}
			return a.f.Read(b)
		})
		if err := a.Set(time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		// Let the event be queued, unread.
		for len(a.C()) == 0 {
			select {
			case <-reading:
			case <-time.After(time.Until(deadline)):
				t.Fatal("no event queued")
			}
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		ev, ok := <-a.C()
		if !ok {
			t.Fatal("no pending event after Close")
		}
		if _, ok := <-a.C(); ok {
			t.Fatal("C not closed after the pending event")
		}
		switch ev {
		case AlarmFired:
			return
		case AlarmClockChanged:
			// A set of the wall clock came first, or replaced AlarmFired; it made its
			// point as well as AlarmFired, but try again for the event of the expiration.
			w.accountFor(t, "AlarmClockChanged pending instead of AlarmFired")
			if time.Now().After(deadline) {
				t.Fatalf("pending event after Close: AlarmClockChanged in every try for %v", bound)
			}
		default:
			t.Fatalf("pending event after Close: %d", ev)
		}
	}
}

// The wall clock cannot be set in a test without CAP_SYS_TIME and without disturbing
// every process of the machine (time namespaces do not virtualize CLOCK_REALTIME), so
// the tests below feed the alarm's reader the results the kernel gives when it is:
// a read failing with ECANCELED, or timerfd_settime failing with ECANCELED. The alarm
// is otherwise real: a timerfd that the reader falls back to once the script is done.
// While the script runs, that timerfd is armed without TFD_TIMER_CANCEL_ON_SET (Set is
// checked to ask for it), so that the host's clock, which another process may set at
// any moment, does not mix its own ECANCELED into the script: these tests are the same
// wherever they run. Once the script is done, the kernel reports clock changes again.

// scriptedReads replaces the alarm's reads by results sent on steps, then, once steps
// is closed, by real reads. Each read first signals entered.
type scriptedReads struct {
	real    func([]byte) (int, error)
	steps   chan error // nil: an expiration count of 1
	entered chan struct{}
	once    sync.Once
	over    atomic.Bool // done was called
}

// done ends the script: the reader reads the timerfd from now on, and Set arms it
// with TFD_TIMER_CANCEL_ON_SET.
func (s *scriptedReads) done() {
	s.once.Do(func() {
		s.over.Store(true)
		close(s.steps)
	})
}

func (s *scriptedReads) read(b []byte) (int, error) {
	s.entered <- struct{}{}
	err, ok := <-s.steps
	if !ok {
		return s.real(b)
	}
	if err != nil {
		return 0, err
	}
	binary.NativeEndian.PutUint64(b, 1)
	return 8, nil
}

var (
	errCanceled = &os.PathError{Op: "read", Path: "timerfd", Err: syscall.ECANCELED}
	errTick     error // a successful read
)

// newScriptedAlarm starts a real alarm whose reads are scripted. Its timerfd_settime
// is settime (unix.TimerfdSettime if nil), called, once the flags the alarm passed are
// checked, without TFD_TIMER_CANCEL_ON_SET until the script is done.
func newScriptedAlarm(t *testing.T, settime func(fd, flags int, n, o *unix.ItimerSpec) error) (*wallAlarm, *scriptedReads) {
	t.Helper()
	a, err := newWallAlarm()
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedReads{real: a.f.Read, steps: make(chan error), entered: make(chan struct{}, 100)}
	if settime == nil {
		settime = unix.TimerfdSettime
	}
	a.settime = func(fd, flags int, n, o *unix.ItimerSpec) error {
		// Set arms (a zero it_value would disarm, as the reader does, with flags 0).
		if want := unix.TFD_TIMER_ABSTIME | unix.TFD_TIMER_CANCEL_ON_SET; n.Value != (unix.Timespec{}) && flags != want {
			t.Errorf("timerfd_settime(%+v) with flags %#x, want %#x", n.Value, flags, want)
		}
		if !s.over.Load() {
			flags &^= unix.TFD_TIMER_CANCEL_ON_SET
		}
		return settime(fd, flags, n, o)
	}
	a.start(s.read)
	s.waitEntered(t)
	t.Cleanup(func() {
		s.done()
		a.Close()
	})
	return a, s
}

func (s *scriptedReads) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-s.entered:
	case <-time.After(bound):
		t.Fatal("the reader did not come back to read")
	}
}

// feed makes the reader's current read return err, and waits until it has been
// handled.
func (s *scriptedReads) feed(t *testing.T, err error) {
	t.Helper()
	select {
	case s.steps <- err:
	case <-time.After(bound):
		t.Fatal("the reader is not reading")
	}
	s.waitEntered(t)
}

func remaining(t *testing.T, a *wallAlarm) time.Duration {
	t.Helper()
	var cur unix.ItimerSpec
	var gerr error
	if err := a.rc.Control(func(fd uintptr) { gerr = unix.TimerfdGettime(int(fd), &cur) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return time.Duration(cur.Value.Nano())
}

func TestWallAlarmClockChanged(t *testing.T) {
	w := watchClockSets(t)
	a, s := newScriptedAlarm(t, nil)
	if err := a.Set(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.feed(t, errCanceled)
	if ev := waitEvent(t, a.C()); ev != AlarmClockChanged {
		t.Fatalf("event %d, want AlarmClockChanged", ev)
	}
	if r := remaining(t, a); r != 0 {
		t.Errorf("alarm still armed (%v to go) after AlarmClockChanged", r)
	}
	// It works again after a Set, on the kernel's own reports.
	s.done()
	at := time.Now()
	if err := a.Set(at); err != nil {
		t.Fatal(err)
	}
	waitFired(t, w, a, at)
}

func TestWallAlarmSetDuringClockChange(t *testing.T) {
	a, s := newScriptedAlarm(t, nil)
	if err := a.Set(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A Set made before the consumer receives AlarmClockChanged may be undone...
	if err := a.Set(time.Now().Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.feed(t, errCanceled)
	if ev := waitEvent(t, a.C()); ev != AlarmClockChanged {
		t.Fatalf("event %d, want AlarmClockChanged", ev)
	}
	if r := remaining(t, a); r != 0 {
		t.Errorf("alarm still armed (%v to go) after AlarmClockChanged", r)
	}
	// ... but not one made after.
	if err := a.Set(time.Now().Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := remaining(t, a); r < time.Hour {
		t.Errorf("Set after AlarmClockChanged: %v to go", r)
	}
	if n := len(a.C()); n != 0 {
		t.Fatalf("%d more events pending", n)
	}
}

func TestWallAlarmClockChangedHidesFired(t *testing.T) {
	a, s := newScriptedAlarm(t, nil)
	s.feed(t, errTick)
	if n := len(a.C()); n != 1 {
		t.Fatalf("%d events pending after an expiration, want 1", n)
	}
	s.feed(t, errCanceled)
	if ev := waitEvent(t, a.C()); ev != AlarmClockChanged {
		t.Fatalf("pending event %d, want AlarmClockChanged to replace AlarmFired", ev)
	}
	if n := len(a.C()); n != 0 {
		t.Fatalf("%d more events pending", n)
	}

	// An expiration does not replace a pending change, and changes coalesce.
	s.feed(t, errCanceled)
	if err := a.Set(time.Now().Add(-time.Second)); err != nil { // expired: a tick would count
		t.Fatal(err)
	}
	s.feed(t, errTick)
	s.feed(t, errCanceled)
	if ev := waitEvent(t, a.C()); ev != AlarmClockChanged {
		t.Fatalf("pending event %d, want AlarmClockChanged", ev)
	}
	if n := len(a.C()); n != 0 {
		t.Fatalf("%d more events pending", n)
	}
}

func TestWallAlarmStaleExpiration(t *testing.T) {
	a, s := newScriptedAlarm(t, nil)
	// An expiration read while the latest setting is still to come belongs to a
	// setting that was replaced: dropped.
	if err := a.Set(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.feed(t, errTick)
	if n := len(a.C()); n != 0 {
		t.Fatalf("stale expiration delivered: %d events pending", n)
	}
	// Once the setting has expired, one AlarmFired per Set.
	if err := a.Set(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	s.feed(t, errTick)
	if ev := waitEvent(t, a.C()); ev != AlarmFired {
		t.Fatalf("event %d, want AlarmFired", ev)
	}
	s.feed(t, errTick)
	if n := len(a.C()); n != 0 {
		t.Fatalf("second AlarmFired for one Set: %d events pending", n)
	}
}

func TestWallAlarmSetSeesClockChange(t *testing.T) {
	var mu sync.Mutex
	cancelNext := false
	settime := func(fd, flags int, n, o *unix.ItimerSpec) error {
		if err := unix.TimerfdSettime(fd, flags, n, o); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if cancelNext && n.Value != (unix.Timespec{}) {
			cancelNext = false
			return unix.ECANCELED // as the kernel does: armed, but the clock was set
		}
		return nil
	}
	a, _ := newScriptedAlarm(t, settime)
	mu.Lock()
	cancelNext = true
	mu.Unlock()
	if err := a.Set(time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Set when the kernel reports a clock change: %v", err)
	}
	if ev := waitEvent(t, a.C()); ev != AlarmClockChanged {
		t.Fatalf("event %d, want AlarmClockChanged", ev)
	}
	if r := remaining(t, a); r < 59*time.Minute {
		t.Errorf("Set that observed a clock change did not arm: %v to go", r)
	}
}

func TestWallAlarmReadFailure(t *testing.T) {
	a, s := newScriptedAlarm(t, nil)
	s.steps <- &os.PathError{Op: "read", Path: "timerfd", Err: syscall.EIO}
	select {
	case _, ok := <-a.C():
		if ok {
			t.Fatal("event after a read failure")
		}
	case <-time.After(bound):
		t.Fatal("C not closed after a read failure")
	}
	// Set does not deliver on the closed channel.
	if err := a.Set(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
