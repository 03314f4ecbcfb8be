package adbd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Host is the real adb client (Debian's adb package) with its own host server on a
// free port, so that tests do not share the default 5037 nor each other's devices.
type Host struct {
	Bin  string
	Port int
	env  []string
}

// RequireClient skips t when this machine has no adb client (fails instead with CI
// set) and returns its path.
func RequireClient(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("adb")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("adb is missing: apt-get install -y adb (scripts/ensure-tools.sh)")
		}
		t.Skip("adb is missing: apt-get install -y adb (scripts/ensure-tools.sh)")
	}
	return bin
}

// StartHost starts a host server for t and kills it when t ends.
func StartHost(t testing.TB) *Host {
	t.Helper()
	bin := RequireClient(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	home := t.TempDir() // the server's key pair (~/.android), private too
	h := &Host{Bin: bin, Port: port, env: []string{"ADB_SERVER_SOCKET=tcp:localhost:" + strconv.Itoa(port), "HOME=" + home}}
	if out, err := h.Run(time.Minute, "start-server"); err != nil {
		t.Fatalf("adb start-server: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := h.Run(30*time.Second, "kill-server"); err != nil {
			t.Logf("adb kill-server: %v\n%s", err, out)
		}
	})
	return h
}

// Env is what a program that runs adb needs to reach this host server.
func (h *Host) Env() []string { return append([]string(nil), h.env...) }

// Command is adb ARGS on this host server.
func (h *Host) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Env = append(os.Environ(), h.env...)
	return cmd
}

// Run runs adb ARGS within limit and returns its stdout and stderr together.
func (h *Host) Run(limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out bytes.Buffer
	cmd := h.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("adb %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// Connect runs adb connect ADDR and waits until the device is online.
func (h *Host) Connect(addr string, limit time.Duration) error {
	out, err := h.Run(limit, "connect", addr)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "connected to") {
		return fmt.Errorf("adb connect %s: %s", addr, strings.TrimSpace(out))
	}
	if out, err := h.Run(limit, "-s", addr, "wait-for-device"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}
