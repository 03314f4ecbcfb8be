// Package pgtest starts a real PostgreSQL server for a test, from Debian's postgresql
// package, in a temporary directory, as an unprivileged user, on a free loopback port,
// and stops it by its PID when the test ends.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"amos.example/amosd/rigs/testenv"
)

// Options configure Start.
type Options struct {
	// Durable keeps PostgreSQL's defaults: fsync, full-page writes and synchronous
	// commit on, as a payer runs it (the ingest benchmark). Otherwise the server skips
	// fsync, which the conformance and concurrency tests do not need.
	Durable bool
	// Settings are extra "name=value" server settings.
	Settings []string
}

// Server is one running PostgreSQL server.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed once the server process has exited
	seq  atomic.Int64
}

// binDir finds the directory holding initdb and postgres: PATH first, then Debian's
// /usr/lib/postgresql/VERSION/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(real), "postgres")); err == nil {
				return filepath.Dir(real), nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no initdb and postgres on PATH or in /usr/lib/postgresql/*/bin (Debian package postgresql; .ci/run installs it)")
}

// RequireEnv names the variable that makes a missing server a failure, not a skip:
// .ci/run sets it, having installed the package.
const RequireEnv = "AMOS_REQUIRE_POSTGRES"

// Start starts a server for t and stops it when t ends. Without the server binaries it
// skips t, unless RequireEnv or CI is set (.ci/run), where it fails. It
// skips under a user-mode emulator: the collector runs on the payer's servers, not on
// a phone, and the server is a host binary.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("PostgreSQL tests are host tests: the collector does not run on a phone")
	}
	bin, err := binDir()
	if err != nil {
		if os.Getenv(RequireEnv) != "" || os.Getenv("CI") != "" {
			t.Fatalf("pgtest: %v", err)
		}
		t.Skipf("pgtest: %v", err)
	}
	// t.TempDir is private to root; the server's user needs its own directory.
	dir, err := os.MkdirTemp("", "amos-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cred, err := unprivileged(dir)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "amos",
		"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s := &Server{dir: dir}
	for attempt := 0; ; attempt++ {
		err := s.start(t, bin, cred, o)
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("pgtest: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// unprivileged returns the credential the server runs with and gives it dir: the
// postgres user when the package created one, else nobody; nil when not root.
func unprivileged(dir string) (*syscall.Credential, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, fmt.Errorf("no postgres or nobody user to run the server as (PostgreSQL refuses root): %w", err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// start runs postgres in the foreground on a free port and waits until it answers.
func (s *Server) start(t testing.TB, bin string, cred *syscall.Credential, o Options) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := []string{"-D", filepath.Join(s.dir, "data"), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + s.dir,
		"-c", "max_connections=200", "-c", "shared_buffers=128MB", "-c", "log_min_messages=warning"}
	if !o.Durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	for _, kv := range o.Settings {
		args = append(args, "-c", kv)
	}
	log, err := os.Create(filepath.Join(s.dir, "server.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.url("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			s.cmd, s.done = cmd, done
			return nil
		}
		cancel()
		select {
		case werr := <-exited:
			out, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("postgres on port %d exited (%v): %s", s.port, werr, lastLines(string(out), 10))
		case <-time.After(100 * time.Millisecond): // polling the port: the server signals readiness no other way
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres on port %d did not answer within 60 s: %v", s.port, err)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// stop asks the server for a fast shutdown by its PID and kills it if it lingers.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	p := s.cmd.Process
	p.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-p.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://amos@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Log returns what the server has logged.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("amos_%d", s.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.url(name)
}
