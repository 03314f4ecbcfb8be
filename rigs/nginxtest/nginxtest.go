// Package nginxtest starts Debian's nginx as a TLS reverse proxy in a directory of its own, on a free loopback port, in front of a test's upstream, and stops it by its PID.
package nginxtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/rigs/testenv"
)

// RequireEnv names the variable that makes a missing nginx a failure, not a skip:
// .ci/run sets it, having installed the package.
const RequireEnv = "AMOS_REQUIRE_NGINX"

// Options describe the proxy: the recommended configuration of docs/operations.md
// ("Behind nginx"), with a test's variations.
type Options struct {
	Upstream string // host:port of the collector, plain HTTP
	Listen   string // host:port nginx listens on (Start fills it in)
	CertFile string // PEM server certificate (chain) nginx presents
	KeyFile  string // its key
	HTTP2    bool   // offer HTTP/2 by ALPN as well (nginx 1.22: "listen ... ssl http2")
	// KeepAlive and MaxBody replace the recommended keepalive_timeout (120s, the
	// collector's idle timeout) and client_max_body_size (64k, the largest batch).
	KeepAlive, MaxBody string
	// Defaults leaves nginx's TLS defaults (session tickets on, no shared session cache)
	// instead of the recommended ones: for the wire-budget comparison.
	Defaults bool
	// Server and Location are extra directives (each ending in ';') added at the end of
	// the server block and of its location.
	Server, Location []string
}

// Site returns the http-level part of the configuration: the upstream and the server
// block. docs/operations.md quotes it for a placeholder Options (DocOptions).
func Site(o Options) string {
	var b strings.Builder
	w := func(indent int, s string) { b.WriteString(strings.Repeat("    ", indent) + s + "\n") }
	w(0, "upstream amos_collector {")
	w(1, "server "+o.Upstream+";")
	w(1, "keepalive 16;")
	w(0, "}")
	w(0, "server {")
	if o.HTTP2 {
		w(1, "listen "+o.Listen+" ssl http2;")
	} else {
		w(1, "listen "+o.Listen+" ssl;")
	}
	w(1, "ssl_certificate "+o.CertFile+";")
	w(1, "ssl_certificate_key "+o.KeyFile+";")
	w(1, "ssl_protocols TLSv1.2 TLSv1.3;")
	if !o.Defaults {
		w(1, "server_tokens off;")
		w(1, "ssl_session_tickets off;")
		w(1, "ssl_session_cache shared:amos:10m;")
		w(1, "ssl_session_timeout 25h;")
	}
	w(1, "client_max_body_size "+or(o.MaxBody, "64k")+";")
	w(1, "client_body_buffer_size 64k;")
	w(1, "client_header_timeout 10s;")
	w(1, "client_body_timeout 30s;")
	w(1, "keepalive_timeout "+or(o.KeepAlive, "120s")+";")
	for _, d := range o.Server {
		w(1, d)
	}
	w(1, "location / {")
	w(2, "proxy_pass http://amos_collector;")
	w(2, "proxy_http_version 1.1;")
	w(2, `proxy_set_header Connection "";`)
	w(2, "proxy_connect_timeout 5s;")
	w(2, "proxy_send_timeout 30s;")
	w(2, "proxy_read_timeout 120s;")
	for _, d := range o.Location {
		w(2, d)
	}
	w(1, "}")
	w(0, "}")
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// DocOptions returns the placeholder Options of the configuration docs/operations.md
// quotes.
func DocOptions() Options {
	return Options{Upstream: "127.0.0.1:8443", Listen: "443", CertFile: "/etc/amos/server.pem", KeyFile: "/etc/amos/server.key"}
}

// conf returns the whole nginx.conf for a server in dir: everything nginx writes (pid,
// logs, temporary files) stays in dir.
func conf(dir string, o Options) string {
	var b strings.Builder
	if os.Getuid() == 0 {
		// As root the master would hand the workers to nobody, who cannot reach the test's
		// private directory; a test rig on loopback may keep them root.
		b.WriteString("user root root;\n")
	}
	fmt.Fprintf(&b, "worker_processes 1;\ndaemon off;\npid %s;\nerror_log %s info;\n",
		filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"))
	b.WriteString("events {\n    worker_connections 256;\n}\nhttp {\n")
	// One line a request: what a test checks (AccessLog).
	b.WriteString("log_format amos '$status $ssl_session_reused $ssl_protocol $server_protocol $connection_requests $sent_http_content_encoding';\n")
	fmt.Fprintf(&b, "access_log %s amos;\n", filepath.Join(dir, "access.log"))
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "%s_temp_path %s;\n", p, filepath.Join(dir, p+"_temp"))
	}
	b.WriteString(Site(o))
	b.WriteString("}\n")
	return b.String()
}

// Binary finds nginx: PATH first, then /usr/sbin (Debian's, off a user's PATH).
func Binary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("no nginx on PATH or in /usr/sbin (Debian package nginx; .ci/run installs it)")
}

// Require skips t when this machine cannot run nginx: without the binary (unless
// RequireEnv or CI is set, as .ci/run does: then it fails t), and under a user-mode
// emulator (the proxy runs on the payer's servers).
func Require(t testing.TB) {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("nginx tests are host tests: the proxy runs on the payer's servers")
	}
	if _, err := Binary(); err != nil {
		if os.Getenv(RequireEnv) != "" || os.Getenv("CI") != "" {
			t.Fatalf("nginxtest: %v", err)
		}
		t.Skipf("nginxtest: %v", err)
	}
}

// Server is one running nginx.
type Server struct {
	Addr string // host:port it listens on
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts nginx for t (Require's rules first) with o, listening on a free port of
// 127.0.0.1, and stops it, then removes its directory, when t ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	Require(t)
	bin, _ := Binary()
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ { // another process may take the free port first
		s, err := launch(bin, dir, o)
		if err == nil {
			t.Cleanup(func() {
				if err := s.stop(); err != nil {
					t.Error(err)
				}
			})
			return s
		}
		lastErr = err
	}
	t.Fatalf("nginxtest: %v", lastErr)
	return nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func launch(bin, dir string, o Options) (*Server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("a free port: %w", err)
	}
	o.Listen = addr
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf(dir, o)), 0o644); err != nil {
		return nil, err
	}
	elog := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir+"/", "-c", cf, "-e", elog)
	cmd.Dir = dir
	// Its own process group, so that stop reaches the workers too; killed if the test
	// process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &Server{Addr: addr, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("nginx exited at start (%v): %s", cmd.ProcessState, s.logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("nginx not listening on %s after 15 s: %s", addr, s.logs())
		}
		time.Sleep(20 * time.Millisecond) // polling for the port, bounded by the deadline
	}
}

// logs returns the tail of nginx's own output and error log, for a failure message.
func (s *Server) logs() string {
	var b strings.Builder
	for _, f := range []string{"stderr.log", "error.log"} {
		data, _ := os.ReadFile(filepath.Join(s.dir, f))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		b.Write(data)
	}
	return b.String()
}

// Request is one line of the access log.
type Request struct {
	Status   int    // the status nginx answered
	Reused   bool   // the TLS session was resumed ($ssl_session_reused)
	TLS      string // TLSv1.3 ...
	Protocol string // HTTP/1.1 ...
	OnConn   int    // the request's number on its connection ($connection_requests)
	Encoding string // the answer's Content-Encoding, "" for none
}

// AccessLog returns the requests nginx has logged so far. nginx writes a line when it
// has answered, so it holds every request whose answer the client has read.
func (s *Server) AccessLog() ([]Request, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, "access.log"))
	if err != nil {
		return nil, fmt.Errorf("nginxtest: %w", err)
	}
	var reqs []Request
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 {
			return nil, fmt.Errorf("nginxtest: access log line %q: want 6 fields", line)
		}
		status, err1 := strconv.Atoi(f[0])
		n, err2 := strconv.Atoi(f[4])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("nginxtest: access log line %q: %w", line, err)
		}
		enc := f[5]
		if enc == "-" { // nginx's mark for an empty variable
			enc = ""
		}
		reqs = append(reqs, Request{Status: status, Reused: f[1] == "r", TLS: f[2], Protocol: f[3], OnConn: n, Encoding: enc})
	}
	return reqs, nil
}

// WaitRequests returns the access log once it holds n requests, failing t if it holds
// more, or fewer after 10 s: nginx logs a request just after its answer has gone out,
// so a client that has read the answer may be a moment ahead of the log.
func (s *Server) WaitRequests(t testing.TB, n int) []Request {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs, err := s.AccessLog()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(reqs) > n:
			t.Fatalf("nginx logged %d requests, want %d", len(reqs), n)
		case len(reqs) == n:
			return reqs
		case time.Now().After(deadline):
			t.Fatalf("nginx logged %d requests after 10 s, want %d", len(reqs), n)
		}
		time.Sleep(10 * time.Millisecond) // polling the log, bounded by the deadline
	}
}

// ErrorLog returns nginx's error log so far.
func (s *Server) ErrorLog() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
	return string(data)
}

// stop asks nginx to finish gracefully (SIGQUIT to the master), then kills its process
// group after 10 s.
func (s *Server) stop() error {
	pid := s.cmd.Process.Pid
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return fmt.Errorf("nginxtest: SIGQUIT to %d: %w", pid, err)
	}
	select {
	case <-s.done:
		syscall.Kill(-pid, syscall.SIGKILL) // any worker left behind
		return nil
	case <-time.After(10 * time.Second):
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	<-s.done
	return fmt.Errorf("nginxtest: nginx (pid %s) did not quit within 10 s of SIGQUIT; killed", strconv.Itoa(pid))
}
