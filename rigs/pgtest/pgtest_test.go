package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStart: the server answers on its port, a new database is empty and writable, and
// the server is gone once the test ends.
func TestStart(t *testing.T) {
	var port int
	t.Run("server", func(t *testing.T) {
		s := Start(t, Options{})
		port = s.Port()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if _, err := conn.Exec(ctx, "CREATE TABLE y (a INT)"); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM y").Scan(&n); err != nil || n != 0 {
			t.Fatalf("count %d, %v", n, err)
		}
		var durable string
		if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&durable); err != nil || durable != "off" {
			t.Errorf("fsync %q, %v: want off for a test server", durable, err)
		}
	})
	if port == 0 {
		t.Skip("no server was started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, "postgres://amos@127.0.0.1:"+itoa(port)+"/postgres?sslmode=disable&connect_timeout=2"); err == nil {
		conn.Close(ctx)
		t.Errorf("the server still answers on port %d after its test ended", port)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestLaunch: the launcher a tool uses: CreateDatabase is idempotent and refuses a name
// that is not an identifier, Stop stops the server (the port no longer answers), and a
// second Launch in the same directory starts the same cluster again, its data kept.
func TestLaunch(t *testing.T) {
	Require(t)
	dir, err := os.MkdirTemp("", "amos-pglaunch-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o711); err != nil { // the server's user passes through it to its own pg
		t.Fatal(err)
	}
	s, err := Launch(filepath.Join(dir, "pg"), Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	url, err := s.CreateDatabase("fleet")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.CreateDatabase("fleet"); err != nil || again != url {
		t.Fatalf("second CreateDatabase: %q, %v; want %q", again, err, url)
	}
	if _, err := s.CreateDatabase("x; DROP DATABASE fleet"); err == nil {
		t.Fatal("a database name that is not an identifier was accepted")
	}
	exec := func(url, sql string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var v string
		if !strings.HasPrefix(sql, "SELECT") && !strings.HasPrefix(sql, "SHOW") {
			_, err = conn.Exec(ctx, sql)
		} else {
			err = conn.QueryRow(ctx, sql).Scan(&v)
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	if v := exec(url, "SHOW fsync"); v != "on" {
		t.Errorf("fsync %q: want on for a durable server", v)
	}
	exec(url, "CREATE TABLE kept AS SELECT 'yes'::text AS v")
	port := s.Port()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop again: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, "postgres://amos@127.0.0.1:"+itoa(port)+"/postgres?sslmode=disable&connect_timeout=2"); err == nil {
		conn.Close(ctx)
		t.Fatalf("the server still answers on port %d after Stop", port)
	}
	s2, err := Launch(filepath.Join(dir, "pg"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if v := exec(s2.URL("fleet"), "SELECT v FROM kept"); v != "yes" {
		t.Errorf("the relaunched cluster lost its table: %q", v)
	}
}

// TestReachable: the launcher names the directory that stops the server's user, before
// initdb fails on it.
func TestReachable(t *testing.T) {
	parent := t.TempDir()
	private := filepath.Join(parent, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	other := os.Getuid() + 4242
	err := reachable(filepath.Join(private, "pg"), "postgres", other, other)
	if err == nil || !strings.Contains(err.Error(), private+" is -rwx------ (chmod o+x "+private) {
		t.Fatalf("err = %v", err)
	}
	if err := os.Chmod(private, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := reachable(filepath.Join(private, "pg"), "postgres", other, other); err != nil && strings.Contains(err.Error(), private+" ") {
		t.Fatalf("o+x on %s is not enough: %v", private, err)
	}
}
