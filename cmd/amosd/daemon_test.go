package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/store"
)

// daemon is a real amosd process under test.
type daemon struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	log   strings.Builder
	seen  []string // every line so far
}

// startDaemon runs `amosd --config cfg run` and collects its log lines.
func startDaemon(t *testing.T, bin, cfg string) *daemon {
	t.Helper()
	d := &daemon{t: t, lines: make(chan string, 1024)}
	d.cmd = testenv.Command(context.Background(), bin, "--config", cfg, "run")
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	return d
}

// waitLog waits until some log line, since the start, contains s.
func (d *daemon) waitLog(s string) { d.t.Helper(); d.waitLogN(s, 1) }

// waitLogN waits until n log lines, since the start, contain s.
func (d *daemon) waitLogN(s string, n int) {
	d.t.Helper()
	count := func() int {
		c := 0
		for _, l := range d.seen {
			if strings.Contains(l, s) {
				c++
			}
		}
		return c
	}
	deadline := time.After(2 * time.Minute)
	for count() < n {
		select {
		case line, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("amosd exited before logging %q:\n%s", s, d.log.String())
			}
			d.log.WriteString(line + "\n")
			d.seen = append(d.seen, line)
		case <-deadline:
			d.t.Fatalf("amosd did not log %q (%d times) in 2 minutes:\n%s", s, n, d.log.String())
		}
	}
}

// stop sends sig and returns the exit code.
func (d *daemon) stop(sig syscall.Signal) int {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
	for line := range d.lines {
		d.log.WriteString(line + "\n")
	}
	err := d.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		d.t.Fatal(err)
	}
	return 0
}

// TestRunTalliesRealSignals runs the amosd binary on a private bus, feeds it real
// signals of the power manager, stops it with SIGTERM, and finds the tally saved.
func TestRunTalliesRealSignals(t *testing.T) {
	bus := testenv.StartBus(t)
	bin := testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=e2e")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "amosd.json")
	cfg := map[string]any{
		"data_dir": filepath.Join(dir, "data"), "key_dir": filepath.Join(dir, "persist"),
		"server_url": "http://127.0.0.1:9", "allow_insecure_http": true,
		"bus": bus.Address, "sources": []string{"amos-power"}, "consent_default": true, "log": "stderr",
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	pm, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if reply, err := pm.RequestName("com.amos.PowerManager", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own the power manager's name: %v %v", reply, err)
	}
	emit := func(member string, args ...any) {
		if err := pm.Emit("/com/amos/PowerManager", "com.amos.PowerManager1."+member, args...); err != nil {
			t.Fatal(err)
		}
	}

	d := startDaemon(t, bin, cfgPath)
	d.waitLog("event: amos-power available")
	emit("ScreenChanged", true)
	d.waitLog("event: amos-power screen_on")
	emit("LockChanged", false)
	d.waitLog("event: amos-power unlocked")
	emit("UserActivity")
	time.Sleep(3 * time.Second) // interactive time accrues in real time here
	emit("ScreenChanged", false)
	d.waitLog("event: amos-power screen_off")
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, d.log.String())
	}
	t.Logf("transcript:\n%s", d.log.String())

	s, err := store.OpenReadOnly(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tally, ok, err := s.Tally()
	if !ok || err != nil {
		t.Fatalf("no tally saved: %v", err)
	}
	// About 3 s; the bounds leave room for a slow emulator delivering the signals late.
	if tally.Unlocks != 1 || tally.ScreenOns != 1 || tally.InteractiveSeconds < 1 || tally.InteractiveSeconds > 6 {
		t.Fatalf("tally %+v, want 1 unlock, 1 screen_on, about 3 s", tally)
	}
	items, _ := s.Peek(10, 1<<20)
	if len(items) != 1 {
		t.Fatalf("queue holds %d records, want the genesis", len(items))
	}
}

func TestRunRefusesAnExposedKey(t *testing.T) {
	bin := testenv.Build(t, "amos.example/amosd/cmd/amosd")
	dir := t.TempDir()
	persist := filepath.Join(dir, "persist")
	os.MkdirAll(persist, 0o700)
	os.WriteFile(filepath.Join(persist, "device.key"), make([]byte, 32), 0o644)
	os.Chmod(filepath.Join(persist, "device.key"), 0o644)
	cfgPath := filepath.Join(dir, "amosd.json")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`{"data_dir": %q, "key_dir": %q, "server_url": "http://127.0.0.1:9", "allow_insecure_http": true, "sources": []}`,
		filepath.Join(dir, "data"), persist)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := testenv.Command(ctx, bin, "--config", cfgPath, "run").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "mode 0644") {
		t.Fatalf("exit %v, output:\n%s", err, out)
	}
}

// TestRunRefusesALostKey: the real binary with a 0-byte device.key exits 2 naming the
// file, the size and what the factory must do (it used to say "EOF").
func TestRunRefusesALostKey(t *testing.T) {
	bin := testenv.Build(t, "amos.example/amosd/cmd/amosd")
	dir := t.TempDir()
	persist := filepath.Join(dir, "persist")
	keyPath := filepath.Join(persist, "device.key")
	os.MkdirAll(persist, 0o700)
	os.WriteFile(keyPath, nil, 0o600)
	cfgPath := filepath.Join(dir, "amosd.json")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`{"data_dir": %q, "key_dir": %q, "server_url": "http://127.0.0.1:9", "allow_insecure_http": true, "sources": []}`,
		filepath.Join(dir, "data"), persist)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := testenv.Command(ctx, bin, "--config", cfgPath, "run").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2; output:\n%s", err, out)
	}
	for _, s := range []string{keyPath, "0 bytes", "the factory must provision this handset again"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output does not say %q:\n%s", s, out)
		}
	}
}
