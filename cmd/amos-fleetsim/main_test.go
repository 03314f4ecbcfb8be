package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"amos.example/amosd/rigs/pgtest"
	"amos.example/amosd/rigs/testenv"
)

func TestRunOutageAndUsage(t *testing.T) {
	var out, errs strings.Builder
	if code := run(context.Background(), []string{"outage", "-devices", "2000", "-mode", "retry-date"}, &out, &errs, time.Now); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), "peak/steady:") || !strings.Contains(out.String(), "drained") {
		t.Fatalf("report:\n%s", out.String())
	}
	for _, args := range [][]string{{}, {"nope"}, {"outage", "-mode", "sideways"}, {"month", "-month", "2026-13"},
		{"phantom", "-stolen-share", "2"}, {"phantom", "-month", "2026-1"}, {"farm", "-late", "x"},
		{"phantom", "-attestation", "always"}, {"phantom", "-attestation-authority", "/tmp/x"}, {"phantom", "-attestation", "required", "-dormant", "0"},
		{"phantom", "-attestation", "required", "-collector", "https://127.0.0.1:1", "-ca", "ca.pem", "-payer-token", "p", "-maker", "phantomco=k"}} {
		out.Reset()
		errs.Reset()
		if code := run(context.Background(), args, &out, &errs, time.Now); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestRunFarmInProcess(t *testing.T) {
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host tool: its TLS fleet is not worth emulating (make test-arm)")
	}
	var out, errs strings.Builder
	code := run(context.Background(), []string{"farm", "-month", "2026-10", "-honest", "6", "-clones", "3", "-saturated", "1",
		"-backfill", "1", "-replay", "1", "-shared-serial", "3", "-future", "1", "-stolen-serial", "2", "-unregistered", "1",
		"-future-cert", "1", "-bad-mint", "1", "-late", "0", "-dir", t.TempDir()}, &out, &errs, time.Now)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	for _, want := range []string{"farmco", "ok", "0 farm devices paid (0 paid)", "stolen-serial", "bad-mint", "not caught"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q in the report:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\n  late ") {
		t.Errorf("-late 0 ran late devices:\n%s", out.String())
	}
}

func TestRunPhantomInProcess(t *testing.T) {
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host tool: its TLS fleet is not worth emulating (make test-arm)")
	}
	var out, errs strings.Builder
	code := run(context.Background(), []string{"phantom", "-month", "2027-01", "-phantoms", "40", "-honest", "20", "-dir", t.TempDir()},
		&out, &errs, time.Now)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	for _, want := range []string{"phantom 2027-01: phantomco certifies 40 keys (36 with made-up serial tags, 4 with", "phantom-stolen", "0 phantoms paid (0 paid)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q in the report:\n%s", want, out.String())
		}
	}
}

// TestRunPhantomAttestationRequired: with every maker's attestation required, the
// phantom scenario's honest keys are attested by the development authority it makes
// in --dir (root.pem for an external collector), the phantom maker's keys on its own
// registered serial tags are refused by attestation, and nothing of it is paid.
func TestRunPhantomAttestationRequired(t *testing.T) {
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host tool: its TLS fleet is not worth emulating (make test-arm)")
	}
	dir := t.TempDir()
	var out, errs strings.Builder
	code := run(context.Background(), []string{"phantom", "-month", "2026-12", "-phantoms", "20", "-honest", "20", "-dormant", "12",
		"-attestation", "required", "-dir", dir}, &out, &errs, time.Now)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	for _, want := range []string{"attestation required for every maker", "4 phantom-unattested (no chain), 4 phantom-own-root", "refused: untrusted_root",
		"refused: key_mismatch", "0 phantoms paid (0 paid)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("no %q in the report:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "attestation", "root.pem")); err != nil {
		t.Error(err)
	}
}

// TestRunPhantomAttestationExternalNewAuthority: an external collector cannot trust
// an authority the run would create: the run creates it and stops, naming the root
// file the collector's configuration must name.
func TestRunPhantomAttestationExternalNewAuthority(t *testing.T) {
	auth := filepath.Join(t.TempDir(), "authority")
	var out, errs strings.Builder
	code := run(context.Background(), []string{"phantom", "-month", "2026-12", "-attestation", "required", "-attestation-authority", auth,
		"-collector", "https://127.0.0.1:1", "-ca", "ca.pem", "-payer-token", "p", "-maker", "phantomco=k"}, &out, &errs, time.Now)
	want := "name " + filepath.Join(auth, "root.pem") + " in the collector's attestation.roots"
	if code != 1 || !strings.Contains(errs.String(), want) {
		t.Fatalf("exit %d, %q; want 1 and %q", code, errs.String(), want)
	}
	if _, err := os.Stat(filepath.Join(auth, "root.pem")); err != nil {
		t.Error(err)
	}
}

// TestRunMonthDefaultsToThePreviousMonth: without --month, the month scenario runs the
// month before "today", which comes from run's clock: pinned here to the end of a leap
// February, the first of a month after a 28-day February, and both sides of a new year.
func TestRunMonthDefaultsToThePreviousMonth(t *testing.T) {
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host tool: its TLS fleet is not worth emulating (make test-arm)")
	}
	for _, pd := range testenv.PinnedDays(t) {
		t.Run(pd.Today.Format(time.DateOnly), func(t *testing.T) {
			var out, errs strings.Builder
			code := run(context.Background(), []string{"month", "-devices", "30", "-stores", "3", "-dir", t.TempDir()}, &out, &errs,
				func() time.Time { return pd.Today.Add(15 * time.Hour) })
			if code != 0 || !strings.Contains(out.String(), "month "+pd.Previous+":") || !strings.Contains(out.String(), "claims "+pd.Previous) {
				t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
			}
		})
	}
}

// TestRunMonthLedgerPostgres: --ledger postgres starts a private PostgreSQL server in
// the run's (temporary) directory, runs the month on it with the claims exact, and
// stops it at the end: its port no longer answers and the directory is gone.
func TestRunMonthLedgerPostgres(t *testing.T) {
	pgtest.Require(t)
	var out, errs strings.Builder
	code := run(context.Background(), []string{"month", "-month", "2026-10", "-devices", "30", "-stores", "3", "-ledger", "postgres", "-v"},
		&out, &errs, time.Now)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	m := regexp.MustCompile(`PostgreSQL started in (\S+)/postgres \(.*\): postgres://amos@127\.0\.0\.1:(\d+)/amos`).FindStringSubmatch(errs.String())
	if m == nil || !strings.Contains(out.String(), "ledger: postgres://amos@127.0.0.1:"+m[2]+"/amos") || !strings.Contains(out.String(), "ok") {
		t.Fatalf("no server or ledger named:\n%s\n%s", errs.String(), out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, "postgres://amos@127.0.0.1:"+m[2]+"/postgres?sslmode=disable&connect_timeout=2"); err == nil {
		conn.Close(ctx)
		t.Errorf("the server still answers on port %s after the run", m[2])
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("the run's directory %s: %v", m[1], err)
	}
}

// TestRunMonthLedgerURL: --ledger URL runs the month on that database; its password
// appears nowhere in what the run prints, neither when it works nor when the database
// cannot be reached; --ledger with --collector, or not a postgres:// URL, is refused.
func TestRunMonthLedgerURL(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	const password = "s3cret-pw"
	url := strings.Replace(pg.NewDatabase(t), "amos@", "amos:"+password+"@", 1) // trust authentication ignores it
	var out, errs strings.Builder
	code := run(context.Background(), []string{"month", "-month", "2027-01", "-devices", "30", "-stores", "3", "-ledger", url, "-dir", t.TempDir(), "-v"},
		&out, &errs, time.Now)
	if code != 0 || !strings.Contains(out.String(), "ledger: postgres://amos@127.0.0.1:") {
		t.Fatalf("exit %d: %s\n%s", code, errs.String(), out.String())
	}
	if strings.Contains(out.String()+errs.String(), password) {
		t.Errorf("the password is printed:\n%s\n%s", errs.String(), out.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-ledger", "postgres://amos:" + password + "@127.0.0.1:1/amos?sslmode=disable&connect_timeout=2"}, "postgres://amos@127.0.0.1:1/amos"},
		{[]string{"-ledger", "mysql://amos:" + password + "@127.0.0.1/amos"}, "want a postgres:// URL"},
		{[]string{"-ledger", "postgres", "-collector", "https://127.0.0.1:1", "-ca", "ca.pem", "-payer-token", "p", "-maker", "konka=k"}, "an external collector has its own"},
	} {
		out.Reset()
		errs.Reset()
		args := append([]string{"month", "-month", "2027-01", "-devices", "3", "-dir", t.TempDir()}, tc.args...)
		if code := run(context.Background(), args, &out, &errs, time.Now); code != 1 || !strings.Contains(errs.String(), tc.want) {
			t.Errorf("%q: exit %d, %q; want 1 and %q", tc.args, code, errs.String(), tc.want)
		}
		if strings.Contains(out.String()+errs.String(), password) {
			t.Errorf("%q: the password is printed: %s", tc.args, errs.String())
		}
	}
}

// TestPickSeed: against a running collector, a run without --seed gets a fresh seed,
// printed (seed 1's keys are the demo's and every earlier run's: their new history would
// be a chain_gap); an explicit --seed, or an in-process collector, keeps its seed.
func TestPickSeed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		fresh bool
	}{
		{"in-process", nil, false},
		{"in-process, --seed", []string{"-seed", "9"}, false},
		{"running collector", []string{"-collector", "https://127.0.0.1:1"}, true},
		{"running collector, --seed 1", []string{"-collector", "https://127.0.0.1:1", "-seed", "1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seeds := map[uint64]bool{}
			for range 3 {
				fs := flag.NewFlagSet("t", flag.ContinueOnError)
				seed := fs.Uint64("seed", 1, "")
				var sf serverFlags
				sf.register(fs, "konka")
				if err := fs.Parse(tc.args); err != nil {
					t.Fatal(err)
				}
				given := *seed
				var errs strings.Builder
				if err := sf.pickSeed(fs, seed, &errs); err != nil {
					t.Fatal(err)
				}
				seeds[*seed] = true
				printed := strings.Contains(errs.String(), fmt.Sprintf("--seed %d ", *seed))
				if tc.fresh != printed || !tc.fresh && *seed != given {
					t.Errorf("seed %d (given %d), printed %q", *seed, given, errs.String())
				}
			}
			if tc.fresh && len(seeds) != 3 {
				t.Errorf("3 runs got the seeds %v, want 3 fresh ones", seeds)
			}
		})
	}
}
