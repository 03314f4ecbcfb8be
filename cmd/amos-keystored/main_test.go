package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/keystoretest"
	"amos.example/amosd/rigs/testenv"
)

// lockedBuffer collects a child's stderr while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs amos-keystored with args on bus and waits until it owns its name.
func start(t *testing.T, bin string, bus *testenv.Bus, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := testenv.Command(testenv.Context(t, 2*time.Minute), bin, append([]string{"--bus", bus.Address}, args...)...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("amos-keystored:\n%s", stderr)
	})
	keystoretest.WaitName(t, bus.Address, keystore.Name, 30*time.Second)
	return cmd, stderr
}

// TestKeystored runs the real binary: loud about what it is, an authority created in
// its state directory, keys that sign, callers refused by uid, and a clean exit on
// SIGTERM.
func TestKeystored(t *testing.T) {
	bus := testenv.StartBus(t)
	bin := testenv.Build(t, "amos.example/amosd/cmd/amos-keystored")
	state := filepath.Join(t.TempDir(), "state")
	cmd, stderr := start(t, bin, bus, "--state", state)
	for _, want := range []string{"DEVELOPMENT KEYSTORE, NOT FOR PRODUCTION", "SOFTWARE", "created a development attestation authority"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "authority", "root.pem")); err != nil {
		t.Errorf("no authority in the state directory: %v", err)
	}
	ctx := testenv.Context(t, time.Minute)
	c, err := keystore.Dial(ctx, keystore.Options{Bus: bus.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil || !strings.Contains(info.Implementation, "DEVELOPMENT") || info.SecurityLevel != "software" {
		t.Fatalf("Info: %+v %v", info, err)
	}
	k, err := c.GenerateAttestedKey(ctx, "amosd-device", proof.AttestationChallenge("acme", [32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := keystore.NewSigner(ctx, c, "amosd-device")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign([]byte("hello"))
	if err != nil || !k.PublicKey.Verify([]byte("hello"), sig) {
		t.Fatalf("Sign: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit on SIGTERM: %v", err)
	}
}

// TestKeystoredRefusesUID: --allow-uid replaces the default; other uids are refused.
func TestKeystoredRefusesUID(t *testing.T) {
	bus := testenv.StartBus(t)
	bin := testenv.Build(t, "amos.example/amosd/cmd/amos-keystored")
	_, stderr := start(t, bin, bus, "--state", filepath.Join(t.TempDir(), "state"), "--allow-uid", "4242", "--allow-uid", "4243")
	ctx := testenv.Context(t, time.Minute)
	c, err := keystore.Dial(ctx, keystore.Options{Bus: bus.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GetKey(ctx, "amosd-device"); !errors.Is(err, keystore.ErrAccessDenied) {
		t.Fatalf("GetKey as uid %d: %v, want ErrAccessDenied", os.Getuid(), err)
	}
	if !strings.Contains(stderr.String(), "[4242 4243]") {
		t.Errorf("stderr does not name the allowed uids")
	}
}

// TestUsage: a bad flag is exit 2.
func TestUsage(t *testing.T) {
	var b bytes.Buffer
	if code := run(testenv.Context(t, time.Minute), []string{"--allow-uid", "root"}, &b); code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, b.String())
	}
	if code := run(testenv.Context(t, time.Minute), []string{"extra"}, &b); code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, b.String())
	}
}
