package resolve

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
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
// whatever server the (absent) system configuration names. The Go resolver asks for A
// and AAAA at once and retries each a few times: a plain rotation could send every
// attempt of one of them to the same dead server. So a server that refused a query or
// let it time out is passed over for a while, as long as another one is left.
func serversResolver(servers []string) *net.Resolver {
	h := &serverHealth{servers: servers, downUntil: make([]time.Time, len(servers))}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			i := h.pick(time.Now())
			var d net.Dialer
			c, err := d.DialContext(ctx, network, servers[i])
			if err != nil {
				h.failed(i, time.Now())
				return nil, err
			}
			failed := func() { h.failed(i, time.Now()) }
			if uc, ok := c.(*net.UDPConn); ok {
				// The resolver frames a query by whether its conn is a PacketConn.
				return &watchedUDP{UDPConn: uc, failed: failed}, nil
			}
			return &watchedConn{Conn: c, failed: failed}, nil
		},
	}
}

// deadServerPause is how long a server that failed a query is passed over.
const deadServerPause = 30 * time.Second

// serverHealth rotates over the servers, skipping those that failed recently.
type serverHealth struct {
	mu        sync.Mutex
	servers   []string
	next      int
	downUntil []time.Time
}

func (h *serverHealth) pick(now time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.servers)
	for k := 0; k < n; k++ {
		i := (h.next + k) % n
		if !now.Before(h.downUntil[i]) {
			h.next = i + 1
			return i
		}
	}
	// All failed lately: rotate anyway, a server may be back.
	i := h.next % n
	h.next = i + 1
	return i
}

func (h *serverHealth) failed(i int, now time.Time) {
	h.mu.Lock()
	h.downUntil[i] = now.Add(deadServerPause)
	h.mu.Unlock()
}

// watchedConn reports a read or write that fails (a refused port, a timeout) to its server's health.
type watchedConn struct {
	net.Conn
	failed func()
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && n == 0 {
		c.failed()
	}
	return n, err
}

func (c *watchedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.failed()
	}
	return n, err
}

// watchedUDP is watchedConn for UDP, still a net.PacketConn.
type watchedUDP struct {
	*net.UDPConn
	failed func()
}

func (c *watchedUDP) Read(b []byte) (int, error) {
	n, err := c.UDPConn.Read(b)
	if err != nil && n == 0 {
		c.failed()
	}
	return n, err
}

func (c *watchedUDP) Write(b []byte) (int, error) {
	n, err := c.UDPConn.Write(b)
	if err != nil {
		c.failed()
	}
	return n, err
}
