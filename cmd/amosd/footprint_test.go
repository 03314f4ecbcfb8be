package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/rigs/testenv"
)

// maxBinaryBytes is the budget of the stripped, static armv7 amosd: 6.0 MiB.
const maxBinaryBytes = 6 << 20

// heavyPackages are what amosd must not link: each would cost the handset binary its
// size budget (net/http about 0.7 MiB, encoding/json 0.25 MiB; flag pulls in
// reflection). amosd has its own small HTTP/1.1 client, JSON codec and flag parser,
// each fuzzed against the standard library's.
var heavyPackages = []string{"net/http", "encoding/json", "flag"}

// goTool returns the go command, or skips the test where there is none (under QEMU the
// suite runs without a toolchain on the handset's side).
func goTool(t *testing.T) string {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host check: it builds with the Go toolchain")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no Go toolchain on PATH: %v", err)
	}
	return gobin
}

// TestLinksNoHeavyPackages fails when amosd's dependencies, for the handsets' targets,
// include net/http, encoding/json or flag.
func TestLinksNoHeavyPackages(t *testing.T) {
	gobin := goTool(t)
	for _, arch := range []string{"arm", "arm64"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, gobin, "list", "-deps", "-tags", "nethttpomithttp2", "amos.example/amosd/cmd/amosd")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOARM=7")
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("go list -deps (%s): %v", arch, err)
		}
		deps := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			deps[p] = true
		}
		if !deps["amos.example/amosd/agent"] {
			t.Fatalf("go list -deps (%s) did not list amosd's own packages:\n%s", arch, out)
		}
		for _, p := range heavyPackages {
			if deps[p] {
				t.Errorf("linux/%s amosd links %s: use the project's own (internal/jsonlite, the transport's HTTP/1.1 client, cmd/amosd/flags.go)", arch, p)
			}
		}
	}
}

// TestArmBinaryWithinBudget builds amosd as `make cross` does for armv7 (static,
// -trimpath, stripped, without inlining) and fails when it is over 6.0 MiB.
func TestArmBinaryWithinBudget(t *testing.T) {
	gobin := goTool(t)
	out := filepath.Join(t.TempDir(), "amosd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-tags", "nethttpomithttp2", "-gcflags=all=-l",
		"-ldflags", "-s -w -X main.version=v0.0.0-size -X main.commit=000000000000", "-o", out, "amos.example/amosd/cmd/amosd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build (linux/arm): %v\n%s", err, b)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("amosd linux/arm GOARM=7, stripped: %d bytes (%.2f MiB; budget 6.00 MiB)", st.Size(), float64(st.Size())/(1<<20))
	if st.Size() > maxBinaryBytes {
		t.Errorf("amosd for armv7 is %d bytes, over the 6.0 MiB budget (%d bytes) by %d", st.Size(), maxBinaryBytes, st.Size()-maxBinaryBytes)
	}
}
