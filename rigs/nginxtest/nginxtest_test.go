package nginxtest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/internal/devpki"
)

// TestStart: nginx proxies to the upstream over TLS with the test's certificate, logs
// the request, keeps its files in its own directory, and is gone once the test ends.
func TestStart(t *testing.T) {
	Require(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "upstream "+r.Proto)
	}))
	defer up.Close()
	now := time.Now()
	pki, err := devpki.New(t.TempDir(), devpki.Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		CAName: "nginxtest CA", ServerName: "nginxtest", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	var addr, dir string
	t.Run("server", func(t *testing.T) {
		s := Start(t, Options{Upstream: up.Listener.Addr().String(), CertFile: pki.CertFile, KeyFile: pki.KeyFile,
			Server: []string{"gzip on;", "gzip_types application/json;", "gzip_min_length 0;"}})
		addr, dir = s.Addr, s.dir
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}, DisableCompression: true}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, enc := range []string{"", "gzip"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.Addr+"/", nil)
			if enc != "" {
				req.Header.Set("Accept-Encoding", enc)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != enc || enc == "" && string(body) != "upstream HTTP/1.1" {
				t.Fatalf("%d %q in %q, want 200 from the upstream over HTTP/1.1 in %q", resp.StatusCode, body, resp.Header.Get("Content-Encoding"), enc)
			}
		}
		c.CloseIdleConnections()
		// The log tells an answer in identity from a compressed one (transport's gzip case).
		if reqs := s.WaitRequests(t, 2); reqs[0].Encoding != "" || reqs[1].Encoding != "gzip" || reqs[0].Status != 200 {
			t.Errorf("access log %+v, want a 200 in identity then one in gzip", reqs)
		}
		for _, f := range []string{"nginx.pid", "error.log", "access.log", "nginx.conf"} {
			if _, err := os.Stat(filepath.Join(s.dir, f)); err != nil {
				t.Errorf("%s not in nginx's directory: %v", f, err)
			}
		}
	})
	if addr == "" {
		t.Skip("no server was started")
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("nginx still answers on %s after its test ended", addr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("nginx's directory %s still there after its test ended: %v", dir, err)
	}
}

// TestDocsQuoteSite: the configuration docs/operations.md ("Behind nginx") quotes is
// the one the tests run, for its placeholder addresses and files.
func TestDocsQuoteSite(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(data), "\n## Behind nginx\n")
	if !ok {
		t.Fatal(`docs/operations.md has no section "## Behind nginx"`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, block, ok := strings.Cut(sec, "```nginx\n")
	if !ok {
		t.Fatal("the section has no ```nginx block")
	}
	block, _, _ = strings.Cut(block, "```")
	if want := Site(DocOptions()); block != want {
		t.Errorf("docs/operations.md quotes\n%s\nthe rig's template (Site(DocOptions())) is\n%s", block, want)
	}
}
