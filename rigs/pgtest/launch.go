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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options configure Launch and Start.
type Options struct {
	// Durable keeps PostgreSQL's defaults: fsync, full-page writes and synchronous
	// commit on, as a payer runs it (the ingest benchmark, the fleet simulator). Otherwise
	// the server skips fsync, which the conformance and concurrency tests do not need.
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
	werr error         // the process's exit, once done is closed
	seq  atomic.Int64

	stopOnce sync.Once
	stopErr  error
}

// BinDir finds the directory holding initdb, postgres and pg_ctl: PATH first, then
// Debian's /usr/lib/postgresql/VERSION/bin (the newest).
func BinDir() (string, error) {
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

// Available returns nil when this machine has the server's binaries, else why not.
func Available() error {
	_, err := BinDir()
	return err
}

// Launch starts a PostgreSQL server in dir, created if absent: its cluster in dir/data
// (initialised on the first launch, started again on the next), its log in
// dir/server.log. It listens on a free port of 127.0.0.1 only, with trust
// authentication for the user amos (URL, CreateDatabase). As root, the server runs as
// the postgres user (nobody without one; PostgreSQL refuses root), which gets dir and
// must be able to reach it: Launch says which directory above it stops that user. The
// caller stops the server with Stop; it is killed if the launching process dies first.
func Launch(dir string, o Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	cred, err := unprivileged(dir)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "amos",
			"--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		initdb.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgtest: initdb in %s: %w\n%s", data, err, out)
		}
	}
	s := &Server{dir: dir}
	for attempt := 0; ; attempt++ { // another process may take the free port first
		err := s.start(bin, cred, o)
		if err == nil {
			return s, nil
		}
		if attempt == 4 {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
}

// unprivileged returns the credential the server runs with and gives it dir: the
// postgres user when the package created one, else nobody; nil when not root. That
// user must reach dir: every directory above it must let it through.
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
	if err := reachable(dir, u.Username, uid, gid); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reachable checks that uid, in group gid and no other (the server runs without
// supplementary groups), may pass through every directory above dir.
func reachable(dir, name string, uid, gid int) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		bit := os.FileMode(0o001)
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			switch {
			case int(sys.Uid) == uid:
				bit = 0o100
			case int(sys.Gid) == gid:
				bit = 0o010
			}
		}
		if st.Mode().Perm()&bit == 0 {
			return fmt.Errorf("the server runs as %s (PostgreSQL refuses root), which cannot reach %s: %s is %s (chmod o+x %s, or choose a directory it can reach)",
				name, dir, p, st.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// start runs postgres in the foreground on a free port and waits until it answers.
func (s *Server) start(bin string, cred *syscall.Credential, o Options) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// The unix socket goes beside the cluster when its path fits (107 bytes); the URLs
	// are TCP ones anyway.
	sockets := s.dir
	if len(s.dir)+len("/.s.PGSQL.65535.lock") > 107 {
		sockets = ""
	}
	args := []string{"-D", filepath.Join(s.dir, "data"), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + sockets,
		"-c", "max_connections=200", "-c", "shared_buffers=128MB", "-c", "log_min_messages=warning"}
	if !o.Durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	for _, kv := range o.Settings {
		args = append(args, "-c", kv)
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	if cred != nil { // the server's own, for pg_ctl -l as its user
		if err := log.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { s.werr = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			s.cmd, s.done = cmd, done
			return nil
		}
		cancel()
		select {
		case <-done:
			return fmt.Errorf("postgres on port %d exited (%v): %s", s.port, s.werr, lastLines(s.Log(), 10))
		case <-time.After(100 * time.Millisecond): // polling the port: the server signals readiness no other way
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return fmt.Errorf("postgres on port %d did not answer within 60 s: %w", s.port, err)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Stop asks the server for a fast shutdown by its PID (SIGINT: open transactions are
// rolled back, the cluster is left consistent) and kills its process group if it
// lingers 20 s. It returns how the server exited; calling it again returns the same.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.cmd == nil {
			return
		}
		p := s.cmd.Process
		p.Signal(syscall.SIGINT)
		select {
		case <-s.done:
			if s.werr != nil {
				s.stopErr = fmt.Errorf("pgtest: postgres on port %d: %w: %s", s.port, s.werr, lastLines(s.Log(), 5))
			}
		case <-time.After(20 * time.Second):
			syscall.Kill(-p.Pid, syscall.SIGKILL)
			<-s.done
			s.stopErr = fmt.Errorf("pgtest: postgres on port %d did not shut down within 20 s: killed", s.port)
		}
	})
	return s.stopErr
}

// URL returns the URL of database db on the server, as the user amos (no password:
// trust authentication on 127.0.0.1).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://amos@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir returns the server's directory (its cluster in Dir/data, its log in Dir/server.log).
func (s *Server) Dir() string { return s.dir }

// Log returns what the server has logged.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

var dbName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates database name (lower-case letters, digits and _) unless the
// server has it already, and returns its URL.
func (s *Server) CreateDatabase(name string) (string, error) {
	if !dbName.MatchString(name) {
		return "", fmt.Errorf("pgtest: database name %q: want lower-case letters, digits and _", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	var pgErr *pgconn.PgError
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // duplicate_database
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.URL(name), nil
}
