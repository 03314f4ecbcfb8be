// Package testenv builds and starts the project's real binaries from tests, on the host
// or under QEMU user-mode emulation when the tests run cross-compiled.
package testenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// EmulatorEnv names the variable that `make test-arm` sets to the QEMU user-mode
// emulator (qemu-arm-static, qemu-aarch64-static). Child processes of a cross-compiled
// test are started through it: this machine has no binfmt_misc to do it by itself.
const EmulatorEnv = "AMOSD_TEST_EMULATOR"

// Emulator returns the emulator command that runs binaries of this GOARCH, or nil on
// the host.
func Emulator() []string {
	return strings.Fields(os.Getenv(EmulatorEnv))
}

// Command returns a command that runs the binary at path with args, through the
// emulator when there is one, bounded by ctx.
func Command(ctx context.Context, path string, args ...string) *exec.Cmd {
	if emu := Emulator(); len(emu) > 0 {
		args = append(append(emu[1:], path), args...)
		path = emu[0]
	}
	return exec.CommandContext(ctx, path, args...)
}

// Build compiles the main package pkg (an import path below amos.example/amosd) for
// the GOARCH the test runs as, exactly as the Makefile's cross target does: static,
// CGO_ENABLED=0, -trimpath, stripped, with ldflags. It returns the binary's path.
// It skips the test only if no Go toolchain is on PATH.
func Build(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	return BuildTagged(t, pkg, "", ldflags...)
}

// BuildTagged is Build with extra build tags (comma-separated), such as amosfakeclock
// for a collector whose clock the test shifts.
func BuildTagged(t testing.TB, pkg, tags string, ldflags ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no Go toolchain on PATH to build %s: %v", pkg, err)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	allTags := "nethttpomithttp2"
	if tags != "" {
		allTags += "," + tags
	}
	args := []string{"build", "-trimpath", "-tags", allTags, "-o", out, "-ldflags", strings.Join(append([]string{"-s", "-w"}, ldflags...), " "), pkg}
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if runtime.GOARCH == "arm" {
		cmd.Env = append(cmd.Env, "GOARM=7")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// WantErr fails the test unless err matches every target (errors.Is).
func WantErr(t testing.TB, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %q does not match %v", err, target)
		}
	}
}
