// Package sources turns what the platform says into activity events for the daemon:
// the power manager and logind over D-Bus (their owners only), Linux input devices,
// and NetworkManager's connectivity; no content of input is ever read (docs/dbus-api.md).
package sources
