package transport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/internal/devpki"
	"amos.example/amosd/internal/resolve"
	"amos.example/amosd/rigs/fakedns"
	"amos.example/amosd/rigs/testenv"
)

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
func proxyClient(t testing.TB, f *fakedns.Netd, caFile, host, port string, timeout time.Duration) *Client {
	t.Helper()
	none := filepath.Join(t.TempDir(), "absent")
	c, err := newClient(Config{ServerURL: "https://" + net.JoinHostPort(host, port), CAFile: caFile, Timeout: timeout},
		options{resolvConf: none, dnsproxyd: f.Path})
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
	f := fakedns.StartNetd(t, map[string][]netip.Addr{"records.amos.test": {loop4}}, nil)
	c := proxyClient(t, f, s.pki.CAFile, "records.amos.test", s.port(), testTimeout)
	if got := c.Resolver().Source(); got != resolve.SourceDnsproxyd {
		t.Fatalf("source %q, want %q", got, resolve.SourceDnsproxyd)
	}
	recs, ids := makeRecords(t, 3)
	res := mustUpload(t, c, recs)
	if !slices.Equal(res.Acked, ids) {
		t.Fatalf("%+v", res)
	}
	if got := f.Commands(); !slices.Equal(got, []string{wantCommand}) {
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
		f := fakedns.StartNetd(t, map[string][]netip.Addr{"records.amos.test": {loop6}}, nil)
		c := proxyClient(t, f, s.pki.CAFile, "records.amos.test", s.port(), testTimeout)
		recs, ids := makeRecords(t, 1)
		if res := mustUpload(t, c, recs); !slices.Equal(res.Acked, ids) {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("IPv6 refused, then IPv4", func(t *testing.T) {
		s := startSNIServer(t, "tcp", "127.0.0.1:0") // nothing on [::1] at this port
		f := fakedns.StartNetd(t, map[string][]netip.Addr{"records.amos.test": {loop6, loop4}}, nil)
		c := proxyClient(t, f, s.pki.CAFile, "records.amos.test", s.port(), testTimeout)
		recs, ids := makeRecords(t, 1)
		if res := mustUpload(t, c, recs); !slices.Equal(res.Acked, ids) {
			t.Fatalf("%+v", res)
		}
		addrs, src, err := c.Resolver().LookupHost(context.Background(), "records.amos.test")
		if err != nil || src != resolve.SourceDnsproxyd || !slices.Equal(addrs, []netip.Addr{loop6, loop4}) {
			t.Errorf("LookupHost: %v %q %v, want [::1 127.0.0.1] from dnsproxyd", addrs, src, err)
		}
	})
}

// TestDnsproxydLiteralIP: an address in server_url is never looked up.
func TestDnsproxydLiteralIP(t *testing.T) {
	s := startSNIServer(t, "tcp", "127.0.0.1:0")
	f := fakedns.StartNetd(t, nil, nil)
	c := proxyClient(t, f, s.pki.CAFile, "127.0.0.1", s.port(), testTimeout)
	recs, ids := makeRecords(t, 1)
	if res := mustUpload(t, c, recs); !slices.Equal(res.Acked, ids) {
		t.Fatalf("%+v", res)
	}
	if got := f.Commands(); len(got) != 0 {
		t.Errorf("the proxy was asked %q", got)
	}
}

// TestDnsproxydNameNotFound: netd's EAI_NODATA fails the upload as transient, with an
// error that says which name, which socket, and why.
func TestDnsproxydNameNotFound(t *testing.T) {
	s := startSNIServer(t, "tcp", "127.0.0.1:0")
	f := fakedns.StartNetd(t, map[string][]netip.Addr{"records.amos.test": {loop4}}, nil)
	c := proxyClient(t, f, s.pki.CAFile, "nowhere.amos.test", s.port(), testTimeout)
	recs, _ := makeRecords(t, 1)
	res, err := upload(t, c, recs)
	testenv.WantErr(t, err, ErrTransient, ErrNameNotFound)
	for _, want := range []string{f.Path, `"nowhere.amos.test"`, "EAI_NODATA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if res.Requests != 1 || len(res.Acked) != 0 {
		t.Errorf("%+v", res)
	}
}

// TestDnsproxydStall: a proxy that reads the query and never answers holds an Upload
// only until the Client's timeout (net/http reports the request's deadline rather than
// the dial's error).
func TestDnsproxydStall(t *testing.T) {
	f := fakedns.StartNetd(t, nil, func(f *fakedns.Netd, _ net.Conn, _ []string) bool { <-f.Stop; return false })
	c := proxyClient(t, f, newPKI(t).CAFile, "records.amos.test", "443", 500*time.Millisecond)
	recs, _ := makeRecords(t, 1)
	start := time.Now()
	_, err := upload(t, c, recs)
	testenv.WantErr(t, err, ErrTransient, context.DeadlineExceeded)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the upload took %s with a timeout of 500ms", d)
	}
}
