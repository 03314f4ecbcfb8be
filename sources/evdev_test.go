//go:build linux

package sources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"amos.example/amosd/rigs/testenv"
	"golang.org/x/sys/unix"

	"amos.example/amosd/rigs/inputdev"
)

const (
	// evdevWait bounds every wait for something that must happen.
	evdevWait = 10 * time.Second
	// evdevQuiet is how long something that must not happen is given to happen.
	evdevQuiet = 200 * time.Millisecond

	// The child process of the permission tests: the glob to read, and the retry
	// delays (comma-separated durations; empty for the defaults).
	evdevHelperGlobEnv  = "AMOSD_EVDEV_HELPER_GLOB"
	evdevHelperRetryEnv = "AMOSD_EVDEV_HELPER_RETRY"
	// evdevHelperUID is the unprivileged user the child runs as (nobody).
	evdevHelperUID = 65534
)

// Event types and codes of linux/input-event-codes.h that the tests write, beside the
// ones evdev.go defines.
const (
	tEvSyn = 0x00
	tEvMsc = 0x04
	tEvSw  = 0x05
	tEvLed = 0x11

	tSynReport  = 0x00
	tKeyA       = 30
	tKeyPower   = 116
	tBtnLeft    = 0x110
	tBtnTouch   = 0x14a
	tRelX       = 0x00
	tRelWheel   = 0x08
	tAbsX       = 0x00
	tAbsY       = 0x01
	tAbsZ       = 0x02
	tAbsDist    = 0x19
	tAbsMTSlot  = 0x2f
	tAbsMTPosX  = 0x35
	tAbsMTPosY  = 0x36
	tAbsMTTrack = 0x39
	tAbsMTPress = 0x3a
	tAbsMTToolY = 0x3d
	tMscScan    = 0x04
	tSwLid      = 0x00
	tLedCapsL   = 0x01
)

// rec is one input event record, stamped now.
func rec(typ, code uint16, value int32) inputEvent {
	return inputEvent{Time: unix.NsecToTimeval(time.Now().UnixNano()), Type: typ, Code: code, Value: value}
}

// syn is a SYN_REPORT record.
func syn() inputEvent { return rec(tEvSyn, tSynReport, 0) }

// encode lays records out exactly as the kernel does for this GOARCH: the bytes of the
// Go struct.
func encode(evs ...inputEvent) []byte {
	b := make([]byte, 0, len(evs)*int(unsafe.Sizeof(inputEvent{})))
	for i := range evs {
		b = append(b, unsafe.Slice((*byte)(unsafe.Pointer(&evs[i])), unsafe.Sizeof(evs[i]))...)
	}
	return b
}

func TestInputEventLayout(t *testing.T) {
	var want uintptr
	switch runtime.GOARCH {
	case "arm", "386", "mips", "mipsle":
		want = 16
	case "arm64", "amd64", "riscv64", "ppc64le", "s390x", "mips64", "mips64le", "loong64":
		want = 24
	default:
		t.Skipf("no expected struct input_event size for GOARCH=%s", runtime.GOARCH)
	}
	t.Logf("struct input_event: %d bytes on %s", unsafe.Sizeof(inputEvent{}), runtime.GOARCH)
	if got := unsafe.Sizeof(inputEvent{}); got != want {
		t.Errorf("struct input_event is %d bytes on %s, want %d", got, runtime.GOARCH, want)
	}
	if inputEventSize != int(want) {
		t.Errorf("inputEventSize = %d on %s, want %d", inputEventSize, runtime.GOARCH, want)
	}
	// type, code and value follow the timeval (two longs) without padding.
	tv := want - 8
	if inputTypeOff != int(tv) || inputCodeOff != int(tv+2) || unsafe.Offsetof(inputEvent{}.Value) != tv+4 {
		t.Errorf("offsets type %d code %d value %d, want %d %d %d",
			inputTypeOff, inputCodeOff, unsafe.Offsetof(inputEvent{}.Value), tv, tv+2, tv+4)
	}
	if got := len(encode(syn(), syn())); got != 2*int(want) {
		t.Errorf("two encoded records are %d bytes, want %d", got, 2*want)
	}
}

func TestIsInput(t *testing.T) {
	for _, c := range []struct {
		name      string
		typ, code uint16
		want      bool
	}{
		{"SYN_REPORT", tEvSyn, tSynReport, false},
		{"KEY_A", evKey, tKeyA, true},
		{"KEY_POWER", evKey, tKeyPower, true},
		{"BTN_LEFT", evKey, tBtnLeft, true},
		{"BTN_TOUCH", evKey, tBtnTouch, true},
		{"REL_X", evRel, tRelX, true},
		{"REL_WHEEL", evRel, tRelWheel, true},
		{"ABS_X accelerometer", evAbs, tAbsX, false},
		{"ABS_Y accelerometer", evAbs, tAbsY, false},
		{"ABS_Z accelerometer", evAbs, tAbsZ, false},
		{"ABS_DISTANCE proximity", evAbs, tAbsDist, false},
		{"ABS 0x2e below multi-touch", evAbs, 0x2e, false},
		{"ABS_MT_SLOT", evAbs, tAbsMTSlot, true},
		{"ABS_MT_POSITION_X", evAbs, tAbsMTPosX, true},
		{"ABS_MT_POSITION_Y", evAbs, tAbsMTPosY, true},
		{"ABS_MT_TRACKING_ID", evAbs, tAbsMTTrack, true},
		{"ABS_MT_TOOL_Y", evAbs, tAbsMTToolY, true},
		{"ABS 0x3e above multi-touch", evAbs, 0x3e, false},
		{"MSC_SCAN", tEvMsc, tMscScan, false},
		{"SW_LID", tEvSw, tSwLid, false},
		{"LED_CAPSL", tEvLed, tLedCapsL, false},
	} {
		if got := isInput(c.typ, c.code); got != c.want {
			t.Errorf("%s (type %#x code %#x): isInput = %v, want %v", c.name, c.typ, c.code, got, c.want)
		}
	}
}

func TestInputCoalescer(t *testing.T) {
	c := inputCoalescer{window: time.Second}
	t0 := time.Now()
	for _, step := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true},                        // first input: at once
		{10 * time.Millisecond, false},   // folded
		{999 * time.Millisecond, false},  // still the same second
		{time.Second, true},              // a second after the last emitted
		{1500 * time.Millisecond, false}, // folded: does not move the window
		{2 * time.Second, true},          // continuous use: once per second
		{10 * time.Second, true},         // after a quiet period: at once
	} {
		if got := c.admit(t0.Add(step.at)); got != step.want {
			t.Errorf("input at %v: admitted %v, want %v", step.at, got, step.want)
		}
	}
}

func TestNewEvdevSource(t *testing.T) {
	src := NewEvdevSource("", nil)
	if src.Name() != "evdev" || src.glob != DefaultEvdevGlob || src.coalesce != time.Second {
		t.Errorf("NewEvdevSource(\"\", nil): name %q glob %q coalesce %v", src.Name(), src.glob, src.coalesce)
	}
	if len(src.retryDelays) == 0 || len(src.retryDelays) > 5 {
		t.Errorf("retry delays %v: want a few", src.retryDelays)
	}
}

// evdevProc is a running source, in this process or in a child, seen through what it
// emits and logs.
type evdevProc struct {
	t      *testing.T
	events chan Event
	logs   chan string
	stop   func() error // stops the source and returns Run's error; idempotent
}

// startEvdev runs a source for glob in this process; tune may adjust it first. The
// source is stopped at the end of the test.
func startEvdev(t *testing.T, glob string, tune func(*EvdevSource)) *evdevProc {
	t.Helper()
	p := &evdevProc{t: t, events: make(chan Event, 1024), logs: make(chan string, 1024)}
	stopped := make(chan struct{})
	src := NewEvdevSource(glob, func(format string, args ...any) {
		select {
		case p.logs <- fmt.Sprintf(format, args...):
		default:
		}
	})
	if tune != nil {
		tune(src)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(e Event) {
			select {
			case p.events <- e:
			case <-stopped: // the test is over: nobody reads any more
			}
		})
	}()
	var once sync.Once
	var err error
	p.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(evdevWait):
				err = fmt.Errorf("Run did not return within %v of ctx cancel", evdevWait)
			}
			close(stopped)
		})
		return err
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

// next returns the next event, failing the test if none comes in time.
func (p *evdevProc) next() Event {
	p.t.Helper()
	select {
	case e := <-p.events:
		return e
	case <-time.After(evdevWait):
		p.t.Fatalf("no event within %v", evdevWait)
		return Event{}
	}
}

// wantEvent is the event of kind the source emits.
func wantEvent(kind EventKind) Event {
	e := Event{Source: "evdev", Kind: kind}
	if kind == EventAvailable || kind == EventUnavailable {
		e.Caps = CapInput
	}
	return e
}

// expect requires the next events to be of kinds, in order.
func (p *evdevProc) expect(kinds ...EventKind) {
	p.t.Helper()
	for _, k := range kinds {
		if got, want := p.next(), wantEvent(k); got != want {
			p.t.Fatalf("got event %v, want %v", got, want)
		}
	}
}

// until returns the events before the next one of kind.
func (p *evdevProc) until(kind EventKind) []Event {
	p.t.Helper()
	var before []Event
	for {
		e := p.next()
		if e == wantEvent(kind) {
			return before
		}
		before = append(before, e)
	}
}

// quiet requires that no event comes for evdevQuiet.
func (p *evdevProc) quiet() {
	p.t.Helper()
	select {
	case e := <-p.events:
		p.t.Fatalf("unexpected event %v", e)
	case <-time.After(evdevQuiet):
	}
}

// waitLog waits for a log line containing s and returns it.
func (p *evdevProc) waitLog(s string) string {
	p.t.Helper()
	deadline := time.After(evdevWait)
	for {
		select {
		case l := <-p.logs:
			if strings.Contains(l, s) {
				return l
			}
		case <-deadline:
			p.t.Fatalf("no log line with %q within %v", s, evdevWait)
		}
	}
}

// write writes b to a FIFO in one write(2): up to PIPE_BUF bytes arrive at once.
func write(t *testing.T, w *os.File, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

// countInput counts the EventInput in evs and fails on any other event.
func countInput(t *testing.T, evs []Event) int {
	t.Helper()
	n := 0
	for _, e := range evs {
		if e != wantEvent(EventInput) {
			t.Errorf("unexpected event %v", e)
			continue
		}
		n++
	}
	return n
}

func TestEvdevClassifiesInput(t *testing.T) {
	touchFrame := []inputEvent{
		rec(evAbs, tAbsMTSlot, 0), rec(evAbs, tAbsMTTrack, 7),
		rec(evAbs, tAbsMTPosX, 540), rec(evAbs, tAbsMTPosY, 1200), rec(evAbs, tAbsMTPress, 30),
		rec(evKey, tBtnTouch, 1), syn(),
	}
	var burst []inputEvent // 500 records of a finger moving
	for i := 0; len(burst) < 500; i++ {
		burst = append(burst, rec(evAbs, tAbsMTPosX, int32(i)), rec(evAbs, tAbsMTPosY, int32(2*i)), syn())
	}
	burst = burst[:500]
	var sensor []inputEvent
	for i := range 50 {
		sensor = append(sensor, rec(evAbs, tAbsX, int32(i)), rec(evAbs, tAbsY, -int32(i)), rec(evAbs, tAbsZ, 981), syn())
	}

	for _, c := range []struct {
		name string
		recs []inputEvent
		want int // EventInput emitted
	}{
		{"key press", []inputEvent{rec(evKey, tKeyPower, 1), syn()}, 1},
		{"key press and release", []inputEvent{rec(tEvMsc, tMscScan, 0x70004), rec(evKey, tKeyA, 1), syn(), rec(evKey, tKeyA, 0), syn()}, 1},
		{"multi-touch frame", touchFrame, 1},
		{"mouse motion", []inputEvent{rec(evRel, tRelX, 3), syn()}, 1},
		{"burst of 500 touch events", burst, 1},
		{"accelerometer", sensor, 0},
		{"proximity", []inputEvent{rec(evAbs, tAbsDist, 0), syn(), rec(evAbs, tAbsDist, 5), syn()}, 0},
		{"SYN only", []inputEvent{syn(), syn(), syn()}, 0},
		{"misc, switch and LED", []inputEvent{rec(tEvMsc, tMscScan, 4), rec(tEvSw, tSwLid, 1), rec(tEvLed, tLedCapsL, 1), syn()}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			dev := filepath.Join(dir, "event0")
			inputdev.New(t, dev, 0o600)
			p := startEvdev(t, filepath.Join(dir, "event*"), nil)
			p.expect(EventAvailable)
			w := inputdev.Writer(t, dev)
			write(t, w, encode(c.recs...))
			// Closing the writer hangs the FIFO up: the source reads what is left, then
			// drops the device, its last. So every event the records cause comes before
			// EventUnavailable.
			w.Close()
			if got := countInput(t, p.until(EventUnavailable)); got != c.want {
				t.Errorf("%d records: %d EventInput, want %d", len(c.recs), got, c.want)
			}
		})
	}
}

func TestEvdevPartialRecord(t *testing.T) {
	size := inputEventSize
	for _, split := range []int{1, size / 2, size - 1} {
		t.Run(fmt.Sprintf("split at %d of %d", split, size), func(t *testing.T) {
			dir := t.TempDir()
			dev := filepath.Join(dir, "event0")
			inputdev.New(t, dev, 0o600)
			p := startEvdev(t, filepath.Join(dir, "event*"), func(s *EvdevSource) { s.coalesce = 0 })
			p.expect(EventAvailable)
			w := inputdev.Writer(t, dev)
			press, release := encode(rec(evKey, tKeyA, 1)), encode(rec(evKey, tKeyA, 0))
			// One write of a whole record and a part of the next: the source reads both
			// at once (a write up to PIPE_BUF is atomic), so the EventInput of the whole
			// record proves the part was read too.
			write(t, w, append(press, release[:split]...))
			p.expect(EventInput)
			write(t, w, release[split:])
			p.expect(EventInput)
			w.Close()
			p.expect(EventUnavailable)
		})
	}
}

func TestEvdevHotplug(t *testing.T) {
	dir := t.TempDir()
	p := startEvdev(t, filepath.Join(dir, "event*"), nil)

	// A device appearing while the source runs: it becomes available.
	inputdev.New(t, filepath.Join(dir, "event0"), 0o600)
	p.expect(EventAvailable)

	// Setup is certainly over now: these come only through inotify. The files not
	// matching the glob come first, so they are handled before event1 is opened.
	for _, name := range []string{"mouse0", "xevent1", "event"} {
		inputdev.New(t, filepath.Join(dir, name), 0o600)
	}
	if err := os.Mkdir(filepath.Join(dir, "by-path"), 0o755); err != nil {
		t.Fatal(err)
	}
	inputdev.New(t, filepath.Join(dir, "event1"), 0o600)
	w := inputdev.Writer(t, filepath.Join(dir, "event1"))
	write(t, w, encode(rec(evKey, tKeyPower, 1), syn()))
	p.expect(EventInput)

	// "event" matches event* too, so it was opened; the others have no reader.
	for _, name := range []string{"mouse0", "xevent1"} {
		fd, err := unix.Open(filepath.Join(dir, name), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			t.Errorf("%s does not match the glob but was opened", name)
		} else if !errors.Is(err, unix.ENXIO) {
			t.Errorf("open %s for writing: %v, want ENXIO (no reader)", name, err)
		}
	}
	p.quiet()
}

func TestEvdevUnplug(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"event0", "event1"} {
		inputdev.New(t, filepath.Join(dir, name), 0o600)
	}
	p := startEvdev(t, filepath.Join(dir, "event*"), nil)
	p.expect(EventAvailable)
	w0 := inputdev.Writer(t, filepath.Join(dir, "event0"))
	w1 := inputdev.Writer(t, filepath.Join(dir, "event1"))

	// Hanging event0 up drops it, but event1 remains: no EventUnavailable before the
	// input of event1 (epoll reports the hang-up first).
	w0.Close()
	write(t, w1, encode(rec(evKey, tKeyA, 1), syn()))
	p.expect(EventInput)

	// Removing the last device, its writer still open: unavailable.
	if err := os.Remove(filepath.Join(dir, "event1")); err != nil {
		t.Fatal(err)
	}
	p.expect(EventUnavailable)

	// A new device: available again.
	inputdev.New(t, filepath.Join(dir, "event2"), 0o600)
	p.expect(EventAvailable)
	p.quiet()
}

// openFDs lists this process's open descriptors and what they are.
func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		fds = append(fds, e.Name()+" -> "+target)
	}
	return fds
}

func TestEvdevCancelClosesFDs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"event0", "event1", "event2"} {
		inputdev.New(t, filepath.Join(dir, name), 0o600)
	}
	// The runtime opens its own poller descriptors on first use of a timer; have it done.
	time.Sleep(time.Millisecond)
	before := openFDs(t)

	p := startEvdev(t, filepath.Join(dir, "event*"), nil)
	p.expect(EventAvailable)
	var writers []*os.File // once all are open, so are the devices
	for _, name := range []string{"event0", "event1", "event2"} {
		writers = append(writers, inputdev.Writer(t, filepath.Join(dir, name)))
	}
	// 3 devices and their writers, epoll, eventfd, timerfd, inotify.
	if during := openFDs(t); len(during) < len(before)+10 {
		t.Errorf("%d descriptors while running, want at least %d:\n%s", len(during), len(before)+10, strings.Join(during, "\n"))
	}
	start := time.Now()
	if err := p.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, w := range writers {
		w.Close()
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run returned %v after ctx cancel", took)
	}
	after := openFDs(t)
	if len(after) != len(before) {
		t.Errorf("%d descriptors before Run, %d after:\nbefore:\n%s\nafter:\n%s",
			len(before), len(after), strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

func TestEvdevMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	p := startEvdev(t, filepath.Join(dir, "no", "such", "event*"), nil)
	p.waitLog("does not exist")
	p.quiet()
	if err := p.stop(); err != nil {
		t.Errorf("Run: %v, want nil", err)
	}
	select {
	case l := <-p.logs:
		t.Errorf("a second log line: %s", l)
	default:
	}
}

func TestEvdevBadGlob(t *testing.T) {
	src := NewEvdevSource(filepath.Join(t.TempDir(), "event[0-"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), evdevWait)
	defer cancel()
	if err := src.Run(ctx, func(e Event) { t.Errorf("event %v", e) }); err == nil {
		t.Error("Run of a malformed glob: nil error")
	}
}

// The permission tests need a device that the source may not open yet. Permission bits
// do not bind root, so as root the source runs in a child process as nobody; otherwise
// in this process.

// sharedDir makes a directory that the unprivileged child can use: the test binary in
// it (0755), and a 0777 device directory dev. t.TempDir does not do: its parent is 0700.
func sharedDir(t *testing.T) (base, dev string) {
	t.Helper()
	base = testenv.SharedDir(t)
	dev = filepath.Join(base, "dev")
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{base, 0o755}, {dev, 0o777}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	return base, dev
}

// startUnprivileged runs a source for glob with the given retry delays (nil: the
// defaults) as a user that permission bits bind.
func startUnprivileged(t *testing.T, base, glob string, retry []time.Duration) *evdevProc {
	t.Helper()
	if os.Geteuid() != 0 {
		return startEvdev(t, glob, func(s *EvdevSource) {
			if retry != nil {
				s.retryDelays = retry
			}
		})
	}
	return startChild(t, base, glob, retry)
}

// startChild runs TestEvdevHelperProcess in a copy of the test binary as nobody.
func startChild(t *testing.T, base, glob string, retry []time.Duration) *evdevProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "evdev.test")
	testenv.CopyFile(t, exe, bin, 0o755)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := testenv.Command(ctx, bin, "-test.run=^TestEvdevHelperProcess$", "-test.count=1", "-test.timeout=2m")
	var delays []string
	for _, d := range retry {
		delays = append(delays, d.String())
	}
	cmd.Env = append(os.Environ(), evdevHelperGlobEnv+"="+glob, evdevHelperRetryEnv+"="+strings.Join(delays, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: evdevHelperUID, Gid: evdevHelperUID}}
	cmd.WaitDelay = evdevWait
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		pr.Close()
		pw.Close()
		t.Fatalf("start %s as uid %d: %v", bin, evdevHelperUID, err)
	}
	pw.Close()

	// The child prints "event <source> <kind> <caps>", "log <text>" and "error <text>".
	p := &evdevProc{t: t, events: make(chan Event, 1024), logs: make(chan string, 1024)}
	var other []string // anything else, for the failure message
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			var e Event
			if _, err := fmt.Sscanf(line, "event %s %d %d", &e.Source, &e.Kind, &e.Caps); err == nil {
				p.events <- e
			} else if text, ok := strings.CutPrefix(line, "log "); ok {
				p.logs <- text
			} else {
				other = append(other, line)
			}
		}
	}()
	var once sync.Once
	var runErr error
	p.stop = func() error {
		once.Do(func() {
			stdin.Close() // the child cancels its ctx on EOF, then exits
			select {
			case <-read:
			case <-time.After(evdevWait):
				cancel() // kills it
			}
			runErr = cmd.Wait()
			cancel()
			<-read
			if runErr != nil || slices.ContainsFunc(other, func(l string) bool { return strings.HasPrefix(l, "error ") }) {
				runErr = fmt.Errorf("child: %v\nstdout:\n%s\nstderr:\n%s", runErr, strings.Join(other, "\n"), stderr.String())
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// TestEvdevHelperProcess is the child of the permission tests; it does nothing
// otherwise. It runs a source until its stdin closes and prints what the source emits
// and logs.
func TestEvdevHelperProcess(t *testing.T) {
	glob := os.Getenv(evdevHelperGlobEnv)
	if glob == "" {
		t.Skip("the child process of the evdev permission tests")
	}
	if uid := os.Getuid(); uid != evdevHelperUID {
		fmt.Printf("error running as uid %d, want %d\n", uid, evdevHelperUID)
		t.Fatalf("uid %d", uid)
	}
	src := NewEvdevSource(glob, func(format string, args ...any) {
		fmt.Printf("log %s\n", fmt.Sprintf(format, args...))
	})
	if s := os.Getenv(evdevHelperRetryEnv); s != "" {
		src.retryDelays = nil
		for _, f := range strings.Split(s, ",") {
			d, err := time.ParseDuration(f)
			if err != nil {
				fmt.Printf("error %v\n", err)
				t.Fatal(err)
			}
			src.retryDelays = append(src.retryDelays, d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := src.Run(ctx, func(e Event) { fmt.Printf("event %s %d %d\n", e.Source, e.Kind, e.Caps) }); err != nil {
		fmt.Printf("error %v\n", err)
		t.Fatal(err)
	}
}

func TestEvdevPermissionRetry(t *testing.T) {
	base, dev := sharedDir(t)
	// A device the source can open, so that EventAvailable tells it is running.
	inputdev.New(t, filepath.Join(dev, "event1"), 0o666)
	p := startUnprivileged(t, base, filepath.Join(dev, "event*"), nil)
	p.expect(EventAvailable)

	// A device that appears with no permission, as before ueventd sets its mode, then
	// a readable one: once the source opened event2, it has tried event0 and failed.
	inputdev.New(t, filepath.Join(dev, "event0"), 0)
	inputdev.New(t, filepath.Join(dev, "event2"), 0o666)
	inputdev.Writer(t, filepath.Join(dev, "event2"))

	// ueventd sets the mode: IN_ATTRIB, or else a retry, opens it.
	if err := os.Chmod(filepath.Join(dev, "event0"), 0o666); err != nil {
		t.Fatal(err)
	}
	w := inputdev.Writer(t, filepath.Join(dev, "event0"))
	write(t, w, encode(rec(evKey, tKeyPower, 1), syn()))
	p.expect(EventInput)
}

func TestEvdevPermissionGiveUp(t *testing.T) {
	base, dev := sharedDir(t)
	// At start, one device the source may not open: one log line for all of them.
	inputdev.New(t, filepath.Join(dev, "event0"), 0)
	inputdev.New(t, filepath.Join(dev, "event1"), 0o666)
	retry := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
	p := startUnprivileged(t, base, filepath.Join(dev, "event*"), retry)
	p.expect(EventAvailable)
	p.waitLog("cannot open 1 of 2")

	// A device that stays unreadable: a few retries, then one line. The timers cannot
	// fire early, so the line cannot come before all the retries ran.
	event3 := filepath.Join(dev, "event3")
	created := time.Now()
	inputdev.New(t, event3, 0)
	p.waitLog("giving up on " + event3)
	if took, least := time.Since(created), retry[0]+retry[1]+retry[2]; took < least {
		t.Errorf("gave up %v after the device appeared, before its retries (%v) ran", took, least)
	}

	// A later change of its mode still opens it, as it opens event0.
	for _, name := range []string{"event0", "event3"} {
		if err := os.Chmod(filepath.Join(dev, name), 0o666); err != nil {
			t.Fatal(err)
		}
		inputdev.Writer(t, filepath.Join(dev, name))
	}
	p.quiet()
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	for len(p.logs) > 0 {
		t.Errorf("another log line: %s", <-p.logs)
	}
}

func TestEvdevPermissionRetryTimer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to take away the search permission of the device directory from the source")
	}
	base, dev := sharedDir(t)
	inputdev.New(t, filepath.Join(dev, "event1"), 0o666)
	inputdev.New(t, filepath.Join(dev, "event9"), 0o666)
	p := startChild(t, base, filepath.Join(dev, "event*"), nil)
	p.expect(EventAvailable)
	w9 := inputdev.Writer(t, filepath.Join(dev, "event9"))

	// A device that the source cannot open because it may not search the directory.
	// Giving the permission back changes the directory, not the device: no IN_ATTRIB
	// of the device, so only a retry timer can open it.
	if err := os.Chmod(dev, 0o700); err != nil {
		t.Fatal(err)
	}
	inputdev.New(t, filepath.Join(dev, "event0"), 0o666)
	// epoll reports inotify, ready first, before this input: once the input is
	// emitted, the source has tried event0 and failed.
	write(t, w9, encode(rec(evKey, tKeyA, 1), syn()))
	p.expect(EventInput)
	if err := os.Chmod(dev, 0o777); err != nil {
		t.Fatal(err)
	}
	inputdev.Writer(t, filepath.Join(dev, "event0"))
	p.quiet()
}
