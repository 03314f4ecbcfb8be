package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/rigs/pgtest"
	"amos.example/amosd/rigs/testenv"
)

// TestDemoQuick runs the demo with 50 phones and without the wait for the real
// midnight, with "today" pinned (Options.Today; the collector's clock shifted to it) to
// the end of a leap February, the first of a month after a 28-day February, and both
// sides of a new year: the real amosd, its key in the real amos-keystored (made there
// by amosd identity at the factory), fed by D-Bus signals, uploads its genesis, whose
// chain the collector accepts for a maker that requires attestation; the fleet's month
// (the one before today, 29, 28, 30 and 31 days) and its claims match exactly (Run
// fails otherwise); every process is stopped at the end.
func TestDemoQuick(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed (make tools)")
	}
	if len(testenv.Emulator()) > 0 {
		t.Skip("the demo runs host binaries")
	}
	amosd := testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=demo")
	col := testenv.BuildTagged(t, "amos.example/amosd/cmd/amos-collector", "amosfakeclock", "-X main.version=demo")
	keystored := testenv.Build(t, "amos.example/amosd/cmd/amos-keystored")
	for i, pd := range testenv.PinnedDays(t) {
		today := pd.Today.Format(time.DateOnly)
		quick := i > 0 // the first asks for the midnight wait, which a shifted date skips
		t.Run(today, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "demo")
			var report strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			res, err := Run(ctx, Options{Repo: "../..", Out: out, Devices: 50, Amosd: amosd, Collector: col, Keystored: keystored, Quick: quick, Today: pd.Today, Stdout: &report})
			t.Logf("\n%s", report.String())
			if err != nil {
				t.Fatal(err)
			}
			if said := strings.Contains(report.String(), "the real amosd only uploads its genesis"); said == quick {
				t.Errorf("quick %v: the report says the midnight wait is skipped: %v", quick, said)
			}
			if res.Fleet == nil || res.Fleet.Month.String() != pd.Previous || res.Fleet.Check() != nil || res.Fleet.Stats.Acked != res.Fleet.Minted {
				t.Fatalf("fleet (want month %s): %+v", pd.Previous, res.Fleet)
			}
			if v := res.Device; v == nil || !v.Attributed || v.MakerID != realMaker || len(v.Epochs) != 1 || v.Epochs[0].HeadSeq != 1 || v.KeyType != "p256" {
				t.Fatalf("the real device's view: %+v", res.Device)
			}
			if a := res.Device.Attestation; a == nil || !a.Accepted || a.SecurityLevel != "TrustedEnvironment" || a.Epoch != 1 || len(a.Serials) != 3 {
				t.Fatalf("the real device's attestation verdict: %+v", a)
			}
			if !strings.Contains(report.String(), "attestation: accepted, TrustedEnvironment") {
				t.Errorf("the report does not show the device's attestation verdict")
			}
			for _, f := range []string{"GUIDE.txt", "fleet.txt", "logs/amosd.log", "logs/amos-keystored.log", "logs/collector.log", "collector/collector.db",
				"amosd/data/amosd.db", "amosd/chain.pem", "keystore/authority/root.pem"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
			log, _ := os.ReadFile(filepath.Join(out, "logs", "collector.log"))
			if !strings.Contains(string(log), "it is "+today+"T") {
				t.Errorf("the collector's clock is not on %s:\n%s", today, log)
			}
			guide, _ := os.ReadFile(filepath.Join(out, "GUIDE.txt"))
			tok, _ := os.ReadFile(filepath.Join(out, "payer.token"))
			if !strings.Contains(string(guide), res.URL+"/console/") || len(tok) < 16 || !strings.Contains(string(guide), "development token "+strings.TrimSpace(string(tok))) {
				t.Errorf("the guide does not give the console's URL and the payer's token to sign in:\n%s", guide)
			}
			if !strings.Contains(report.String(), "signed in with the payer's token, its page of "+pd.Previous+" shows every maker's paid devices") {
				t.Errorf("the demo did not check the console")
			}
			if !strings.Contains(report.String(), "last_sync_result:          ok") {
				t.Errorf("amosd status is missing from the report")
			}
			if ks, _ := os.ReadFile(filepath.Join(out, "logs", "amos-keystored.log")); !strings.Contains(string(ks), "NOT FOR PRODUCTION") {
				t.Errorf("amos-keystored did not say it is a development keystore:\n%s", ks)
			}
			// The key never was a file.
			for _, f := range []string{"device.key", "device-p256.key"} {
				if _, err := os.Stat(filepath.Join(out, "amosd", "persist", f)); err == nil {
					t.Errorf("amosd/persist/%s exists: the key is the keystore's", f)
				}
			}
			if c, err := net.DialTimeout("tcp", strings.TrimPrefix(res.URL, "https://"), time.Second); err == nil {
				c.Close()
				t.Errorf("the collector still listens on %s after the demo", res.URL)
			}
		})
	}
}

// TestDemoRefusesARealClockCollector: Options.Today with a collector built without
// amosfakeclock fails at once, naming the build tag, instead of a fleet of future dates.
func TestDemoRefusesARealClockCollector(t *testing.T) {
	if len(testenv.Emulator()) > 0 {
		t.Skip("the demo runs host binaries")
	}
	col := testenv.Build(t, "amos.example/amosd/cmd/amos-collector")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Run(ctx, Options{Repo: "../..", Out: filepath.Join(t.TempDir(), "demo"), Devices: 5, Amosd: col, Collector: col, Quick: true,
		Today: time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)})
	if err == nil || !strings.Contains(err.Error(), "amosfakeclock") {
		t.Fatalf("err = %v", err)
	}
}

func TestDayShift(t *testing.T) {
	now := time.Date(2026, 12, 3, 23, 59, 30, 0, time.FixedZone("CST", 8*3600)) // 15:59:30 UTC
	for _, tc := range []struct {
		today string
		days  int
	}{{"2026-12-03", 0}, {"2026-12-02", -1}, {"2027-01-01", 29}, {"2028-02-29", 453}, {"2026-02-28", -278}} {
		today, _ := time.Parse(time.DateOnly, tc.today)
		if got := dayShift(now, today); got != time.Duration(tc.days)*24*time.Hour {
			t.Errorf("%s: shift %v, want %d days", tc.today, got, tc.days)
		}
		if got := now.Add(dayShift(now, today)).UTC().Format(time.DateOnly); got != tc.today {
			t.Errorf("%s: shifted now is %s", tc.today, got)
		}
	}
}

// TestDemoQuickPostgres: with Options.Ledger "postgres" the demo starts a PostgreSQL
// server in Out/postgres (rigs/pgtest's launcher), writes its URL as the collector's
// "ledger", and runs the whole demo on it: the fleet's claims exact, the real device
// attested; no bbolt ledger is made, and the server is stopped at the end.
func TestDemoQuickPostgres(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed (make tools)")
	}
	pgtest.Require(t)
	amosd := testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=demo")
	col := testenv.BuildTagged(t, "amos.example/amosd/cmd/amos-collector", "amosfakeclock", "-X main.version=demo")
	keystored := testenv.Build(t, "amos.example/amosd/cmd/amos-keystored")
	pd := testenv.PinnedDays(t)[0]
	// t.TempDir is private to root; the server's user (postgres) passes through this one.
	parent, err := os.MkdirTemp("", "amos-demo-pg-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(parent, "demo")
	var report strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Repo: "../..", Out: out, Devices: 50, Amosd: amosd, Collector: col, Keystored: keystored, Quick: true,
		Today: pd.Today, Ledger: LedgerPostgres, Stdout: &report})
	t.Logf("\n%s", report.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Fleet == nil || res.Fleet.Month.String() != pd.Previous || res.Fleet.Check() != nil || res.Fleet.Stats.Acked != res.Fleet.Minted {
		t.Fatalf("fleet (want month %s): %+v", pd.Previous, res.Fleet)
	}
	if a := res.Device.Attestation; a == nil || !a.Accepted {
		t.Fatalf("the real device's attestation verdict: %+v", a)
	}
	var cfg struct {
		Ledger string `json:"ledger"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "collector.json"))
	if err := json.Unmarshal(b, &cfg); err != nil || !strings.HasPrefix(cfg.Ledger, "postgres://amos@127.0.0.1:") {
		t.Fatalf("collector.json's ledger %q, %v", cfg.Ledger, err)
	}
	if !strings.Contains(report.String(), "(ledger "+cfg.Ledger+")") || !strings.Contains(report.String(), "pg_ctl -D ") {
		t.Errorf("the report does not name the PostgreSQL ledger or how to start it again")
	}
	if _, err := os.Stat(filepath.Join(out, "postgres", "data", "PG_VERSION")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(out, "collector", "collector.db")); err == nil {
		t.Error("a bbolt ledger was made beside the PostgreSQL one")
	}
	u, err := url.Parse(cfg.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Errorf("PostgreSQL still listens on %s after the demo", u.Host)
	}
	// The guide's commands: the server started again on its port, the offline claims
	// read from it (the fleet's paid devices), the server stopped.
	guide, _ := os.ReadFile(filepath.Join(out, "GUIDE.txt"))
	var start, claims, stop string
	for _, l := range strings.Split(string(guide), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.Contains(l, "pg_ctl") && strings.Contains(l, " start "):
			start = l[:strings.Index(l, " start ")+len(" start")]
		case strings.Contains(l, "pg_ctl") && strings.Contains(l, " stop "):
			stop = l[:strings.Index(l, " stop ")+len(" stop")]
		case strings.Contains(l, " claims --month "+pd.Previous):
			claims = l
		}
	}
	sh := func(line string) string {
		t.Helper()
		b, err := exec.CommandContext(ctx, "sh", "-c", line).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, b)
		}
		return string(b)
	}
	if start == "" || claims == "" || stop == "" {
		t.Fatalf("the guide lacks the pg_ctl start, claims or pg_ctl stop command:\n%s", guide)
	}
	sh(start)
	stopped := false
	defer func() {
		if !stopped {
			exec.Command("sh", "-c", stop).Run()
		}
	}()
	got := sh(claims)
	sh(stop)
	stopped = true
	paid := 0
	for _, n := range res.Fleet.Got {
		paid += n
	}
	if n := strings.Count(got, `"paid":`); n != 4 || paid == 0 || !strings.Contains(got, fmt.Sprintf(`"paid":%d`, res.Fleet.Got["konka"])) {
		t.Errorf("offline claims on the restarted server (%d rows; konka paid %d):\n%s", n, res.Fleet.Got["konka"], got)
	}
	if _, err := Run(ctx, Options{Repo: "../..", Out: filepath.Join(parent, "bad"), Ledger: "mysql"}); err == nil || !strings.Contains(err.Error(), `want "postgres"`) {
		t.Errorf("--ledger mysql: %v", err)
	}
}
