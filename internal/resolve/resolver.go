package resolve

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sources of names, as Resolver.Source reports them.
const (
	SourceDnsproxyd  = "dnsproxyd"   // Android's netd, through /dev/socket/dnsproxyd
	SourceDNSServers = "dns_servers" // the configured dns_servers
	SourceSystem     = "system"      // Go's resolver with /etc/resolv.conf
)

// A Resolver finds the addresses of host names the way amosd must on a handset (docs/config.md):
// through Android's netd socket /dev/socket/dnsproxyd when it exists; otherwise,
// when there is no /etc/resolv.conf and dns_servers is set, by asking those servers;
// otherwise with Go's resolver and the system's configuration. The rule is applied at every
// lookup, so a netd that starts after amosd is used from its first query on. Literal IP
// addresses are never looked up. A Resolver is safe for concurrent use.
type Resolver struct {
	dnsproxyd  string        // path of the proxy socket
	resolvConf string        // path of resolv.conf
	servers    []string      // dns_servers as ip:port, nil if not set
	viaServers *net.Resolver // asks servers; nil if not set
	dialer     net.Dialer
}

// New returns the Resolver for the dns_servers setting (IP or IP:port, port 53 by
// default). timeout bounds each lookup and each DialContext (0: DefaultTimeout). Errors
// wrap ErrConfig.
func New(dnsServers []string, timeout time.Duration) (*Resolver, error) {
	return NewAt(dnsServers, timeout, ResolvConfPath, DnsproxydPath)
}

// NewAt is New with other paths for resolv.conf and the dnsproxyd socket (tests).
func NewAt(dnsServers []string, timeout time.Duration, resolvConf, dnsproxyd string) (*Resolver, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	r := &Resolver{
		dnsproxyd:  dnsproxyd,
		resolvConf: resolvConf,
		dialer: net.Dialer{
			Timeout:   timeout,
			KeepAlive: -1, // no TCP keep-alive probes: they would wake the radio
		},
	}
	if len(dnsServers) > 0 {
		servers, err := parseDNSServers(dnsServers)
		if err != nil {
			return nil, err
		}
		r.servers, r.viaServers = servers, serversResolver(servers)
	}
	return r, nil
}

// Source says which source the next lookup uses: SourceDnsproxyd, SourceDNSServers or
// SourceSystem. A dnsproxyd path that cannot even be checked (permission) counts as
// present, so that the failure to connect to it is reported rather than hidden.
func (r *Resolver) Source() string {
	if _, err := os.Stat(r.dnsproxyd); !errors.Is(err, fs.ErrNotExist) {
		return SourceDnsproxyd
	}
	if r.viaServers != nil && !exists(r.resolvConf) {
		return SourceDNSServers
	}
	return SourceSystem
}

// String describes the source of the next lookup for people: "dnsproxyd
// /dev/socket/dnsproxyd", "dns_servers 192.0.2.53:53 (no /etc/resolv.conf)", "system
// (/etc/resolv.conf)".
func (r *Resolver) String() string {
	switch r.Source() {
	case SourceDnsproxyd:
		return SourceDnsproxyd + " " + r.dnsproxyd
	case SourceDNSServers:
		return SourceDNSServers + " " + strings.Join(r.servers, ", ") + " (no " + r.resolvConf + ")"
	}
	if !exists(r.resolvConf) {
		return SourceSystem + " (no " + r.resolvConf + ", no " + r.dnsproxyd + ", no dns_servers)"
	}
	return SourceSystem + " (" + r.resolvConf + ")"
}

// LookupHost returns the addresses of host, in the order the source gives them, and
// the source it asked. A literal IP address is returned as it is, with source "". Errors
// name the source and the host, and match ErrNameNotFound (the name has no address),
// ErrUnreachable (the dnsproxyd socket exists but cannot be connected to) or
// ErrFailed (anything else, with ctx's error if ctx ended the lookup).
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, string, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.dialer.Timeout)
	defer cancel()
	src := r.Source()
	if src == SourceDnsproxyd {
		addrs, err := dnsproxydLookup(ctx, r.dnsproxyd, host)
		return addrs, src, err
	}
	res := net.DefaultResolver
	if src == SourceDNSServers {
		res = r.viaServers
	}
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, src, r.goResolverErr(ctx, err, src, host)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, src, nil
}

// goResolverErr classifies an error of Go's resolver like those of dnsproxyd.
func (r *Resolver) goResolverErr(ctx context.Context, err error, src, host string) error {
	sentinels := []error{ErrFailed}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		sentinels = []error{ErrNameNotFound}
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		sentinels = append(sentinels, ctxErr)
	}
	return classify(err, sentinels, "transport: %s resolver: looking up %q", src, host)
}

// DialContext connects to address ("host:port") on network ("tcp", "tcp4" or "tcp6")
// with the addresses of host from LookupHost. Through dnsproxyd, they are dialled in the
// order netd gives (it sorts them by RFC 6724), each in turn until one answers, each with
// a share of the time left as net.Dialer does; with the other sources, net.Dialer does it
// all with the chosen resolver. The whole is bounded by ctx and by the timeout of the
// Resolver. Lookup failures are errors of LookupHost; connection failures match
// ErrTransient and keep net's error.
func (r *Resolver) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, classify(err, nil, "transport: dial %s", address)
	}
	if _, err := netip.ParseAddr(host); err == nil { // a literal: nothing to look up
		return transientDial(r.dialer.DialContext(ctx, network, address))
	}
	ctx, cancel := context.WithTimeout(ctx, r.dialer.Timeout)
	defer cancel()
	switch src := r.Source(); src {
	case SourceDnsproxyd:
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, classify(err, nil, "transport: dial %s: port %q is not a number", address, portStr)
		}
		addrs, err := dnsproxydLookup(ctx, r.dnsproxyd, host)
		if err != nil {
			return nil, err
		}
		return r.dialEach(ctx, network, host, addrs, uint16(port))
	default:
		d := r.dialer
		if src == SourceDNSServers {
			d.Resolver = r.viaServers
		}
		conn, err := d.DialContext(ctx, network, address)
		var dnsErr *net.DNSError
		if err != nil && errors.As(err, &dnsErr) {
			return nil, r.goResolverErr(ctx, err, src, host)
		}
		return transientDial(conn, err)
	}
}

// transientDial makes a dial error match ErrTransient, its message unchanged.
func transientDial(conn net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, classify(err, nil, "")
	}
	return conn, nil
}

// minDialShare is the least time an address is given when several share the time left
// (net.Dialer's own figure).
const minDialShare = 2 * time.Second

// dialEach dials addrs in order until one connects. It returns the first error if none
// does.
func (r *Resolver) dialEach(ctx context.Context, network, host string, addrs []netip.Addr, port uint16) (net.Conn, error) {
	var tried []netip.Addr
	for _, ip := range addrs {
		if network == "tcp4" && !ip.Is4() || network == "tcp6" && !ip.Is6() {
			continue
		}
		tried = append(tried, ip)
	}
	if len(tried) == 0 {
		return nil, classify(nil, []error{ErrNameNotFound}, "transport: dnsproxyd %s: %q has no %s address (got %v)", r.dnsproxyd, host, network, addrs)
	}
	var first error
	for i, ip := range tried {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok {
			actx, cancel = context.WithDeadline(ctx, dialShare(time.Now(), dl, len(tried)-i))
		}
		conn, err := r.dialer.DialContext(actx, network, netip.AddrPortFrom(ip, port).String())
		cancel()
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, classify(first, nil, "transport: dial %s: none of its %d address(es) from dnsproxyd %s connected", host, len(tried), r.dnsproxyd)
}

// dialShare is the deadline of one of left addresses still to dial before deadline:
// an equal share of the time left, at least minDialShare, never past deadline.
func dialShare(now, deadline time.Time, left int) time.Time {
	remaining := deadline.Sub(now)
	share := remaining / time.Duration(left)
	if share < minDialShare {
		share = min(minDialShare, remaining)
	}
	return now.Add(share)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
