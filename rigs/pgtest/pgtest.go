// Package pgtest starts a real PostgreSQL server from Debian's postgresql package, in a
// directory of its own, as an unprivileged user, on a free loopback port, and stops it
// by its PID: for a test (Start, stopped when the test ends) or for a tool (Launch and
// Stop: the fleet simulator's and the demo's --ledger postgres).
package pgtest

import (
	"fmt"
	"os"
	"testing"

	"amos.example/amosd/rigs/testenv"
)

// RequireEnv names the variable that makes a missing server a failure, not a skip:
// .ci/run sets it, having installed the package.
const RequireEnv = "AMOS_REQUIRE_POSTGRES"

// Require skips t when this machine cannot launch a server: without the server
// binaries (unless RequireEnv or CI is set, as .ci/run does: then it fails t), and
// under a user-mode emulator (the collector runs on the payer's servers, not on a
// phone, and the server is a host binary).
func Require(t testing.TB) {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("PostgreSQL tests are host tests: the collector does not run on a phone")
	}
	if err := Available(); err != nil {
		if os.Getenv(RequireEnv) != "" || os.Getenv("CI") != "" {
			t.Fatalf("pgtest: %v", err)
		}
		t.Skipf("pgtest: %v", err)
	}
}

// Start starts a server for t (Require's rules first) in a temporary directory and
// stops it, then removes the directory, when t ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	Require(t)
	// t.TempDir is private to root; the server's user needs a directory it can reach.
	dir, err := os.MkdirTemp("", "amos-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := Launch(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	url, err := s.CreateDatabase(fmt.Sprintf("amos_%d", s.seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return url
}
