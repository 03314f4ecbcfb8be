package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/internal/testenv"
)

// TestDemoQuick runs the demo with 50 phones and without the wait for the real
// midnight: the real amosd, fed by D-Bus signals, uploads its genesis; the fleet's
// claims match exactly (Run fails otherwise); every process is stopped at the end.
func TestDemoQuick(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed (scripts/ensure-tools.sh)")
	}
	if len(testenv.Emulator()) > 0 {
		t.Skip("the demo runs host binaries")
	}
	amosd := testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=demo")
	col := testenv.Build(t, "amos.example/amosd/cmd/amos-collector", "-X main.version=demo")
	out := filepath.Join(t.TempDir(), "demo")
	var report strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Repo: "../..", Out: out, Devices: 50, Amosd: amosd, Collector: col, Quick: true, Stdout: &report})
	t.Logf("\n%s", report.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Fleet == nil || res.Fleet.Check() != nil || res.Fleet.Stats.Acked != res.Fleet.Minted {
		t.Fatalf("fleet: %+v", res.Fleet)
	}
	if v := res.Device; v == nil || !v.Attributed || v.MakerID != "konka" || len(v.Epochs) != 1 || v.Epochs[0].HeadSeq != 1 {
		t.Fatalf("the real device's view: %+v", res.Device)
	}
	for _, f := range []string{"GUIDE.txt", "fleet.txt", "logs/amosd.log", "logs/collector.log", "collector/collector.db", "amosd/data/amosd.db"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(report.String(), "last_sync_result:          ok") {
		t.Errorf("amosd status is missing from the report")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(res.URL, "https://"), time.Second); err == nil {
		c.Close()
		t.Errorf("the collector still listens on %s after the demo", res.URL)
	}
}
