package agent

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/sources"
	"amos.example/amosd/store"
)

// cst is the default reporting zone, UTC+08:00.
var cst = time.FixedZone("CST", 8*3600)

const waitFor = 30 * time.Second

// rig runs a real agent against a private dbus-daemon, with emulated platform
// services on their own connections and a clock the test drives.
type rig struct {
	t       *testing.T
	clock   *fakeClock
	bus     *testenv.Bus
	cfg     *config.Config
	events  chan sources.Event
	backlog []sources.Event // events seen while waiting for others
	traces  chan string
	passed  []string // traces seen while waiting for others
	minted  chan *proof.Record
	a       *Agent
	cancel  context.CancelFunc
	done    chan error
	pm      *dbus.Conn // owns com.amos.PowerManager
	logind  *fakeLogind
}

func newRig(t *testing.T, start time.Time, srcs []string, mutate func(*config.Config)) *rig {
	t.Helper()
	r := &rig{t: t, clock: newFakeClock(start), bus: testenv.StartBus(t)}
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.KeyDir = filepath.Join(dir, "data"), filepath.Join(dir, "persist")
	cfg.ServerURL, cfg.AllowInsecureHTTP = "http://127.0.0.1:9", true
	cfg.Bus = r.bus.Address
	cfg.Sources = srcs
	cfg.ConsentDefault = true
	if mutate != nil {
		mutate(&cfg)
	}
	r.cfg = &cfg
	for _, s := range srcs {
		switch s {
		case config.SourceAmosPower:
			r.pm = r.connect(sources.PowerManagerName)
		case config.SourceLogind:
			r.logind = startLogind(t, r.connect(sources.LogindName))
			r.logind.before = func() { r.backlog = nil }
		}
	}
	return r
}

// connect opens a test connection to the bus, owning name unless it is "".
func (r *rig) connect(name string) *dbus.Conn {
	r.t.Helper()
	conn, err := dbus.Connect(r.bus.Address)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { conn.Close() })
	if name != "" {
		reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
		if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			r.t.Fatalf("own %s: %v %v", name, reply, err)
		}
	}
	return conn
}

// start creates the agent and runs it; it waits until the D-Bus sources are up.
func (r *rig) start() {
	r.t.Helper()
	r.events = make(chan sources.Event, 1024)
	r.backlog = nil
	r.traces = make(chan string, 1024)
	r.minted = make(chan *proof.Record, 64)
	no := false
	a, err := New(Options{
		Config: r.cfg, Clock: r.clock, Version: "test", Debuggable: &no,
		Logf: func(f string, args ...any) {
			r.t.Logf("%s agent: "+f, append([]any{r.clock.Now().In(cst).Format("01-02 15:04:05")}, args...)...)
		},
		Observe: func(ev sources.Event) { r.events <- ev },
		Trace:   func(s string) { r.traces <- s },
		Minted:  func(rec *proof.Record, _ store.MintResult) { r.minted <- rec },
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.a = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- a.Run(ctx) }()
	r.t.Cleanup(r.stop)
	for _, s := range r.cfg.Sources {
		if s == config.SourceAmosPower || s == config.SourceLogind {
			r.waitEvent(s, sources.EventAvailable)
		}
	}
}

// stop stops the agent as SIGTERM does and closes its store.
func (r *rig) stop() {
	if r.a == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(waitFor):
		r.t.Fatal("agent did not stop")
	}
	r.a.Close()
	r.a = nil
}

// waitEvent waits for the agent to account an event of src; events that do not match
// are kept for later waits.
func (r *rig) waitEvent(src string, kind sources.EventKind) sources.Event {
	r.t.Helper()
	for i, ev := range r.backlog {
		if ev.Source == src && ev.Kind == kind {
			r.backlog = append(r.backlog[:i], r.backlog[i+1:]...)
			return ev
		}
	}
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-r.events:
			if ev.Source == src && ev.Kind == kind {
				return ev
			}
			r.backlog = append(r.backlog, ev)
		case <-deadline:
			r.t.Fatalf("no %s %s event", src, kind)
		}
	}
}

func (r *rig) waitTrace(what string) {
	r.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case s := <-r.traces:
			if s == what {
				return
			}
			r.passed = append(r.passed, s)
		case <-deadline:
			r.t.Fatalf("no %q trace", what)
		}
	}
}

// waitTraceAny is waitTrace for a trace that may already have passed while the test
// waited for another one (the sync loop runs beside the agent's loop).
func (r *rig) waitTraceAny(what string) {
	r.t.Helper()
	for i, s := range r.passed {
		if s == what {
			r.passed = append(r.passed[:i], r.passed[i+1:]...)
			return
		}
	}
	r.waitTrace(what)
}

func (r *rig) waitMinted() *proof.Record {
	r.t.Helper()
	select {
	case rec := <-r.minted:
		return rec
	case <-time.After(waitFor):
		r.t.Fatal("nothing minted")
		return nil
	}
}

// at moves the clock forward to the local time hh:mm:ss of the current day (or the
// next day if that time has passed), waiting for the midnight alarm if it crosses one.
func (r *rig) at(hms string) {
	r.t.Helper()
	now := r.clock.Now().In(cst)
	t, err := time.ParseInLocation("2006-01-02 15:04:05", now.Format("2006-01-02 ")+hms, cst)
	if err != nil {
		r.t.Fatal(err)
	}
	if !t.After(now) {
		t = t.AddDate(0, 0, 1)
	}
	r.advance(t.Sub(now))
}

// advance moves the clock and waits for the agent to handle a midnight it crosses.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	before := r.clock.Now().In(cst)
	r.clock.Advance(d)
	if after := r.clock.Now().In(cst); after.YearDay() != before.YearDay() || after.Year() != before.Year() {
		r.waitTrace("alarm")
	}
}

// power emits a signal of the power manager and waits for the agent to account it.
func (r *rig) power(member string, args ...any) {
	r.t.Helper()
	r.backlog = nil // only what follows this signal may match
	if err := r.pm.Emit("/com/amos/PowerManager", sources.PowerManagerIface+"."+member, args...); err != nil {
		r.t.Fatal(err)
	}
	kind := map[string]sources.EventKind{"UserActivity": sources.EventInput}[member]
	if len(args) == 1 {
		on := args[0].(bool)
		kind = map[string]sources.EventKind{"ScreenChanged": sources.EventScreenOff, "LockChanged": sources.EventUnlocked}[member]
		if on {
			kind = map[string]sources.EventKind{"ScreenChanged": sources.EventScreenOn, "LockChanged": sources.EventLocked}[member]
		}
	}
	r.waitEvent(config.SourceAmosPower, kind)
}

// use is one typical moment of use: screen on, unlock, one touch, and after wait the
// screen goes off and the phone locks. It counts 30 s when wait >= 30 s.
func (r *rig) use(wait time.Duration) {
	r.t.Helper()
	r.power("ScreenChanged", true)
	r.power("LockChanged", false)
	r.power("UserActivity")
	r.advance(wait)
	r.power("ScreenChanged", false)
	r.power("LockChanged", true)
}

// records returns the queued records of the stopped agent's store, decoded.
func (r *rig) records() []*proof.Record {
	r.t.Helper()
	s, err := store.OpenReadOnly(r.cfg.DataDir)
	if err != nil {
		r.t.Fatal(err)
	}
	defer s.Close()
	items, err := s.Peek(1000, 1<<20)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []*proof.Record
	for _, it := range items {
		rec, err := proof.Decode(it.Record)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

// want is an expected activity record.
type want struct {
	date    proof.Date
	secs    uint32
	unlocks uint16
	screens uint16
	hours   []int
	flags   proof.Flags
}

// check compares the records with a genesis (of reason) and the activity days.
func (r *rig) check(recs []*proof.Record, epoch uint32, reason proof.GenesisReason, days ...want) {
	r.t.Helper()
	if len(recs) != 1+len(days) {
		for _, rec := range recs {
			r.t.Logf("record: epoch %d seq %d kind %d %+v", rec.Epoch, rec.Seq, rec.Kind(), rec.Body)
		}
		r.t.Fatalf("%d records, want a genesis and %d days", len(recs), len(days))
	}
	g, ok := recs[0].Genesis()
	if !ok || recs[0].Epoch != epoch || recs[0].Seq != 1 || g.Reason != reason {
		r.t.Fatalf("first record: epoch %d seq %d %+v, want the genesis of epoch %d reason %d", recs[0].Epoch, recs[0].Seq, recs[0].Body, epoch, reason)
	}
	if _, err := proof.VerifyChain(encodeAll(r.t, recs), nil); err != nil {
		r.t.Fatalf("chain: %v", err)
	}
	for i, w := range days {
		rec := recs[i+1]
		a, ok := rec.Activity()
		var hours uint32
		for _, h := range w.hours {
			hours |= 1 << h
		}
		if !ok || a.Date != w.date || a.InteractiveSeconds != w.secs || a.Unlocks != w.unlocks ||
			a.ScreenOns != w.screens || a.ActiveHours != hours || rec.Flags != w.flags || a.UTCOffsetMinutes != 480 {
			r.t.Errorf("record %d: %+v flags %#x\nwant date %s, %d s, %d unlocks, %d screen_ons, hours %v, flags %#x",
				i+1, a, rec.Flags, w.date, w.secs, w.unlocks, w.screens, w.hours, w.flags)
		}
	}
}

func encodeAll(t *testing.T, recs []*proof.Record) [][]byte {
	var out [][]byte
	for _, r := range recs {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// fakeLogind emulates systemd-logind: seat0 with one active session whose LockedHint
// and IdleHint it can change, and PrepareForSleep.
type fakeLogind struct {
	mu      sync.Mutex // props are read by the bus's handler goroutine
	t       *testing.T
	conn    *dbus.Conn
	session dbus.ObjectPath
	props   map[string]dbus.Variant
	before  func() // runs before each signal: the rig forgets older events
}

type propsObj struct {
	iface string
	get   func() map[string]dbus.Variant
}

func (p propsObj) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != p.iface {
		return dbus.Variant{}, dbus.MakeFailedError(errors.New("no such interface"))
	}
	v, ok := p.get()[name]
	if !ok {
		return dbus.Variant{}, dbus.MakeFailedError(errors.New("no such property"))
	}
	return v, nil
}

func (p propsObj) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if iface != p.iface {
		return nil, dbus.MakeFailedError(errors.New("no such interface"))
	}
	return p.get(), nil
}

func startLogind(t *testing.T, conn *dbus.Conn) *fakeLogind {
	l := &fakeLogind{t: t, conn: conn, session: "/org/freedesktop/login1/session/c1",
		props: map[string]dbus.Variant{"LockedHint": dbus.MakeVariant(true), "IdleHint": dbus.MakeVariant(true)}}
	seat := propsObj{iface: sources.LogindSeat, get: func() map[string]dbus.Variant {
		return map[string]dbus.Variant{"ActiveSession": dbus.MakeVariant(struct {
			ID   string
			Path dbus.ObjectPath
		}{"c1", l.session})}
	}}
	sess := propsObj{iface: sources.LogindSession, get: func() map[string]dbus.Variant {
		l.mu.Lock()
		defer l.mu.Unlock()
		return maps.Clone(l.props)
	}}
	if err := conn.Export(seat, sources.LogindSeat0, sources.PropsIface); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(sess, l.session, sources.PropsIface); err != nil {
		t.Fatal(err)
	}
	return l
}

// set changes a session property and announces it.
func (l *fakeLogind) set(name string, v bool) {
	l.before()
	l.mu.Lock()
	l.props[name] = dbus.MakeVariant(v)
	l.mu.Unlock()
	if err := l.conn.Emit(l.session, sources.PropsIface+".PropertiesChanged", sources.LogindSession,
		map[string]dbus.Variant{name: dbus.MakeVariant(v)}, []string{}); err != nil {
		l.t.Fatal(err)
	}
}

func (l *fakeLogind) sleep(v bool) {
	l.before()
	if err := l.conn.Emit("/org/freedesktop/login1", sources.LogindManager+".PrepareForSleep", v); err != nil {
		l.t.Fatal(err)
	}
}
