package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/godbus/dbus/v5"
)

// Client is a user of the bus connection: an activity source, or amosd's own API.
// The bus calls it from one goroutine.
type Client interface {
	// Connected runs on every new connection: add matches, read state, export objects.
	Connected(ctx context.Context, conn *dbus.Conn) error
	// Signal sees every signal received, in order.
	Signal(sig *dbus.Signal)
	// Disconnected runs when the connection is gone.
	Disconnected()
}

// Bus keeps one connection to the configured bus and reconnects with backoff when the
// bus goes away (godbus never reconnects by itself), replaying every client's setup.
type Bus struct {
	address string // "system", "session" or a bus address
	clients []Client
	logf    func(string, ...any)
	// afterConnect and afterDisconnect are test hooks; nil in production.
	afterConnect, afterDisconnect func()
}

// FatalError, from a Client's Connected, stops the Bus for good: retrying cannot help.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// NewBus returns a bus for address: "system", "session" or a D-Bus address.
func NewBus(address string, logf func(string, ...any)) *Bus {
	return &Bus{address: address, logf: logf}
}

// Add makes c a client of the bus; call it before Run.
func (b *Bus) Add(c Client) { b.clients = append(b.clients, c) }

// Dial connects to the bus address of the configuration. The session bus is taken
// from DBUS_SESSION_BUS_ADDRESS only: a daemon never launches a bus.
func Dial(ctx context.Context, address string) (*dbus.Conn, error) {
	opts := []dbus.ConnOption{dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()), dbus.WithContext(ctx)}
	switch address {
	case "system":
		return dbus.ConnectSystemBus(opts...)
	case "session":
		addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
		if addr == "" {
			return nil, errors.New("bus \"session\": DBUS_SESSION_BUS_ADDRESS is not set")
		}
		return dbus.Connect(addr, opts...)
	}
	return dbus.Connect(address, opts...)
}

// Run keeps the connection until ctx is done.
func (b *Bus) Run(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(time.Minute),
		backoff.WithMaxElapsedTime(0),
	)
	for ctx.Err() == nil {
		if err := b.session(ctx, bo); err != nil {
			var fe *FatalError
			if errors.As(err, &fe) {
				return err
			}
			b.logf("bus %s: %v", b.address, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(bo.NextBackOff()):
		}
	}
	return nil
}

// session runs one connection to its end.
func (b *Bus) session(ctx context.Context, bo backoff.BackOff) error {
	conn, err := Dial(ctx, b.address)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	ch := make(chan *dbus.Signal, 64)
	conn.Signal(ch)
	defer conn.RemoveSignal(ch)
	defer func() {
		for _, c := range b.clients {
			c.Disconnected()
		}
		if b.afterDisconnect != nil {
			b.afterDisconnect()
		}
	}()
	for _, c := range b.clients {
		setup, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Connected(setup, conn)
		cancel()
		var fe *FatalError
		if errors.As(err, &fe) {
			return err
		}
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	bo.Reset()
	b.logf("bus %s: connected as %s", b.address, conn.Names()[0])
	if b.afterConnect != nil {
		b.afterConnect()
	}
	for {
		select {
		case sig, ok := <-ch:
			if !ok || sig == nil {
				return errors.New("connection lost")
			}
			for _, c := range b.clients {
				c.Signal(sig)
			}
		case <-conn.Context().Done():
			return errors.New("connection lost")
		case <-ctx.Done():
			return nil
		}
	}
}

// Well-known names of the bus itself.
const (
	BusName  = "org.freedesktop.DBus"
	ErrNoOwn = "org.freedesktop.DBus.Error.NameHasNoOwner"
)

// nameWatch tracks the unique name that owns a well-known name, so that a source
// accepts signals from the owner only (Signal.Sender is always a unique name).
type nameWatch struct {
	name  string
	owner string // unique name such as ":1.42", "" when nobody owns it
}

// connected subscribes to the name's owner changes, then asks for the owner.
func (w *nameWatch) Connected(ctx context.Context, conn *dbus.Conn) error {
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(BusName), dbus.WithMatchInterface(BusName),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, w.name)); err != nil {
		return fmt.Errorf("watch %s: %w", w.name, err)
	}
	var owner string
	err := conn.BusObject().CallWithContext(ctx, BusName+".GetNameOwner", 0, w.name).Store(&owner)
	var derr dbus.Error
	switch {
	case errors.As(err, &derr) && derr.Name == ErrNoOwn:
		owner = ""
	case err != nil:
		return fmt.Errorf("owner of %s: %w", w.name, err)
	}
	w.owner = owner
	return nil
}

// ownerChanged handles a NameOwnerChanged signal from the bus itself about the name;
// ok is false for any other signal.
func (w *nameWatch) ownerChanged(sig *dbus.Signal) (ok bool) {
	if sig.Sender != BusName || sig.Name != BusName+".NameOwnerChanged" || len(sig.Body) != 3 {
		return false
	}
	name, _ := sig.Body[0].(string)
	owner, isString := sig.Body[2].(string)
	if name != w.name || !isString {
		return false
	}
	w.owner = owner
	return true
}

// from reports whether sig comes from the current owner of the name.
func (w *nameWatch) from(sig *dbus.Signal) bool { return w.owner != "" && sig.Sender == w.owner }
