package testenv

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bus is a private dbus-daemon for a test, with the policy of a system bus.
type Bus struct {
	t       testing.TB
	Address string // unix:path=…
	config  string
	socket  string
	cmd     *exec.Cmd
}

// BusConfig returns the path of testdata/dbus/system-like.conf.
func BusConfig(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "dbus", "system-like.conf")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// StartBus starts a dbus-daemon on a socket in a temporary directory and stops it when
// the test ends. It skips the test only if dbus-daemon is not installed.
func StartBus(t testing.TB) *Bus {
	t.Helper()
	return StartBusConfig(t, BusConfig(t))
}

// StartBusConfig is StartBus with the bus configuration file at config; its <listen>
// is overridden by the temporary socket.
func StartBusConfig(t testing.TB, config string) *Bus {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed (apt-get install dbus-daemon)")
	}
	dir, err := os.MkdirTemp("", "bus")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // other uids may connect
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "bus")
	b := &Bus{t: t, Address: "unix:path=" + socket, config: config, socket: socket}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Start starts the daemon (again) on the same address and waits until it listens.
func (b *Bus) Start() {
	b.t.Helper()
	os.Remove(b.socket)
	cmd := exec.Command("dbus-daemon", "--nofork", "--print-address=1", "--config-file="+b.config, "--address="+b.Address)
	var stderr strings.Builder
	cmd.Stderr = &stderr // it complains of fd limits it may not raise here; shown if it fails
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second // a service it activated may hold its stderr open
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if !strings.HasPrefix(s, "unix:path=") {
			cmd.Process.Kill()
			cmd.Wait()
			b.t.Fatalf("dbus-daemon printed %q\n%s", s, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		b.t.Fatal("dbus-daemon did not start in 30 s")
	}
	b.cmd = cmd
}

// Stop kills the daemon, as a crash would.
func (b *Bus) Stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Kill()
	b.cmd.Wait()
	b.cmd = nil
}

// Context returns a context bounded by d and the test's end.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
