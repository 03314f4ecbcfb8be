// Package resolve finds the collector's addresses the way amosd must on a handset:
// Android's netd through /dev/socket/dnsproxyd, else dns_servers when there is no
// resolv.conf, else Go's resolver (docs/config.md); and dials them in turn.
package resolve
