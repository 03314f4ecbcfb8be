package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/internal/devpki"
)

// ---- the wire format, as netd writes it ----

// answer builds dnsproxyd answers byte by byte, as DnsProxyListener and SocketClient
// write them.
type answer []byte

func (a answer) code(c string) answer { return append(a, c...) } // "222\x00", "401\x00", "500 ..."
func (a answer) be32(v int32) answer  { return binary.BigEndian.AppendUint32(a, uint32(v)) }

// entry appends one addrinfo as sendaddrinfo writes it, continuation word included.
func (a answer) entry(ip netip.Addr, canon string) answer {
	sa := sockaddr(ip)
	family := int32(afInet)
	if ip.Is6() {
		family = afInet6
	}
	a = a.be32(1).be32(aiAddrconfig).be32(family).be32(sockStream).be32(6).be32(int32(len(sa)))
	a = append(a, sa...)
	if canon == "" {
		return a.be32(0)
	}
	return append(a.be32(int32(len(canon)+1)), canon+"\x00"...)
}

// failure appends a 401 answer: SocketClient::sendBinaryMsg of the int32 EAI code, whose
// length is big-endian and whose value is in host order.
func (a answer) failure(eai int32) answer {
	a = a.code("401\x00").be32(4)
	return binary.NativeEndian.AppendUint32(a, uint32(eai))
}

// success is a complete 222 answer for ips.
func success(ips ...netip.Addr) answer {
	a := answer(nil).code("222\x00")
	for _, ip := range ips {
		a = a.entry(ip, "")
	}
	return a.be32(0)
}

// sockaddr is the kernel's sockaddr_in or sockaddr_in6 for ip, port 0: sa_family in host
// order, the rest in network order, the scope id in host order.
func sockaddr(ip netip.Addr) []byte {
	if ip.Is4() {
		b := binary.NativeEndian.AppendUint16(nil, afInet)
		b = append(b, 0, 0) // sin_port
		b = append(b, ip.AsSlice()...)
		return append(b, make([]byte, 8)...) // sin_zero
	}
	b := binary.NativeEndian.AppendUint16(nil, afInet6)
	b = append(b, 0, 0, 0, 0, 0, 0) // sin6_port, sin6_flowinfo
	b = append(b, ip.AsSlice()...)
	scope, _ := strconv.ParseUint(ip.Zone(), 10, 32)
	return binary.NativeEndian.AppendUint32(b, uint32(scope))
}

// ---- a dnsproxyd server ----

// fakeNetd listens on a unix stream socket and serves getaddrinfo as DnsProxyListener
// does: a command is what one read of at most 1024 bytes brings, NUL-terminated, split
// on spaces; unknown commands and wrong arguments get a text answer; a name of hosts gets
// 222 and its addresses, any other name 401 EAI_NODATA; the connection stays open for
// further commands until the client closes it.
type fakeNetd struct {
	path    string
	ln      *net.UnixListener
	hosts   map[string][]netip.Addr
	respond func(f *fakeNetd, conn net.Conn, argv []string) (keepOpen bool) // if set, replaces the lookup
	stop    chan struct{}                                                   // closed at cleanup: stalls end

	mu    sync.Mutex
	cmds  []string
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startNetd(t testing.TB, hosts map[string][]netip.Addr, respond func(*fakeNetd, net.Conn, []string) bool) *fakeNetd {
	t.Helper()
	f := &fakeNetd{path: filepath.Join(t.TempDir(), "dnsproxyd"), hosts: hosts, respond: respond, stop: make(chan struct{}), conns: map[net.Conn]bool{}}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[conn] = true
			f.mu.Unlock()
			f.wg.Add(1)
			go f.serve(conn)
		}
	}()
	t.Cleanup(func() {
		close(f.stop)
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeNetd) serve(conn net.Conn) {
	defer f.wg.Done()
	defer conn.Close()
	buf := make([]byte, 1024) // FrameworkListener's CMD_BUF_SIZE
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		if buf[n-1] != 0 {
			conn.Write([]byte("500 Command too large for buffer\x00"))
			continue
		}
		for _, cmd := range strings.SplitAfter(string(buf[:n]), "\x00") {
			if cmd == "" {
				continue
			}
			cmd = strings.TrimSuffix(cmd, "\x00")
			f.mu.Lock()
			f.cmds = append(f.cmds, cmd)
			f.mu.Unlock()
			if !f.dispatch(conn, strings.Split(cmd, " ")) {
				return
			}
		}
	}
}

func (f *fakeNetd) dispatch(conn net.Conn, argv []string) bool {
	if argv[0] != "getaddrinfo" {
		conn.Write([]byte("500 Command not recognized\x00"))
		return true
	}
	if len(argv) != 8 {
		conn.Write([]byte("501 GetAddrInfoCmd::runCommand: invalid number of arguments: " + strconv.Itoa(len(argv)) + "\x00"))
		return true
	}
	for _, a := range argv[3:7] {
		if _, err := strconv.ParseInt(a, 10, 32); err != nil {
			conn.Write([]byte("501 GetAddrInfoCmd::runCommand: \x00"))
			return true
		}
	}
	if _, err := strconv.ParseUint(argv[7], 10, 32); err != nil {
		conn.Write([]byte("501 GetAddrInfoCmd::runCommand: \x00"))
		return true
	}
	if f.respond != nil {
		return f.respond(f, conn, argv)
	}
	ips, ok := f.hosts[argv[1]]
	if !ok {
		conn.Write(answer(nil).failure(eaiNodata))
		return true
	}
	conn.Write(success(ips...))
	return true
}

// commands returns the commands received so far, without their NUL.
func (f *fakeNetd) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

// sniServer is a collector behind TLS that notes the server name of every handshake.
type sniServer struct {
	*httptest.Server
	pki   *devpki.PKI
	mu    sync.Mutex
	names []string
}

func startSNIServer(t testing.TB, network, addr string) *sniServer {
	t.Helper()
	s := &sniServer{pki: newPKI(t)}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("no %s listener on %s: %v", network, addr, err)
	}
	srv := httptest.NewUnstartedServer(newCollector())
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{s.pki.Server},
		VerifyConnection: func(cs tls.ConnectionState) error {
			s.mu.Lock()
			s.names = append(s.names, cs.ServerName)
			s.mu.Unlock()
			return nil
		},
	}
	srv.Config.ErrorLog = discardLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.Server = srv
	return s
}

func (s *sniServer) serverNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.names)
}

func (s *sniServer) port() string {
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return port
}

// proxyClient is a Client of s's CA for host, resolving through f, with no resolv.conf.
func proxyClient(t testing.TB, f *fakeNetd, caFile, host, port string, timeout time.Duration) *Client {
	t.Helper()
	none := filepath.Join(t.TempDir(), "absent")
	c, err := newClient(Config{ServerURL: "https://" + net.JoinHostPort(host, port), CAFile: caFile, Timeout: timeout},
		options{resolvConf: none, dnsproxyd: f.path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

var (
	loop4 = netip.MustParseAddr("127.0.0.1")
	loop6 = netip.MustParseAddr("::1")
)

// wantCommand is what amosd sends for records.amos.test (without the NUL).
const wantCommand = "getaddrinfo records.amos.test ^ 1024 0 1 0 0"

// ---- tests ----

// TestDnsproxydUpload: a name that only dnsproxyd knows reaches the server; the proxy sees
// exactly bionic's command, and TLS is verified for the name, not the address.
func TestDnsproxydUpload(t *testing.T) {
	s := startSNIServer(t, "tcp", "127.0.0.1:0")
	f := startNetd(t, map[string][]netip.Addr{"records.amos.test": {loop4}}, nil)
	c := proxyClient(t, f, s.pki.CAFile, "records.amos.test", s.port(), testTimeout)
	if got := c.Resolver().Source(); got != SourceDnsproxyd {
		t.Fatalf("source %q, want %q", got, SourceDnsproxyd)
	}
	recs, ids := makeRecords(t, 3)
	res := mustUpload(t, c, recs)
	if !slices.Equal(res.Acked, ids) {
		t.Fatalf("%+v", res)
	}
	if got := f.commands(); !slices.Equal(got, []string{wantCommand}) {
		t.Errorf("the proxy got %q, want [%q]", got, wantCommand)
	}
	if got := s.serverNames(); len(got) != 1 || got[0] != "records.amos.test" {
		t.Errorf("TLS server names %q, want [records.amos.test]", got)
	}
}

// TestDnsproxydIPv6: IPv6 entries are decoded and dialled; addresses are dialled in the
// proxy's order, the next one after a failure.
func TestDnsproxydIPv6(t *testing.T) {
	t.Run("only IPv6", func(t *testing.T) {
		s := startSNIServer(t, "tcp6", "[::1]:0")
		f := startNetd(t, map[string][]netip.Addr{"records.amos.test": {loop6}}, nil)
		c := proxyClient(t, f, s.pki.CAFile, "records.amos.test", s.port(), testTimeout)
		recs, ids := makeRecords(t, 1)
		if res := mustUpload(t, c, recs); !slices.Equal(res.Acked, ids) {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("IPv6 refused, then IPv4", func(t *testing.T) {
		s := startSNIServer(t, "tcp", "127.0.0.1:0") // nothing on [::1] at this port
		f := startNetd(t, map[string][]netip.Addr{"records.amos.test": {loop6, loop4}}, nil)
		c := proxyClient(t, f, s.pki.CAFile, "records.amos.test", s.port(), testTimeout)
		recs, ids := makeRecords(t, 1)
		if res := mustUpload(t, c, recs); !slices.Equal(res.Acked, ids) {
			t.Fatalf("%+v", res)
		}
		addrs, src, err := c.Resolver().LookupHost(context.Background(), "records.amos.test")
		if err != nil || src != SourceDnsproxyd || !slices.Equal(addrs, []netip.Addr{loop6, loop4}) {
			t.Errorf("LookupHost: %v %q %v, want [::1 127.0.0.1] from dnsproxyd", addrs, src, err)
		}
	})
	t.Run("none connects", func(t *testing.T) {
		f := startNetd(t, map[string][]netip.Addr{"records.amos.test": {loop6, loop4}}, nil)
		r, err := newResolver(nil, testTimeout, filepath.Join(t.TempDir(), "absent"), f.path)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = r.DialContext(ctx, "tcp", "records.amos.test:1") // port 1: refused
		wantErr(t, err, ErrTransient)
		if !strings.Contains(err.Error(), "its 2 address(es) from dnsproxyd") {
			t.Errorf("error %v, want both addresses tried", err)
		}
		if _, err := r.DialContext(ctx, "tcp6", "records.amos.test:1"); err == nil || !strings.Contains(err.Error(), "its 1 address(es)") {
			t.Errorf("tcp6: error %v, want the IPv6 address only", err)
		}
	})
}

// TestDnsproxydLiteralIP: an address in server_url is never looked up.
func TestDnsproxydLiteralIP(t *testing.T) {
	s := startSNIServer(t, "tcp", "127.0.0.1:0")
	f := startNetd(t, nil, nil)
	c := proxyClient(t, f, s.pki.CAFile, "127.0.0.1", s.port(), testTimeout)
	recs, ids := makeRecords(t, 1)
	if res := mustUpload(t, c, recs); !slices.Equal(res.Acked, ids) {
		t.Fatalf("%+v", res)
	}
	if got := f.commands(); len(got) != 0 {
		t.Errorf("the proxy was asked %q", got)
	}
}

// TestDnsproxydNameNotFound: netd's EAI_NODATA fails the upload as transient, with an
// error that says which name, which socket, and why.
func TestDnsproxydNameNotFound(t *testing.T) {
	s := startSNIServer(t, "tcp", "127.0.0.1:0")
	f := startNetd(t, map[string][]netip.Addr{"records.amos.test": {loop4}}, nil)
	c := proxyClient(t, f, s.pki.CAFile, "nowhere.amos.test", s.port(), testTimeout)
	recs, _ := makeRecords(t, 1)
	res, err := upload(t, c, recs)
	wantErr(t, err, ErrTransient, ErrNameNotFound)
	for _, want := range []string{f.path, `"nowhere.amos.test"`, "EAI_NODATA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if res.Requests != 1 || len(res.Acked) != 0 {
		t.Errorf("%+v", res)
	}
}

// TestDnsproxydFaults: every way the proxy can fail ends the lookup with an error that
// says so, in bounded time.
func TestDnsproxydFaults(t *testing.T) {
	writeThenClose := func(b []byte) func(*fakeNetd, net.Conn, []string) bool {
		return func(_ *fakeNetd, conn net.Conn, _ []string) bool { conn.Write(b); return false }
	}
	for _, tc := range []struct {
		name    string
		respond func(*fakeNetd, net.Conn, []string) bool
		targets []error
		say     string
	}{
		{"closes mid-answer", writeThenClose(success(loop4)[:20]), []error{ErrResolverFailed, io.ErrUnexpectedEOF}, "entry 0"},
		{"closes before answering", writeThenClose(nil), []error{ErrResolverFailed, io.ErrUnexpectedEOF}, "reading the result code"},
		{"garbage", writeThenClose([]byte("HTTP/1.0 400 Bad Request\r\n\r\n")), []error{ErrResolverFailed}, "not three digits"},
		{"unknown code", writeThenClose([]byte("200\x00")), []error{ErrResolverFailed}, "result code 200"},
		{"command refused", writeThenClose([]byte("500 Command not recognized\x00")), []error{ErrResolverFailed}, `500 "Command not recognized"`},
		{"temporary failure", writeThenClose(answer(nil).failure(2)), []error{ErrResolverFailed}, "EAI_AGAIN"},
		{"netd timeout", writeThenClose(answer(nil).failure(255)), []error{ErrResolverFailed}, "NETD_RESOLV_TIMEOUT"},
		{"no entry", writeThenClose(success()), []error{ErrNameNotFound}, "no address"},
		{"EAI_NONAME", writeThenClose(answer(nil).failure(eaiNoname)), []error{ErrNameNotFound}, "EAI_NONAME"},
		{"address of the wrong size", writeThenClose(answer(nil).code("222\x00").be32(1).be32(0).be32(afInet6).be32(1).be32(6).be32(16)),
			[]error{ErrResolverFailed}, "address length 16, want 28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startNetd(t, nil, tc.respond)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := dnsproxydLookup(ctx, f.path, "records.amos.test")
			wantErr(t, err, tc.targets...)
			if !strings.Contains(err.Error(), tc.say) || !strings.Contains(err.Error(), f.path) || !strings.Contains(err.Error(), "records.amos.test") {
				t.Errorf("error %q: want it to say %q, the socket and the host", err, tc.say)
			}
		})
	}
}

// TestDnsproxydStall: a proxy that reads the query and never answers holds the lookup
// only until the context's deadline, on its own and in an Upload.
func TestDnsproxydStall(t *testing.T) {
	f := startNetd(t, nil, func(f *fakeNetd, _ net.Conn, _ []string) bool { <-f.stop; return false })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := dnsproxydLookup(ctx, f.path, "records.amos.test")
	wantErr(t, err, ErrResolverFailed, context.DeadlineExceeded)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the lookup took %s after a deadline of 300ms", d)
	}

	// The Client's own timeout bounds the lookup of an Upload too (net/http reports the
	// request's deadline rather than the dial's error).
	c := proxyClient(t, f, newPKI(t).CAFile, "records.amos.test", "443", 500*time.Millisecond)
	recs, _ := makeRecords(t, 1)
	start = time.Now()
	_, err = upload(t, c, recs)
	wantErr(t, err, ErrTransient, context.DeadlineExceeded)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the upload took %s with a timeout of 500ms", d)
	}
}

// TestDnsproxydUnreachable: a dnsproxyd path that exists but takes no connection selects
// dnsproxyd all the same, and the error says that the socket cannot be connected to.
func TestDnsproxydUnreachable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "stale")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	paths := []string{file, stale}
	if os.Geteuid() != 0 { // root connects whatever the mode
		f := startNetd(t, nil, nil)
		if err := os.Chmod(f.path, 0); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, f.path)
	}
	for _, path := range paths {
		r, err := newResolver([]string{"192.0.2.53"}, testTimeout, filepath.Join(dir, "absent"), path)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Source(); got != SourceDnsproxyd {
			t.Errorf("%s: source %q, want dnsproxyd", path, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _, err = r.LookupHost(ctx, "records.amos.test")
		cancel()
		wantErr(t, err, ErrResolverUnreachable)
		if !strings.Contains(err.Error(), path+": looking up \"records.amos.test\": the socket exists but cannot be connected to") {
			t.Errorf("error %q", err)
		}
	}
}

// TestDnsproxydBadHost: names that cannot travel in a command are refused before asking.
func TestDnsproxydBadHost(t *testing.T) {
	f := startNetd(t, nil, nil)
	for _, host := range []string{"", "a b", "a^b", `a"b`, "a'b", `a\b`, "a\x00b", "a\nb", "é.test", strings.Repeat("a", 255)} {
		_, err := dnsproxydLookup(context.Background(), f.path, host)
		wantErr(t, err, ErrNameNotFound)
	}
	if got := f.commands(); len(got) != 0 {
		t.Errorf("the proxy was asked %q", got)
	}
}

// TestResolverPrecedence: dnsproxyd if it exists; else dns_servers if there is no
// resolv.conf; else the system's resolver.
func TestResolverPrecedence(t *testing.T) {
	netd := startNetd(t, map[string][]netip.Addr{"records.test": {loop4}}, nil)
	dns := startDNS(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent")
	for _, tc := range []struct {
		proxy, resolvConf, servers bool
		want                       string
	}{
		{true, true, true, SourceDnsproxyd},
		{true, true, false, SourceDnsproxyd},
		{true, false, true, SourceDnsproxyd},
		{true, false, false, SourceDnsproxyd},
		{false, true, true, SourceSystem},
		{false, true, false, SourceSystem},
		{false, false, true, SourceDNSServers},
		{false, false, false, SourceSystem},
	} {
		name := "proxy=" + strconv.FormatBool(tc.proxy) + ",resolv.conf=" + strconv.FormatBool(tc.resolvConf) + ",dns_servers=" + strconv.FormatBool(tc.servers)
		t.Run(name, func(t *testing.T) {
			proxy, rc, servers := absent, absent, []string(nil)
			if tc.proxy {
				proxy = netd.path
			}
			if tc.resolvConf {
				rc = conf
			}
			if tc.servers {
				servers = []string{dns.addr()}
			}
			r, err := newResolver(servers, testTimeout, rc, proxy)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Source(); got != tc.want {
				t.Fatalf("source %q, want %q", got, tc.want)
			}
			if !strings.HasPrefix(r.String(), tc.want) {
				t.Errorf("String() %q does not start with %q", r, tc.want)
			}
			if tc.want == SourceSystem {
				return // the host's own resolver: not asked in a test
			}
			cmds, queries := len(netd.commands()), dns.queries.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			addrs, src, err := r.LookupHost(ctx, "records.test")
			if err != nil || src != tc.want || !slices.Equal(addrs, []netip.Addr{loop4}) {
				t.Fatalf("LookupHost: %v %q %v", addrs, src, err)
			}
			askedProxy, askedServers := len(netd.commands()) > cmds, dns.queries.Load() > queries
			if askedProxy != (tc.want == SourceDnsproxyd) || askedServers != (tc.want == SourceDNSServers) {
				t.Errorf("asked the proxy %v, the DNS servers %v", askedProxy, askedServers)
			}
		})
	}
}

// TestDnsproxydAnswer decodes answers byte by byte.
func TestDnsproxydAnswer(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1").WithZone("3")
	v6 := netip.MustParseAddr("2001:db8::7")
	v4 := netip.MustParseAddr("192.0.2.7")
	entry4 := func(a answer) answer { return a.be32(1).be32(0).be32(afInet).be32(1).be32(6).be32(16) }
	var many []netip.Addr
	for i := range maxDnsproxydEntries + 1 {
		many = append(many, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want []netip.Addr
		err  error
		say  string
	}{
		{name: "IPv4", in: success(v4), want: []netip.Addr{v4}},
		{name: "IPv6 then IPv4", in: success(v6, v4), want: []netip.Addr{v6, v4}},
		{name: "link-local keeps its scope", in: success(ll), want: []netip.Addr{ll}},
		{name: "duplicates once", in: success(v4, v6, v4), want: []netip.Addr{v4, v6}},
		{name: "canonical name", in: answer(nil).code("222\x00").entry(v4, "records.amos.test").be32(0), want: []netip.Addr{v4}},
		{name: "64 entries", in: success(many[:maxDnsproxydEntries]...), want: many[:maxDnsproxydEntries]},
		{name: "65 entries", in: success(many...), err: ErrResolverFailed, say: "more than 64 entries"},
		{name: "empty", in: nil, err: ErrResolverFailed, say: "reading the result code"},
		{name: "code without NUL", in: []byte("2220"), err: ErrResolverFailed, say: "not NUL-terminated"},
		{name: "continuation 2", in: answer(nil).code("222\x00").be32(2), err: ErrResolverFailed, say: "continuation 2"},
		{name: "negative continuation", in: answer(nil).code("222\x00").be32(-1), err: ErrResolverFailed, say: "continuation -1"},
		{name: "family AF_UNIX", in: answer(nil).code("222\x00").be32(1).be32(0).be32(1).be32(1).be32(0).be32(110), err: ErrResolverFailed, say: "address family 1"},
		{name: "addrlen too large", in: entry4(answer(nil).code("222\x00"))[:24].be32(1 << 30), err: ErrResolverFailed, say: "address length 1073741824"},
		{name: "sockaddr family differs", in: append(entry4(answer(nil).code("222\x00")), sockaddr(v6)[:16]...), err: ErrResolverFailed, say: "sockaddr family 10"},
		{name: "unspecified address", in: success(netip.IPv4Unspecified()), err: ErrResolverFailed, say: "unspecified address"},
		{name: "canonical name too long", in: append(entry4(answer(nil).code("222\x00")), sockaddr(v4)...).be32(maxCanonName + 1), err: ErrResolverFailed, say: "canonical name of 257 bytes"},
		{name: "canonical name negative", in: append(entry4(answer(nil).code("222\x00")), sockaddr(v4)...).be32(-5), err: ErrResolverFailed, say: "canonical name of -5 bytes"},
		{name: "canonical name without NUL", in: append(append(entry4(answer(nil).code("222\x00")), sockaddr(v4)...).be32(3), "abc"...).be32(0), err: ErrResolverFailed, say: "not NUL-terminated"},
		{name: "no terminator", in: success(v4)[:len(success(v4))-4], err: ErrResolverFailed, say: "cut short after 1 entries"},
		{name: "401 EAI_NODATA", in: answer(nil).failure(eaiNodata), err: ErrNameNotFound, say: "EAI_NODATA"},
		{name: "401 unknown code", in: answer(nil).failure(99), err: ErrResolverFailed, say: "EAI 99"},
		{name: "401 length 0", in: answer(nil).code("401\x00").be32(0), err: ErrResolverFailed, say: "error code of 0 bytes"},
		{name: "401 cut short", in: answer(nil).code("401\x00").be32(4).be32(7)[:10], err: ErrResolverFailed, say: "reading the error code"},
		{name: "501 text", in: []byte("501 GetAddrInfoCmd::runCommand: invalid number of arguments: 7\x00"), err: ErrResolverFailed, say: "501 \"GetAddrInfoCmd"},
		{name: "text without end", in: []byte("500 " + strings.Repeat("x", 1000)), err: ErrResolverFailed, say: "longer than 256 bytes"},
		{name: "text with control bytes", in: []byte("500 a\x1b[2Jb\x00"), err: ErrResolverFailed, say: `"a\x1b[2Jb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const trailer = "next" // after a complete answer
			in := slices.Clone(tc.in)
			if tc.err == nil {
				in = append(in, trailer...)
			}
			r := bufio.NewReader(bytes.NewReader(in))
			got, err := readDnsproxydAnswer(r)
			if tc.err != nil {
				wantErr(t, err, tc.err)
				if !strings.Contains(err.Error(), tc.say) {
					t.Errorf("error %q does not say %q", err, tc.say)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// The answer is read to its end and not a byte further.
			if rest, _ := io.ReadAll(r); string(rest) != trailer {
				t.Errorf("left %q unread, want %q", rest, trailer)
			}
		})
	}
}

// FuzzDnsproxydAnswer: the decoder never panics, never returns more than 64 addresses or
// a duplicate, and every error matches ErrNameNotFound or ErrResolverFailed.
func FuzzDnsproxydAnswer(f *testing.F) {
	v4 := netip.MustParseAddr("192.0.2.7")
	v6 := netip.MustParseAddr("fe80::1").WithZone("2")
	for _, seed := range [][]byte{
		success(v4), success(v6, v4), success(),
		answer(nil).code("222\x00").entry(v4, "records.amos.test").be32(0),
		answer(nil).failure(eaiNodata), answer(nil).failure(2),
		[]byte("500 Command not recognized\x00"), success(v4)[:17], nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		addrs, err := readDnsproxydAnswer(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			if addrs != nil || !errors.Is(err, ErrNameNotFound) && !errors.Is(err, ErrResolverFailed) {
				t.Fatalf("%v with %v", err, addrs)
			}
			return
		}
		if len(addrs) == 0 || len(addrs) > maxDnsproxydEntries {
			t.Fatalf("%d addresses", len(addrs))
		}
		for i, a := range addrs {
			if !a.IsValid() || a.IsUnspecified() || slices.Contains(addrs[:i], a) {
				t.Fatalf("address %d: %v in %v", i, a, addrs)
			}
		}
	})
}
