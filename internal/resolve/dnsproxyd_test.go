package resolve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/rigs/fakedns"
	"amos.example/amosd/rigs/testenv"
)

const testTimeout = 2 * time.Second

var (
	loop4 = netip.MustParseAddr("127.0.0.1")
	loop6 = netip.MustParseAddr("::1")
)

// TestDnsproxydFaults: every way the proxy can fail ends the lookup with an error that
// says so, in bounded time.
func TestDnsproxydFaults(t *testing.T) {
	writeThenClose := func(b []byte) func(*fakedns.Netd, net.Conn, []string) bool {
		return func(_ *fakedns.Netd, conn net.Conn, _ []string) bool { conn.Write(b); return false }
	}
	for _, tc := range []struct {
		name    string
		respond func(*fakedns.Netd, net.Conn, []string) bool
		targets []error
		say     string
	}{
		{"closes mid-answer", writeThenClose(fakedns.Success(loop4)[:20]), []error{ErrFailed, io.ErrUnexpectedEOF}, "entry 0"},
		{"closes before answering", writeThenClose(nil), []error{ErrFailed, io.ErrUnexpectedEOF}, "reading the result code"},
		{"garbage", writeThenClose([]byte("HTTP/1.0 400 Bad Request\r\n\r\n")), []error{ErrFailed}, "not three digits"},
		{"unknown code", writeThenClose([]byte("200\x00")), []error{ErrFailed}, "result code 200"},
		{"command refused", writeThenClose([]byte("500 Command not recognized\x00")), []error{ErrFailed}, `500 "Command not recognized"`},
		{"temporary failure", writeThenClose(fakedns.Answer(nil).Failure(2)), []error{ErrFailed}, "EAI_AGAIN"},
		{"netd timeout", writeThenClose(fakedns.Answer(nil).Failure(255)), []error{ErrFailed}, "NETD_RESOLV_TIMEOUT"},
		{"no entry", writeThenClose(fakedns.Success()), []error{ErrNameNotFound}, "no address"},
		{"EAI_NONAME", writeThenClose(fakedns.Answer(nil).Failure(fakedns.EaiNoname)), []error{ErrNameNotFound}, "EAI_NONAME"},
		{"address of the wrong size", writeThenClose(fakedns.Answer(nil).Code("222\x00").BE32(1).BE32(0).BE32(fakedns.AfInet6).BE32(1).BE32(6).BE32(16)),
			[]error{ErrFailed}, "address length 16, want 28"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fakedns.StartNetd(t, nil, tc.respond)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := dnsproxydLookup(ctx, f.Path, "records.amos.test")
			testenv.WantErr(t, err, tc.targets...)
			if !strings.Contains(err.Error(), tc.say) || !strings.Contains(err.Error(), f.Path) || !strings.Contains(err.Error(), "records.amos.test") {
				t.Errorf("error %q: want it to say %q, the socket and the host", err, tc.say)
			}
		})
	}
}

// TestDnsproxydStall: a proxy that reads the query and never answers holds the lookup
// only until the context's deadline.
func TestDnsproxydStall(t *testing.T) {
	f := fakedns.StartNetd(t, nil, func(f *fakedns.Netd, _ net.Conn, _ []string) bool { <-f.Stop; return false })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := dnsproxydLookup(ctx, f.Path, "records.amos.test")
	testenv.WantErr(t, err, ErrFailed, context.DeadlineExceeded)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the lookup took %s after a deadline of 300ms", d)
	}
}

// TestDnsproxydNoneConnects: addresses are dialled in the proxy's order; when none
// connects, the error says how many were tried.
func TestDnsproxydNoneConnects(t *testing.T) {
	f := fakedns.StartNetd(t, map[string][]netip.Addr{"records.amos.test": {loop6, loop4}}, nil)
	r, err := NewAt(nil, testTimeout, filepath.Join(t.TempDir(), "absent"), f.Path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = r.DialContext(ctx, "tcp", "records.amos.test:1") // port 1: refused
	if err == nil {
		t.Fatal("dialled nothing, and no error")
	}
	if !strings.Contains(err.Error(), "its 2 address(es) from dnsproxyd") {
		t.Errorf("error %v, want both addresses tried", err)
	}
	if _, err := r.DialContext(ctx, "tcp6", "records.amos.test:1"); err == nil || !strings.Contains(err.Error(), "its 1 address(es)") {
		t.Errorf("tcp6: error %v, want the IPv6 address only", err)
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
		f := fakedns.StartNetd(t, nil, nil)
		if err := os.Chmod(f.Path, 0); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, f.Path)
	}
	for _, path := range paths {
		r, err := NewAt([]string{"192.0.2.53"}, testTimeout, filepath.Join(dir, "absent"), path)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Source(); got != SourceDnsproxyd {
			t.Errorf("%s: source %q, want dnsproxyd", path, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _, err = r.LookupHost(ctx, "records.amos.test")
		cancel()
		testenv.WantErr(t, err, ErrUnreachable)
		if !strings.Contains(err.Error(), path+": looking up \"records.amos.test\": the socket exists but cannot be connected to") {
			t.Errorf("error %q", err)
		}
	}
}

// TestDnsproxydBadHost: names that cannot travel in a command are refused before asking.
func TestDnsproxydBadHost(t *testing.T) {
	f := fakedns.StartNetd(t, nil, nil)
	for _, host := range []string{"", "a b", "a^b", `a"b`, "a'b", `a\b`, "a\x00b", "a\nb", "é.test", strings.Repeat("a", 255)} {
		_, err := dnsproxydLookup(context.Background(), f.Path, host)
		testenv.WantErr(t, err, ErrNameNotFound)
	}
	if got := f.Commands(); len(got) != 0 {
		t.Errorf("the proxy was asked %q", got)
	}
}

// TestResolverPrecedence: dnsproxyd if it exists; else dns_servers if there is no
// resolv.conf; else the system's resolver.
func TestResolverPrecedence(t *testing.T) {
	netd := fakedns.StartNetd(t, map[string][]netip.Addr{"records.test": {loop4}}, nil)
	dns := fakedns.StartDNS(t)
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
				proxy = netd.Path
			}
			if tc.resolvConf {
				rc = conf
			}
			if tc.servers {
				servers = []string{dns.Addr()}
			}
			r, err := NewAt(servers, testTimeout, rc, proxy)
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
			cmds, queries := len(netd.Commands()), dns.Queries.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			addrs, src, err := r.LookupHost(ctx, "records.test")
			if err != nil || src != tc.want || !slices.Equal(addrs, []netip.Addr{loop4}) {
				t.Fatalf("LookupHost: %v %q %v", addrs, src, err)
			}
			askedProxy, askedServers := len(netd.Commands()) > cmds, dns.Queries.Load() > queries
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
	entry4 := func(a fakedns.Answer) fakedns.Answer {
		return a.BE32(1).BE32(0).BE32(fakedns.AfInet).BE32(1).BE32(6).BE32(16)
	}
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
		{name: "IPv4", in: fakedns.Success(v4), want: []netip.Addr{v4}},
		{name: "IPv6 then IPv4", in: fakedns.Success(v6, v4), want: []netip.Addr{v6, v4}},
		{name: "link-local keeps its scope", in: fakedns.Success(ll), want: []netip.Addr{ll}},
		{name: "duplicates once", in: fakedns.Success(v4, v6, v4), want: []netip.Addr{v4, v6}},
		{name: "canonical name", in: fakedns.Answer(nil).Code("222\x00").Entry(v4, "records.amos.test").BE32(0), want: []netip.Addr{v4}},
		{name: "64 entries", in: fakedns.Success(many[:maxDnsproxydEntries]...), want: many[:maxDnsproxydEntries]},
		{name: "65 entries", in: fakedns.Success(many...), err: ErrFailed, say: "more than 64 entries"},
		{name: "empty", in: nil, err: ErrFailed, say: "reading the result code"},
		{name: "code without NUL", in: []byte("2220"), err: ErrFailed, say: "not NUL-terminated"},
		{name: "continuation 2", in: fakedns.Answer(nil).Code("222\x00").BE32(2), err: ErrFailed, say: "continuation 2"},
		{name: "negative continuation", in: fakedns.Answer(nil).Code("222\x00").BE32(-1), err: ErrFailed, say: "continuation -1"},
		{name: "family AF_UNIX", in: fakedns.Answer(nil).Code("222\x00").BE32(1).BE32(0).BE32(1).BE32(1).BE32(0).BE32(110), err: ErrFailed, say: "address family 1"},
		{name: "addrlen too large", in: entry4(fakedns.Answer(nil).Code("222\x00"))[:24].BE32(1 << 30), err: ErrFailed, say: "address length 1073741824"},
		{name: "sockaddr family differs", in: append(entry4(fakedns.Answer(nil).Code("222\x00")), fakedns.Sockaddr(v6)[:16]...), err: ErrFailed, say: "sockaddr family 10"},
		{name: "unspecified address", in: fakedns.Success(netip.IPv4Unspecified()), err: ErrFailed, say: "unspecified address"},
		{name: "canonical name too long", in: append(entry4(fakedns.Answer(nil).Code("222\x00")), fakedns.Sockaddr(v4)...).BE32(maxCanonName + 1), err: ErrFailed, say: "canonical name of 257 bytes"},
		{name: "canonical name negative", in: append(entry4(fakedns.Answer(nil).Code("222\x00")), fakedns.Sockaddr(v4)...).BE32(-5), err: ErrFailed, say: "canonical name of -5 bytes"},
		{name: "canonical name without NUL", in: append(append(entry4(fakedns.Answer(nil).Code("222\x00")), fakedns.Sockaddr(v4)...).BE32(3), "abc"...).BE32(0), err: ErrFailed, say: "not NUL-terminated"},
		{name: "no terminator", in: fakedns.Success(v4)[:len(fakedns.Success(v4))-4], err: ErrFailed, say: "cut short after 1 entries"},
		{name: "401 EAI_NODATA", in: fakedns.Answer(nil).Failure(fakedns.EaiNodata), err: ErrNameNotFound, say: "EAI_NODATA"},
		{name: "401 unknown code", in: fakedns.Answer(nil).Failure(99), err: ErrFailed, say: "EAI 99"},
		{name: "401 length 0", in: fakedns.Answer(nil).Code("401\x00").BE32(0), err: ErrFailed, say: "error code of 0 bytes"},
		{name: "401 cut short", in: fakedns.Answer(nil).Code("401\x00").BE32(4).BE32(7)[:10], err: ErrFailed, say: "reading the error code"},
		{name: "501 text", in: []byte("501 GetAddrInfoCmd::runCommand: invalid number of arguments: 7\x00"), err: ErrFailed, say: "501 \"GetAddrInfoCmd"},
		{name: "text without end", in: []byte("500 " + strings.Repeat("x", 1000)), err: ErrFailed, say: "longer than 256 bytes"},
		{name: "text with control bytes", in: []byte("500 a\x1b[2Jb\x00"), err: ErrFailed, say: `"a\x1b[2Jb"`},
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
				testenv.WantErr(t, err, tc.err)
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
			// The fakedns.Answer is read to its end and not a byte further.
			if rest, _ := io.ReadAll(r); string(rest) != trailer {
				t.Errorf("left %q unread, want %q", rest, trailer)
			}
		})
	}
}

// FuzzDnsproxydAnswer: the decoder never panics, never returns more than 64 addresses or
// a duplicate, and every error matches ErrNameNotFound or ErrFailed.
func FuzzDnsproxydAnswer(f *testing.F) {
	v4 := netip.MustParseAddr("192.0.2.7")
	v6 := netip.MustParseAddr("fe80::1").WithZone("2")
	for _, seed := range [][]byte{
		fakedns.Success(v4), fakedns.Success(v6, v4), fakedns.Success(),
		fakedns.Answer(nil).Code("222\x00").Entry(v4, "records.amos.test").BE32(0),
		fakedns.Answer(nil).Failure(fakedns.EaiNodata), fakedns.Answer(nil).Failure(2),
		[]byte("500 Command not recognized\x00"), fakedns.Success(v4)[:17], nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		addrs, err := readDnsproxydAnswer(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			if addrs != nil || !errors.Is(err, ErrNameNotFound) && !errors.Is(err, ErrFailed) {
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
