// Package dbusapi is amosd's own D-Bus API as its callers see it: the bus name, object
// and interface (docs/dbus-api.md), and the client the command line uses.
package dbusapi

import "github.com/godbus/dbus/v5"

// amosd's own D-Bus API (docs/dbus-api.md).
const (
	Name  = "com.amos.Agent1"
	Path  = dbus.ObjectPath("/com/amos/Agent1")
	Iface = "com.amos.Agent1"

	// ErrAccessDeniedName is the D-Bus error amosd answers a caller whose uid may not
	// make the call.
	ErrAccessDeniedName = "org.freedesktop.DBus.Error.AccessDenied"
)
