package dbusapi

import (
	"context"
	"errors"
	"fmt"

	"amos.example/amosd/sources"
	"github.com/godbus/dbus/v5"
)

// Errors of Client calls that the command line maps to exit codes.
var (
	// ErrUnreachable means the bus or the daemon cannot be reached (exit 3).
	ErrUnreachable = errors.New("amosd is not reachable")
	// ErrAccessDenied means the daemon refused the caller's uid.
	ErrAccessDenied = errors.New("access denied")
)

// Client calls a running amosd over D-Bus (docs/dbus-api.md).
type Client struct {
	conn *dbus.Conn
	obj  dbus.BusObject
}

// Dial connects to the bus of the configuration and checks that amosd owns
// its name; both failures wrap ErrUnreachable.
func Dial(ctx context.Context, bus string) (*Client, error) {
	conn, err := sources.Dial(ctx, bus)
	if err != nil {
		return nil, fmt.Errorf("%w: bus %s: %v", ErrUnreachable, bus, err)
	}
	var owner string
	if err := conn.BusObject().CallWithContext(ctx, sources.BusName+".GetNameOwner", 0, Name).Store(&owner); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: nobody owns %s on bus %s: is amosd running?", ErrUnreachable, Name, bus)
	}
	return &Client{conn: conn, obj: conn.Object(Name, Path)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) call(ctx context.Context, method string, out []any, args ...any) error {
	call := c.obj.CallWithContext(ctx, Iface+"."+method, 0, args...)
	if call.Err != nil {
		var derr dbus.Error
		if errors.As(call.Err, &derr) {
			msg := derr.Name
			if len(derr.Body) > 0 {
				msg = fmt.Sprint(derr.Body[0])
			}
			switch derr.Name {
			case ErrAccessDeniedName:
				return fmt.Errorf("%w: %s", ErrAccessDenied, msg)
			case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NoReply", sources.ErrNoOwn:
				return fmt.Errorf("%w: %s", ErrUnreachable, msg)
			}
			return fmt.Errorf("%s: %s", method, msg)
		}
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, method, call.Err)
	}
	if len(out) > 0 {
		return call.Store(out...)
	}
	return nil
}

// Status calls Status and returns its dictionary with plain Go values.
func (c *Client) Status(ctx context.Context) (map[string]any, error) {
	var m map[string]dbus.Variant
	if err := c.call(ctx, "Status", []any{&m}); err != nil {
		return nil, err
	}
	return plain(m), nil
}

// plain turns an a{sv} into plain Go values, nested dictionaries (last_recovery) too.
func plain(m map[string]dbus.Variant) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if inner, ok := v.Value().(map[string]dbus.Variant); ok {
			out[k] = plain(inner)
			continue
		}
		out[k] = v.Value()
	}
	return out
}

// Flush calls Flush.
func (c *Client) Flush(ctx context.Context) (accepted, queued uint32, err error) {
	err = c.call(ctx, "Flush", []any{&accepted, &queued})
	return accepted, queued, err
}

// Report calls ReportActivity.
func (c *Client) Report(ctx context.Context, event string) error {
	return c.call(ctx, "ReportActivity", nil, event)
}

// SetConsent calls SetConsent.
func (c *Client) SetConsent(ctx context.Context, granted bool) error {
	return c.call(ctx, "SetConsent", nil, granted)
}
