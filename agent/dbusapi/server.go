package dbusapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"amos.example/amosd/sources"
	"github.com/godbus/dbus/v5"
)

// amosd's own D-Bus API (docs/dbus-api.md).
const (
	errInvalidArgs = "org.freedesktop.DBus.Error.InvalidArgs"
	errFailed      = "org.freedesktop.DBus.Error.Failed"

	// FlushTimeout bounds the sync attempt a Flush waits for (docs/dbus-api.md).
	FlushTimeout = 30 * time.Second
)

// ErrNameTaken means another process owns com.amos.Agent1: another amosd is running.
var ErrNameTaken = errors.New("another process owns " + Name + ": is another amosd running?")

// ErrNameDenied means the bus policy does not let this user own com.amos.Agent1: the
// policy file is missing, or amosd runs as a user it does not name. Retrying cannot help.
var ErrNameDenied = errors.New("the bus policy does not let this user own " + Name)

// Daemon is what the API serves: the daemon's state and requests.
type Daemon interface {
	Status(ctx context.Context) (Status, error)
	Flush(ctx context.Context) (accepted, queued uint32, err error)
	Report(ctx context.Context, event string) error
	SetConsent(ctx context.Context, granted bool) error
}

// Server exports com.amos.Agent1 on every connection of the bus (a sources.Client)
// and checks each caller's uid, taken from the bus, against trusted_uids and
// status_uids.
type Server struct {
	d       Daemon
	trusted []uint32
	status  []uint32
	logf    func(string, ...any)
	mu      sync.Mutex
	conn    *dbus.Conn // the current connection, nil between connections
	// named is true once conn owns Name: signals go out from then on.
	named bool
}

// NewServer returns the API of d for the bus: trusted uids may call everything,
// status uids Status and Flush.
func NewServer(d Daemon, trusted, status []uint32, logf func(string, ...any)) *Server {
	return &Server{d: d, trusted: trusted, status: status, logf: logf}
}

// access levels of a caller.
type access int

const (
	accessNone access = iota
	accessStatus
	accessTrusted
)

func (s *Server) Connected(ctx context.Context, conn *dbus.Conn) error {
	// Method tables, not conn.Export: Export finds the methods with reflect's
	// Value.Method, and a binary that calls it keeps every exported method of every
	// type, which costs amosd about a megabyte (README.md's budget table binary budget).
	m := apiMethods{s}
	if err := conn.ExportMethodTable(map[string]any{
		"Status":         m.Status,
		"Flush":          m.Flush,
		"ReportActivity": m.ReportActivity,
		"SetConsent":     m.SetConsent,
	}, Path, Iface); err != nil {
		return fmt.Errorf("export %s: %w", Path, err)
	}
	if err := conn.ExportMethodTable(map[string]any{
		"Introspect": func() (string, *dbus.Error) { return apiIntrospection, nil },
	}, Path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return fmt.Errorf("export introspection: %w", err)
	}
	// The methods need conn as soon as the name is ours: when the bus started amosd for
	// a call (D-Bus activation), it delivers that call at once.
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	reply, err := conn.RequestName(Name, dbus.NameFlagDoNotQueue)
	if err != nil || (reply != dbus.RequestNameReplyPrimaryOwner && reply != dbus.RequestNameReplyAlreadyOwner) {
		s.Disconnected()
	}
	var derr dbus.Error
	switch {
	case errors.As(err, &derr) && derr.Name == ErrAccessDeniedName:
		return &sources.FatalError{Err: fmt.Errorf("%w (uid %d): run amosd as a user that the bus policy for %s names (on Linux, /usr/share/dbus-1/system.d/%s.conf: user amosd or root), or install that file; the bus said: %w",
			ErrNameDenied, os.Getuid(), Name, Name, err)}
	case err != nil:
		return fmt.Errorf("request %s: %w", Name, err)
	case reply == dbus.RequestNameReplyExists:
		return &sources.FatalError{Err: ErrNameTaken}
	case reply != dbus.RequestNameReplyPrimaryOwner && reply != dbus.RequestNameReplyAlreadyOwner:
		return fmt.Errorf("request %s: reply %d", Name, reply)
	}
	s.mu.Lock()
	s.named = true
	s.mu.Unlock()
	return nil
}

func (s *Server) Signal(*dbus.Signal) {}

func (s *Server) Disconnected() {
	s.mu.Lock()
	s.conn, s.named = nil, false
	s.mu.Unlock()
}

// emit sends a signal of the API if connected; a lost signal is only logged.
// Emit sends the API's signal member (Synced, RecordMinted) once amosd owns its name.
func (s *Server) Emit(member string, args ...any) {
	s.mu.Lock()
	conn, named := s.conn, s.named
	s.mu.Unlock()
	if conn == nil || !named {
		return
	}
	if err := conn.Emit(Path, Iface+"."+member, args...); err != nil {
		s.logf("api: emit %s: %v", member, err)
	}
}

// access asks the bus for the caller's uid (never an argument) and maps it.
func (s *Server) access(sender dbus.Sender) (uint32, access, *dbus.Error) {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		return 0, accessNone, dbus.NewError(errFailed, []any{"not connected"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), sources.CallTimeout)
	defer cancel()
	var uid uint32
	if err := conn.BusObject().CallWithContext(ctx, sources.BusName+".GetConnectionUnixUser", 0, string(sender)).Store(&uid); err != nil {
		return 0, accessNone, dbus.NewError(ErrAccessDeniedName, []any{fmt.Sprintf("cannot tell the uid of %s: %v", sender, err)})
	}
	switch {
	case slices.Contains(s.trusted, uid):
		return uid, accessTrusted, nil
	case slices.Contains(s.status, uid):
		return uid, accessStatus, nil
	}
	return uid, accessNone, nil
}

// allow checks that the caller may call method, which needs level.
func (s *Server) allow(sender dbus.Sender, method string, level access) *dbus.Error {
	uid, got, derr := s.access(sender)
	if derr != nil {
		return derr
	}
	if got < level {
		s.logf("api: denied %s to uid %d", method, uid)
		return dbus.NewError(ErrAccessDeniedName, []any{fmt.Sprintf("uid %d may not call %s.%s", uid, Iface, method)})
	}
	return nil
}

func failed(err error) *dbus.Error { return dbus.NewError(errFailed, []any{err.Error()}) }

// apiMethods are the exported methods; godbus fills in the Sender.
type apiMethods struct{ s *Server }

// Status returns the daemon's state (docs/dbus-api.md).
func (m apiMethods) Status(sender dbus.Sender) (map[string]dbus.Variant, *dbus.Error) {
	if derr := m.s.allow(sender, "Status", accessStatus); derr != nil {
		return nil, derr
	}
	ctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
	defer cancel()
	st, err := m.s.d.Status(ctx)
	if err != nil {
		return nil, failed(err)
	}
	return st.Variants(), nil
}

// Flush makes one sync attempt now and waits for it.
func (m apiMethods) Flush(sender dbus.Sender) (uint32, uint32, *dbus.Error) {
	if derr := m.s.allow(sender, "Flush", accessStatus); derr != nil {
		return 0, 0, derr
	}
	ctx, cancel := context.WithTimeout(context.Background(), FlushTimeout)
	defer cancel()
	accepted, queued, err := m.s.d.Flush(ctx)
	if err != nil {
		return 0, 0, failed(err)
	}
	return accepted, queued, nil
}

// ReportEvent maps an event name of ReportActivity (docs/dbus-api.md) to its event.
func ReportEvent(name string) (sources.EventKind, bool) {
	switch name {
	case "screen_on":
		return sources.EventScreenOn, true
	case "screen_off":
		return sources.EventScreenOff, true
	case "unlocked":
		return sources.EventUnlocked, true
	case "locked":
		return sources.EventLocked, true
	case "input":
		return sources.EventInput, true
	}
	return 0, false
}

// ReportActivity accounts an event reported by a trusted caller.
func (m apiMethods) ReportActivity(sender dbus.Sender, event string) *dbus.Error {
	if derr := m.s.allow(sender, "ReportActivity", accessTrusted); derr != nil {
		return derr
	}
	if _, ok := ReportEvent(event); !ok {
		return dbus.NewError(errInvalidArgs, []any{fmt.Sprintf("unknown event %q: want screen_on, screen_off, unlocked, locked or input", event)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), sources.CallTimeout)
	defer cancel()
	if err := m.s.d.Report(ctx, event); err != nil {
		return failed(err)
	}
	return nil
}

// SetConsent grants or revokes the owner's consent; trusted callers only.
func (m apiMethods) SetConsent(sender dbus.Sender, granted bool) *dbus.Error {
	if derr := m.s.allow(sender, "SetConsent", accessTrusted); derr != nil {
		return derr
	}
	ctx, cancel := context.WithTimeout(context.Background(), sources.CallTimeout)
	defer cancel()
	if err := m.s.d.SetConsent(ctx, granted); err != nil {
		return failed(err)
	}
	return nil
}

// apiIntrospection describes com.amos.Agent1 for Introspect: the document godbus's
// introspect package would make, written out so that encoding/xml is not linked in.
const apiIntrospection = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node name="/com/amos/Agent1">
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="out" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg name="machine_uuid" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="com.amos.Agent1">
  <method name="Status">
   <arg name="status" type="a{sv}" direction="out"/>
  </method>
  <method name="Flush">
   <arg name="accepted" type="u" direction="out"/>
   <arg name="queued" type="u" direction="out"/>
  </method>
  <method name="ReportActivity">
   <arg name="event" type="s" direction="in"/>
  </method>
  <method name="SetConsent">
   <arg name="granted" type="b" direction="in"/>
  </method>
  <signal name="RecordMinted">
   <arg name="epoch" type="u"/>
   <arg name="seq" type="t"/>
   <arg name="date" type="u"/>
  </signal>
  <signal name="Synced">
   <arg name="accepted" type="u"/>
   <arg name="queued" type="u"/>
  </signal>
 </interface>
</node>
`
