package adbd

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve starts a Server on a loopback port for t and returns its address.
func serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := &Server{Product: "amos_test", Env: append(os.Environ(), "ADBD_TEST=yes"), Log: t.Logf}
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestRealClient drives the endpoint with Debian's adb: connect, shell v2 (streams
// apart, the exit status), plain shell, stdin, and push.
func TestRealClient(t *testing.T) {
	h := StartHost(t)
	addr := serve(t)
	if err := h.Connect(addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Run(30*time.Second, "-s", addr, "get-state"); err != nil || strings.TrimSpace(out) != "device" {
		t.Fatalf("get-state: %q %v", out, err)
	}
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := h.Command(ctx, append([]string{"-s", addr}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatalf("adb %v: %v", args, err)
		}
		return stdout.String(), stderr.String(), code
	}
	for _, tt := range []struct {
		name, stdin    string
		args           []string
		stdout, stderr string
		code           int
	}{
		{name: "v2 streams and exit", args: []string{"shell", "echo out; echo err >&2; exit 3"}, stdout: "out\n", stderr: "err\n", code: 3},
		{name: "v2 environment", args: []string{"shell", "echo $ADBD_TEST; pwd"}, stdout: "yes\n/\n"},
		{name: "v2 stdin", stdin: "one\ntwo\n", args: []string{"shell", "wc -l"}, stdout: "2\n"},
		{name: "v2 killed", args: []string{"shell", "kill -9 $$"}, code: 137},
		{name: "v2 large output", args: []string{"shell", "head -c 300000 /dev/zero | tr '\\0' x"}, stdout: strings.Repeat("x", 300000)},
		{name: "plain shell", args: []string{"shell", "-x", "echo out; echo err >&2; exit 3"}, stdout: "out\nerr\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(tt.stdin, tt.args...)
			if stdout != tt.stdout || stderr != tt.stderr || code != tt.code {
				if len(stdout) > 200 {
					stdout = stdout[:200] + "..."
				}
				t.Errorf("adb %q: stdout %q stderr %q exit %d; want %q %q %d", tt.args, stdout, stderr, code, tt.stdout, tt.stderr, tt.code)
			}
		})
	}
	t.Run("push", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "amosd")
		content := bytes.Repeat([]byte("amosd binary "), 20000) // several DATA chunks
		if err := os.WriteFile(src, content, 0o755); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "remote", "tmp", "amosd")
		stdout, stderr, code := run("", "push", src, dst)
		if code != 0 || !strings.Contains(stdout, "1 file pushed") {
			t.Fatalf("adb push: exit %d: %s%s", code, stdout, stderr)
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("pushed file: %d bytes, %v; want %d bytes", len(got), err, len(content))
		}
		if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("pushed file's mode: %v %v", st, err)
		}
		// Again, onto the file: replaced.
		if _, _, code := run("", "push", src, dst); code != 0 {
			t.Errorf("second push: exit %d", code)
		}
		// Into a directory that cannot be made.
		stdout, stderr, code = run("", "push", src, filepath.Join(src, "x", "amosd"))
		if code == 0 || !strings.Contains(stdout+stderr, "Not a directory") {
			t.Errorf("push under a file: exit %d: %s%s", code, stdout, stderr)
		}
		// Where no file can be made: SEND's FAIL, with the device's reason.
		stdout, stderr, code = run("", "push", src, "/proc/adbd-test-amosd")
		if code == 0 || !strings.Contains(stdout+stderr, "/proc/") {
			t.Errorf("push into /proc: exit %d: %s%s", code, stdout, stderr)
		}
		t.Logf("push into /proc: exit %d: %s%s", code, stdout, stderr)
	})
}
