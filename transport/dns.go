package transport

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
)

// parseDNSServers turns dns_servers entries (IP or IP:port) into addresses to dial.
func parseDNSServers(list []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, ap.String())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil, configErr("dns_servers: %q is not an IP address or IP:port", s)
		}
		out = append(out, netip.AddrPortFrom(ip, 53).String())
	}
	return out, nil
}

// serversResolver returns a pure-Go resolver that sends every query to servers in turn,
// whatever server the (absent) system configuration names: the Go resolver makes
// several attempts per name, so one dead server does not fail a lookup.
func serversResolver(servers []string) *net.Resolver {
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			i := next.Add(1) - 1
			var d net.Dialer
			return d.DialContext(ctx, network, servers[int(i%uint32(len(servers)))])
		},
	}
}
