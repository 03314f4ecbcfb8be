package sources

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/rigs/testenv"
)

// fakeTimers is a timerSource whose time moves only when the test advances it.
type fakeTimers struct {
	mu     sync.Mutex
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Duration
	f    func()
	done bool // fired or stopped
}

func (c *fakeTimers) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ft := &fakeTimer{at: c.now + d, f: f}
	c.timers = append(c.timers, ft)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		stopped := !ft.done
		ft.done = true
		return stopped
	}
}

// advance moves the time by d and calls, in the caller's goroutine and in order, each
// timer that falls due (also those that the calls arm).
func (c *fakeTimers) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now + d
	for {
		var next *fakeTimer
		for _, ft := range c.timers {
			if !ft.done && ft.at <= end && (next == nil || ft.at < next.at) {
				next = ft
			}
		}
		if next == nil {
			break
		}
		next.done, c.now = true, next.at
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// sentinel tells the test that the bus has handed every earlier signal of the forger's
// connection to the sources: the bus delivers one sender's signals in order, and the
// Bus calls its clients in order.
type sentinel struct{ seen chan string }

const sentinelIface = "com.amos.Test"

func (s *sentinel) Connected(ctx context.Context, conn *dbus.Conn) error {
	return conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(sentinelIface))
}

func (s *sentinel) Signal(sig *dbus.Signal) {
	if sig.Name == sentinelIface+".Done" && len(sig.Body) == 1 {
		s.seen <- fmt.Sprint(sig.Body[0])
	}
}

func (s *sentinel) Disconnected() {}

// logLines collects log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// spoofed returns the lines about forged signals of source.
func (l *logLines) spoofed(source string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.HasPrefix(line, source+": ignored ") {
			out = append(out, line)
		}
	}
	return out
}

var summaryLine = regexp.MustCompile(`^[a-z-]+: ignored (\d+) more forged signals since the last line; the latest: `)

// shape returns "first" for the line of a forged signal logged at once, "+N" for a
// summary of N.
func shape(line string) string {
	if m := summaryLine.FindStringSubmatch(line); m != nil {
		return "+" + m[1]
	}
	return "first"
}

// TestForgedSignalsAreLoggedAtABoundedRate floods the power and logind sources with
// thousands of forged signals on a real dbus-daemon, moving a fake clock: every one
// is counted, but the log gets only the first one at once, then at most one summary a
// minute per source with the exact count since the last line, and the rest when the
// connection ends.
func TestForgedSignalsAreLoggedAtABoundedRate(t *testing.T) {
	bus := testenv.StartBus(t)
	var spoofed atomic.Uint64
	var log logLines
	events := make(chan Event, 64)
	emit := func(ev Event) { events <- ev }
	clk := &fakeTimers{}
	power := NewPowerSource(emit, &spoofed, log.logf)
	power.spoofLog.timers = clk
	logind := NewLogindSource(emit, &spoofed, log.logf)
	logind.spoofLog.timers = clk
	sent := &sentinel{seen: make(chan string, 1)}
	b := NewBus(bus.Address, log.logf)
	b.Add(power)
	b.Add(logind)
	b.Add(sent)
	connected := make(chan struct{})
	b.afterConnect = func() { close(connected) }

	owner, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if reply, err := owner.RequestName(PowerManagerName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", PowerManagerName, reply, err)
	}
	forger, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- b.Run(ctx) }()
	bound := time.After(2 * time.Minute) // the whole test
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-bound:
			t.Fatalf("%s: not within the test's 2 minutes", what)
		}
	}
	wait("connect", connected)
	waitEvent := func(kind EventKind) {
		t.Helper()
		for {
			select {
			case ev := <-events:
				if ev.Source == config.SourceAmosPower && ev.Kind == kind {
					return
				}
			case <-bound:
				t.Fatalf("no amos-power %s within the test's 2 minutes", kind)
			}
		}
	}
	waitEvent(EventAvailable)

	forge := func(power, logind int) {
		t.Helper()
		for i := range power {
			var err error
			switch i % 3 {
			case 0:
				err = forger.Emit("/com/amos/PowerManager", PowerManagerIface+".ScreenChanged", i%2 == 0)
			case 1:
				err = forger.Emit("/com/amos/PowerManager", PowerManagerIface+".LockChanged", i%2 == 0)
			default:
				err = forger.Emit("/com/amos/PowerManager", PowerManagerIface+".UserActivity")
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := range logind {
			var err error
			if i%2 == 0 {
				err = forger.Emit(LogindPathSpace, LogindManager+".PrepareForSleep", true)
			} else {
				err = forger.Emit(LogindPathSpace+"/session/_31", PropsIface+".PropertiesChanged", LogindSession,
					map[string]dbus.Variant{"LockedHint": dbus.MakeVariant(false)}, []string{})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := forger.Emit("/", sentinelIface+".Done", "done"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sent.seen:
		case <-bound:
			t.Fatal("the sources did not see the forged signals within the test's 2 minutes")
		}
	}

	steps := []struct {
		name          string
		power, logind int           // forged signals sent
		advance       time.Duration // then the clock moves
		stop          bool          // then the connection ends
		wantPower     []string      // the new lines: "first" or "+N"
		wantLogind    []string
	}{
		{name: "a flood: its first signal at once", power: 3000, logind: 1000,
			wantPower: []string{"first"}, wantLogind: []string{"first"}},
		{name: "the rest of the minute: nothing", advance: SpoofLogInterval - time.Nanosecond},
		{name: "the minute ends: one summary each", advance: time.Nanosecond,
			wantPower: []string{"+2999"}, wantLogind: []string{"+999"}},
		{name: "another minute of flood", power: 2000, logind: 500, advance: SpoofLogInterval,
			wantPower: []string{"+2000"}, wantLogind: []string{"+500"}},
		{name: "a quiet minute: nothing, and the limit rests", advance: SpoofLogInterval},
		{name: "the next one is logged at once again", power: 10, logind: 1,
			wantPower: []string{"first"}, wantLogind: []string{"first"}},
		{name: "half a minute", power: 6, advance: SpoofLogInterval / 2},
		{name: "the connection ends: the rest is logged", stop: true, wantPower: []string{"+15"}},
	}
	var total uint64
	var elapsed time.Duration
	sentBy := map[string]int{}
	seen := map[string]int{}
	for _, st := range steps {
		if st.power+st.logind > 0 {
			forge(st.power, st.logind)
			sentBy[config.SourceAmosPower] += st.power
			sentBy[config.SourceLogind] += st.logind
			total += uint64(st.power + st.logind)
			if st.power > 0 {
				// The owner's signals still count, in the middle of a flood.
				if err := owner.Emit("/com/amos/PowerManager", PowerManagerIface+".ScreenChanged", true); err != nil {
					t.Fatal(err)
				}
				waitEvent(EventScreenOn)
			}
		}
		clk.advance(st.advance)
		elapsed += st.advance
		if st.stop {
			cancel()
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatal(err)
				}
			case <-bound:
				t.Fatal("the bus did not stop within the test's 2 minutes")
			}
		}
		if got := spoofed.Load(); got != total {
			t.Fatalf("%s: spoofed_signals %d, want exactly %d", st.name, got, total)
		}
		for source, want := range map[string][]string{config.SourceAmosPower: st.wantPower, config.SourceLogind: st.wantLogind} {
			lines := log.spoofed(source)
			var got []string
			for _, l := range lines[seen[source]:] {
				got = append(got, shape(l))
			}
			seen[source] = len(lines)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s: %d new lines of %s %.200q, want %q; the first lines:\n%s", st.name, len(got), source, got, want,
					strings.Join(lines[:min(len(lines), 8)], "\n"))
			}
		}
	}

	// Every forged signal is in the log, once: as a line of its own or in a summary.
	var bytes int
	for source, n := range sentBy {
		lines := log.spoofed(source)
		logged := 0
		for _, l := range lines {
			bytes += len(l) + 1
			if s := shape(l); s == "first" {
				logged++
			} else {
				k, _ := strconv.Atoi(s[1:])
				logged += k
			}
		}
		if logged != n {
			t.Errorf("%s: the log accounts for %d forged signals, %d were sent", source, logged, n)
		}
		// The bound: lines at least a minute apart (a summary a minute after the line
		// before it, a line at once only after a minute without any), and one more when
		// the connection ends.
		if limit := int(elapsed/SpoofLogInterval) + 1 + 1; len(lines) > limit {
			t.Errorf("%s: %d lines in %v, want at most %d", source, len(lines), elapsed, limit)
		}
	}
	first := log.spoofed(config.SourceAmosPower)[0]
	if want := `amos-power: ignored ScreenChanged from ` + forger.Names()[0] + `, not the owner of com.amos.PowerManager ("` + owner.Names()[0] + `")`; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	if first := log.spoofed(config.SourceLogind)[0]; !strings.HasPrefix(first, "logind: ignored "+LogindManager+".PrepareForSleep from "+forger.Names()[0]+", not the owner of "+LogindName) {
		t.Errorf("first line %q", first)
	}
	t.Logf("%d forged signals in %v: %d log lines, %d bytes:\n%s", total, elapsed,
		len(log.spoofed(config.SourceAmosPower))+len(log.spoofed(config.SourceLogind)), bytes,
		strings.Join(append(log.spoofed(config.SourceAmosPower), log.spoofed(config.SourceLogind)...), "\n"))
}
