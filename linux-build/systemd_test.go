package linuxbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/rigs/testenv"
)

// systemdAnalyze returns the path and major version of systemd-analyze, skipping the
// test if it is not installed.
func systemdAnalyze(t *testing.T) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd)")
	}
	out, err := analyze(t, bin, "--version")
	if err != nil {
		t.Fatalf("systemd-analyze --version: %v\n%s", err, out)
	}
	var v int
	if _, err := fmt.Sscanf(out, "systemd %d", &v); err != nil {
		t.Fatalf("systemd-analyze --version: %q: %v", out, err)
	}
	return bin, v
}

// analyze runs systemd-analyze with args, bounded, and returns its combined output.
func analyze(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// unitCopy writes amosd.service into a new directory with ExecStart's binary replaced by
// bin (verify checks that it exists and is executable), and returns its path.
func unitCopy(t *testing.T, bin string) string {
	t.Helper()
	text := readFile(t, unitFile)
	exec := unitKey(t, text, "Service", "ExecStart")
	if !strings.HasPrefix(exec, installedBinary+" ") {
		t.Fatalf("ExecStart=%s, want %s …", exec, installedBinary)
	}
	text = strings.Replace(text, "ExecStart="+installedBinary+" ", "ExecStart="+bin+" ", 1)
	p := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitVerifies: systemd-analyze verify finds nothing to say about amosd.service,
// nor about the backoff drop-in where systemd knows its keys (>= 254); an older one
// may only call those keys unknown, which is why they are a drop-in.
func TestUnitVerifies(t *testing.T) {
	sa, version := systemdAnalyze(t)
	unit := unitCopy(t, testenv.Build(t, "amos.example/amosd/cmd/amosd"))
	out, err := analyze(t, sa, "verify", "--man=no", unit)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	t.Logf("systemd %d: systemd-analyze verify %s: no warnings", version, unitFile)

	dropIn := filepath.Join(filepath.Dir(unit), backoffDropIn)
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dropIn, []byte(readFile(t, backoffDropIn)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = analyze(t, sa, "verify", "--man=no", unit)
	if err != nil {
		t.Fatalf("systemd-analyze verify with %s: %v\n%s", backoffDropIn, err, out)
	}
	var unknown []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := regexp.MustCompile(`restart-backoff\.conf:\d+: Unknown key '(\w+)' in section \[Service\], ignoring\.$`).FindStringSubmatch(line)
		switch {
		case line == "":
		case version < 254 && m != nil && (m[1] == "RestartSteps" || m[1] == "RestartMaxDelaySec"):
			unknown = append(unknown, m[1])
		default:
			t.Errorf("systemd %d: systemd-analyze verify with %s: %s", version, backoffDropIn, line)
		}
	}
	if version < 254 {
		t.Logf("systemd %d (< 254) ignores %v of %s, as README.md says: not installed there", version, unknown, backoffDropIn)
	}
}

// TestUnitExposure: systemd-analyze security rates the unit's sandbox at most 2.0 (of
// 10; "OK"), so that a lost hardening line shows.
func TestUnitExposure(t *testing.T) {
	sa, version := systemdAnalyze(t)
	if version < 250 {
		t.Skipf("systemd-analyze %d has no security --offline (systemd >= 250)", version)
	}
	unit := unitCopy(t, testenv.Build(t, "amos.example/amosd/cmd/amosd"))
	out, err := analyze(t, sa, "security", "--offline=yes", "--threshold=20", unit)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil {
		t.Fatalf("systemd-analyze security: %v (over the threshold of 2.0?)\n%s", err, out)
	}
	t.Logf("systemd-analyze security: %s", lines[len(lines)-1])
}

// syscallGroups returns systemd-analyze's system call groups ("@name" → members).
func syscallGroups(t *testing.T, sa string) map[string][]string {
	t.Helper()
	out, err := analyze(t, sa, "syscall-filter")
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter: %v\n%s", err, out)
	}
	groups := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || strings.HasPrefix(s, "#"):
		case strings.HasPrefix(line, "@"):
			cur = s
		case cur != "":
			groups[cur] = append(groups[cur], s)
		}
	}
	return groups
}

// expand returns the system calls of filter entries (names and @groups).
func expand(groups map[string][]string, entries []string, into map[string]bool) {
	for _, e := range entries {
		if strings.HasPrefix(e, "@") {
			expand(groups, groups[e], into)
		} else {
			into[e] = true
		}
	}
}

// TestUnitSyscalls runs amosd under strace through a day's work (own the name, answer
// Status, mint, upload over TLS, watch an input directory, stop on SIGTERM) and checks
// every system call against the unit's SystemCallFilter= and every socket against its
// RestrictAddressFamilies=: the sandbox, which this machine cannot apply without
// systemd as PID 1, would not break the daemon. The calls are those of this GOARCH.
func TestUnitSyscalls(t *testing.T) {
	needRoot(t)
	sa, _ := systemdAnalyze(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace is not installed (apt-get install strace)")
	}
	if len(testenv.Emulator()) > 0 {
		t.Skip("under QEMU user emulation strace would see the emulator's system calls, not amosd's")
	}
	text := readFile(t, unitFile)
	allow, deny := map[string]bool{}, map[string]bool{}
	groups := syscallGroups(t, sa)
	for _, f := range unitKeys(text, "Service", "SystemCallFilter") {
		if rest, ok := strings.CutPrefix(f, "~"); ok {
			expand(groups, strings.Fields(rest), deny)
		} else {
			expand(groups, strings.Fields(f), allow)
		}
	}
	families := strings.Fields(unitKey(t, text, "Service", "RestrictAddressFamilies"))

	root := lookup(t, "root")
	r := newRig(t, "")
	input := filepath.Join(r.shared, "input")
	if err := os.Mkdir(input, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := r.writeConfig("amosd.json", privateDir(t, r.shared, "data", root), privateDir(t, r.shared, "persist", root))
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`"evdev_glob":"/dev/input/event*"`), []byte(`"evdev_glob":"`+input+`/event*"`), 1)
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}

	trace := filepath.Join(t.TempDir(), "strace")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strace, "-f", "-qq", "-o", trace, "--", r.bin, "--config", cfg, "run")
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.WaitDelay = 10 * time.Second // amosd outlives a killed strace
	conn := r.connect()
	w := watchOwner(t, conn)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cancel(); <-exited }()
	o := w.wait(2*time.Minute, exited, log.String)
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, o).Store(&pid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(int(pid), syscall.SIGKILL) }) // if the test failed before SIGTERM

	obj := conn.Object(dbusapi.Name, dbusapi.Path)
	var st map[string]dbus.Variant
	if err := obj.CallWithContext(testenv.Context(t, time.Minute), dbusapi.Iface+".Status", 0).Store(&st); err != nil {
		t.Fatalf("Status: %v", err)
	}
	if err := obj.CallWithContext(testenv.Context(t, time.Minute), dbusapi.Iface+".SetConsent", 0, true).Err; err != nil {
		t.Fatalf("SetConsent: %v", err)
	}
	var accepted, queued uint32
	if err := obj.CallWithContext(testenv.Context(t, time.Minute), dbusapi.Iface+".Flush", 0).Store(&accepted, &queued); err != nil {
		t.Fatalf("Flush: %v\n%s", err, log.String())
	}
	if _, records := r.coll.Counts(); records != 1 || queued != 0 {
		t.Fatalf("after Flush the collector holds %d records and amosd queues %d, want the genesis uploaded\n%s", records, queued, log.String())
	}
	if err := syscall.Kill(int(pid), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("amosd under strace did not exit a minute after SIGTERM:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "tally of") {
		t.Fatalf("amosd did not stop cleanly:\n%s", log.String())
	}

	out, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	var sockets []string
	call := regexp.MustCompile(`^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)\(`)
	socket := regexp.MustCompile(`socket\((AF_[A-Z0-9]+)`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := call.FindStringSubmatch(line); m != nil {
			used[m[1]] = true
		}
		if m := socket.FindStringSubmatch(line); m != nil && !slices.Contains(sockets, m[1]) {
			sockets = append(sockets, m[1])
		}
	}
	if len(used) < 20 {
		t.Fatalf("strace saw only %d system calls: %v", len(used), used)
	}
	names := make([]string, 0, len(used))
	for name := range used {
		names = append(names, name)
		switch {
		case name == "execve":
			// strace's exec of amosd happens before systemd's filter would apply.
		case !allow[name]:
			t.Errorf("amosd called %s, which SystemCallFilter= does not allow", name)
		case deny[name]:
			t.Errorf("amosd called %s, which SystemCallFilter=~ denies", name)
		}
	}
	for _, f := range sockets {
		if !slices.Contains(families, f) {
			t.Errorf("amosd opened an %s socket, which RestrictAddressFamilies=%s refuses", f, strings.Join(families, " "))
		}
	}
	slices.Sort(names)
	t.Logf("amosd used %d system calls, all allowed: %s", len(names), strings.Join(names, " "))
	t.Logf("socket families: %s (allowed: %s)", strings.Join(sockets, " "), strings.Join(families, " "))
}
