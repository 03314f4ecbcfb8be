package sources

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"amos.example/amosd/agent/config"
	"github.com/godbus/dbus/v5"
)

// The platform services the D-Bus sources listen to (docs/eligibility.md).
const (
	PowerManagerName  = "com.amos.PowerManager"
	PowerManagerIface = "com.amos.PowerManager1"
	LogindName        = "org.freedesktop.login1"
	LogindManager     = "org.freedesktop.login1.Manager"
	LogindSeat        = "org.freedesktop.login1.Seat"
	LogindSession     = "org.freedesktop.login1.Session"
	LogindSeat0       = dbus.ObjectPath("/org/freedesktop/login1/seat/seat0")
	LogindPathSpace   = dbus.ObjectPath("/org/freedesktop/login1")
	PropsIface        = "org.freedesktop.DBus.Properties"
)

// powerSource listens to the Amos power manager: ScreenChanged(b), LockChanged(b) and
// UserActivity() on com.amos.PowerManager1, from the owner of com.amos.PowerManager
// only. Signals of the interface from anyone else are counted as spoofed, each one, and
// logged at a bounded rate (spoofLog).
type powerSource struct {
	emit      Emit
	spoofed   *atomic.Uint64
	logf      func(string, ...any)
	spoofLog  *spoofLog
	watch     nameWatch
	available bool
}

const powerCaps = CapScreen | CapLock | CapInput

func NewPowerSource(emit Emit, spoofed *atomic.Uint64, logf func(string, ...any)) *powerSource {
	return &powerSource{emit: emit, spoofed: spoofed, logf: logf, spoofLog: newSpoofLog(config.SourceAmosPower, logf),
		watch: nameWatch{name: PowerManagerName}}
}

func (p *powerSource) Connected(ctx context.Context, conn *dbus.Conn) error {
	// No sender in the match: signals of impostors must arrive to be counted.
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(PowerManagerIface)); err != nil {
		return fmt.Errorf("amos-power: %w", err)
	}
	if err := p.watch.Connected(ctx, conn); err != nil {
		return fmt.Errorf("amos-power: %w", err)
	}
	p.setAvailable(p.watch.owner != "")
	return nil
}

func (p *powerSource) setAvailable(on bool) {
	if on == p.available {
		return
	}
	p.available = on
	kind := EventUnavailable
	if on {
		kind = EventAvailable
	}
	p.emit(Event{Source: config.SourceAmosPower, Kind: kind, Caps: powerCaps})
}

func (p *powerSource) Signal(sig *dbus.Signal) {
	if p.watch.ownerChanged(sig) {
		p.logf("amos-power: %s owner is now %q", PowerManagerName, p.watch.owner)
		p.setAvailable(p.watch.owner != "")
		return
	}
	member, ok := strings.CutPrefix(sig.Name, PowerManagerIface+".")
	if !ok {
		return
	}
	if !p.watch.from(sig) {
		p.spoofed.Add(1)
		p.spoofLog.forged(fmt.Sprintf("%s from %s, not the owner of %s (%q)", member, sig.Sender, PowerManagerName, p.watch.owner))
		return
	}
	flag, isBool := false, false
	if len(sig.Body) == 1 {
		flag, isBool = sig.Body[0].(bool)
	}
	switch {
	case member == "ScreenChanged" && isBool:
		p.emit(Event{Source: config.SourceAmosPower, Kind: pick(flag, EventScreenOn, EventScreenOff)})
	case member == "LockChanged" && isBool:
		p.emit(Event{Source: config.SourceAmosPower, Kind: pick(flag, EventLocked, EventUnlocked)})
	case member == "UserActivity" && len(sig.Body) == 0:
		p.emit(Event{Source: config.SourceAmosPower, Kind: EventInput})
	default:
		p.logf("amos-power: ignored malformed %s%v", member, sig.Body)
	}
}

func (p *powerSource) Disconnected() {
	p.spoofLog.flush()
	p.watch.owner = ""
	p.setAvailable(false)
}

func pick(cond bool, yes, no EventKind) EventKind {
	if cond {
		return yes
	}
	return no
}

// logindSource listens to systemd-logind: the LockedHint and IdleHint properties of the
// active session of seat0, and Manager.PrepareForSleep, from the owner of
// org.freedesktop.login1 only; the others' signals are counted and logged as the
// power source's are.
type logindSource struct {
	emit      Emit
	spoofed   *atomic.Uint64
	logf      func(string, ...any)
	spoofLog  *spoofLog
	watch     nameWatch
	conn      *dbus.Conn
	ctx       context.Context
	session   dbus.ObjectPath // the active session of seat0, "" if none
	available bool
}

const logindCaps = CapLock | CapIdle

// CallTimeout bounds a method call made on the bus (a source to a platform service, amosd
// to the bus itself).
const CallTimeout = 5 * time.Second

func NewLogindSource(emit Emit, spoofed *atomic.Uint64, logf func(string, ...any)) *logindSource {
	return &logindSource{emit: emit, spoofed: spoofed, logf: logf, spoofLog: newSpoofLog(config.SourceLogind, logf),
		watch: nameWatch{name: LogindName}}
}

func (l *logindSource) Connected(ctx context.Context, conn *dbus.Conn) error {
	for _, m := range [][]dbus.MatchOption{
		{dbus.WithMatchInterface(LogindManager), dbus.WithMatchMember("PrepareForSleep")},
		{dbus.WithMatchInterface(PropsIface), dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchPathNamespace(LogindPathSpace)},
	} {
		if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
			return fmt.Errorf("logind: %w", err)
		}
	}
	if err := l.watch.Connected(ctx, conn); err != nil {
		return fmt.Errorf("logind: %w", err)
	}
	l.conn, l.ctx = conn, conn.Context()
	l.resolve()
	return nil
}

// resolve finds the active session of seat0 and reports its state.
func (l *logindSource) resolve() {
	l.session = ""
	if l.watch.owner == "" {
		l.setAvailable(false)
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, CallTimeout)
	defer cancel()
	var active struct {
		ID   string
		Path dbus.ObjectPath
	}
	var v dbus.Variant
	err := l.conn.Object(LogindName, LogindSeat0).CallWithContext(ctx, PropsIface+".Get", 0, LogindSeat, "ActiveSession").Store(&v)
	if err == nil {
		err = dbus.Store([]any{v.Value()}, &active)
	}
	if err != nil || active.Path == "" || active.Path == "/" {
		l.logf("logind: no active session on seat0 (%v)", err)
		l.setAvailable(false)
		return
	}
	var props map[string]dbus.Variant
	if err := l.conn.Object(LogindName, active.Path).CallWithContext(ctx, PropsIface+".GetAll", 0, LogindSession).Store(&props); err != nil {
		l.logf("logind: session %s: %v", active.Path, err)
		l.setAvailable(false)
		return
	}
	l.session = active.Path
	l.setAvailable(true)
	l.report(props)
}

// report turns session properties into events.
func (l *logindSource) report(props map[string]dbus.Variant) {
	if v, ok := props["LockedHint"].Value().(bool); ok {
		l.emit(Event{Source: config.SourceLogind, Kind: pick(v, EventLocked, EventUnlocked)})
	}
	if v, ok := props["IdleHint"].Value().(bool); ok {
		l.emit(Event{Source: config.SourceLogind, Kind: pick(v, EventIdle, EventActive)})
	}
}

func (l *logindSource) setAvailable(on bool) {
	if on == l.available {
		return
	}
	l.available = on
	l.emit(Event{Source: config.SourceLogind, Kind: pick(on, EventAvailable, EventUnavailable), Caps: logindCaps})
}

func (l *logindSource) Signal(sig *dbus.Signal) {
	if l.watch.ownerChanged(sig) {
		l.logf("logind: %s owner is now %q", LogindName, l.watch.owner)
		l.resolve()
		return
	}
	isSleep := sig.Name == LogindManager+".PrepareForSleep"
	isProps := sig.Name == PropsIface+".PropertiesChanged" && strings.HasPrefix(string(sig.Path), string(LogindPathSpace)+"/")
	if !isSleep && !isProps {
		return
	}
	if !l.watch.from(sig) {
		l.spoofed.Add(1)
		l.spoofLog.forged(fmt.Sprintf("%s from %s, not the owner of %s", sig.Name, sig.Sender, LogindName))
		return
	}
	if isSleep {
		if v, ok := bodyBool(sig); ok {
			l.emit(Event{Source: config.SourceLogind, Kind: pick(v, EventSuspend, EventResume)})
		}
		return
	}
	if len(sig.Body) != 3 {
		return
	}
	iface, _ := sig.Body[0].(string)
	changed, _ := sig.Body[1].(map[string]dbus.Variant)
	invalidated, _ := sig.Body[2].([]string)
	switch {
	case sig.Path == LogindSeat0 && iface == LogindSeat:
		if _, ok := changed["ActiveSession"]; ok || contains(invalidated, "ActiveSession") {
			l.resolve()
		}
	case sig.Path == l.session && iface == LogindSession:
		l.report(changed)
		if contains(invalidated, "LockedHint") || contains(invalidated, "IdleHint") {
			l.resolve()
		}
	}
}

func (l *logindSource) Disconnected() {
	l.spoofLog.flush()
	l.watch.owner, l.session, l.conn = "", "", nil
	l.setAvailable(false)
}

func bodyBool(sig *dbus.Signal) (bool, bool) {
	if len(sig.Body) != 1 {
		return false, false
	}
	v, ok := sig.Body[0].(bool)
	return v, ok
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// NetworkManager, whose StateChanged wakes the sync loop when the network comes up.
const (
	networkManagerName  = "org.freedesktop.NetworkManager"
	networkManagerIface = "org.freedesktop.NetworkManager"
	nmConnectedGlobal   = 70 // NM_STATE_CONNECTED_GLOBAL
)

// NetworkWatch calls up when NetworkManager, its owner only, reports full connectivity.
type NetworkWatch struct {
	logf  func(string, ...any)
	up    func()
	watch nameWatch
}

// NewNetworkWatch returns a bus client that calls up when the network comes up.
func NewNetworkWatch(logf func(string, ...any), up func()) *NetworkWatch {
	return &NetworkWatch{logf: logf, up: up}
}

func (n *NetworkWatch) Connected(ctx context.Context, conn *dbus.Conn) error {
	n.watch.name = networkManagerName
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(networkManagerIface), dbus.WithMatchMember("StateChanged")); err != nil {
		return fmt.Errorf("network watch: %w", err)
	}
	return n.watch.Connected(ctx, conn)
}

func (n *NetworkWatch) Signal(sig *dbus.Signal) {
	if n.watch.ownerChanged(sig) || sig.Name != networkManagerIface+".StateChanged" {
		return
	}
	if !n.watch.from(sig) || len(sig.Body) != 1 {
		return
	}
	if state, ok := sig.Body[0].(uint32); ok && state == nmConnectedGlobal {
		n.logf("network: connected")
		n.up()
	}
}

func (n *NetworkWatch) Disconnected() { n.watch.owner = "" }
