package vmtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/rigs/adbd"
)

// guestADBPort is where the check boot's rigs/adbd listens (adbd's usual 5555).
const guestADBPort = "5555"

// adbNIC is the check boot's network: QEMU's user-mode stack, closed to everything but
// the host's loopback port forwarded to the guest's adb port.
func adbNIC(hostPort int) []string {
	return []string{"-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:" + strconv.Itoa(hostPort) + "-:" + guestADBPort,
		"-device", "virtio-net-device,netdev=n0"}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// oemOverADB is the check boot's adb phase: the host's real adb connects to the
// guest's rigs/adbd through QEMU's forwarded port, and android-build/oem-check.sh
// checks the handset: every step passes (the one warning is the development keystore,
// which selftest names as such), then fails as it should with the daemon's consent
// off, with a wrong CA, and with the daemon stopped, each broken through adb. The
// transcripts go to out/vm/<arch>/oem-*.txt.
func oemOverADB(t *testing.T, arch Arch, im *image, b *vm, h *adbd.Host, port int) {
	b.waitLine(t, "adbd listening on ", 3*time.Minute)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	start := time.Now()
	if err := h.Connect(addr, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, b.tail(20))
	}
	// The guest's end of the phase, however this test ends.
	defer func() {
		if out, err := h.Run(time.Minute, "-s", addr, "shell", "touch /run/vm/oem-done"); err != nil {
			t.Errorf("ending the adb phase: %v\n%s", err, out)
		}
	}()
	shell := func(cmd string) string {
		t.Helper()
		out, err := h.Run(time.Minute, "-s", addr, "shell", cmd)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}

	// The shell protocol through QEMU: streams apart, the exit status.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := h.Command(ctx, "-s", addr, "shell", "echo out; echo err >&2; exit 3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	cancel()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("adb shell 'echo out; echo err >&2; exit 3': stdout %q stderr %q, %v; want out, err, exit 3", stdout.String(), stderr.String(), err)
	}

	script := filepath.Join(repoRoot(t), "android-build", "oem-check.sh")
	check := func(name string, wantExit int, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{script, "-s", addr}, args...)...)
		cmd.Env = append(append(os.Environ(), h.Env()...), "ADB="+h.Bin, "ADB_SERIAL=", "AMOSD=", "AMOSD_CHECK_WAIT=2")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatalf("oem-check.sh %s: %v\n%s", name, err, out.String())
		}
		os.WriteFile(filepath.Join(im.logs, "oem-"+name+".txt"), out.Bytes(), 0o644)
		if code != wantExit {
			t.Errorf("oem-check.sh (%s): exit %d, want %d:\n%s", name, code, wantExit, out.String())
		}
		return out.String()
	}
	want := func(name, out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !hasLine(out, l) {
				t.Errorf("oem-check.sh (%s): no line starting %q:\n%s", name, l, out)
			}
		}
	}

	// A good handset, with a CLI pushed over adb's sync service.
	out := check("good", 0, "--push", im.amosd)
	want("good", out, "PASS device "+addr, "PASS root (adb shell is uid 0)", "PASS push ("+im.amosd+" to /data/local/tmp/amosd)",
		"PASS version (amosd vm-test ", "PASS selftest certificate (maker konka", "PASS selftest server (TLS handshake",
		"PASS selftest daemon", "PASS report screen_on", "PASS counting (today_interactive_seconds ", "PASS report screen_off",
		"PASS flush (", "PASS status (consent true, 0 queued, last sync \"ok", "oem-check: ")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "SKIP") || (strings.HasPrefix(l, "WARN") && !strings.HasPrefix(l, "WARN selftest keystore: amos-keystored")) {
			t.Errorf("oem-check.sh (good): %s", l)
		}
	}
	t.Logf("oem-check.sh -s %s --push out/%s/amosd:\n%s", addr, arch.GOARCH, out)

	// No consent.
	shell("amosd consent off")
	out = check("no-consent", 1)
	want("no-consent", out, "FAIL counting: consent is off: nothing is counted, nothing is uploaded — fix: the owner grants consent",
		"FAIL status: consent false, ")
	shell("amosd consent on")

	// A CA that is not the server's.
	wrong := filepath.Join(t.TempDir(), "wrong-ca.pem")
	if err := os.WriteFile(wrong, selfSignedCA(t), 0o644); err != nil {
		t.Fatal(err)
	}
	shell("cp /data/collector/ca.pem /run/vm/ca.pem.good")
	if out, err := h.Run(time.Minute, "-s", addr, "push", wrong, "/data/collector/ca.pem"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out = check("wrong-ca", 1)
	want("wrong-ca", out, "FAIL selftest server: TLS handshake with 127.0.0.1:8443: ", "PASS selftest daemon")
	if !strings.Contains(out, "— fix: check the network, server_url, and that ca_file is the server's CA") {
		t.Errorf("oem-check.sh (wrong-ca): no fix for the CA:\n%s", out)
	}
	shell("cp /run/vm/ca.pem.good /data/collector/ca.pem")

	// The daemon stopped: SIGTERM, then until amosd status says it is gone (exit 3),
	// bounded by the shell's minute.
	shell("kill $(pidof amosd); while amosd status >/dev/null 2>&1; do sleep 0.1; done")
	out = check("daemon-stopped", 1)
	want("daemon-stopped", out, "PASS version", "FAIL selftest daemon: nobody owns com.amos.Agent1 — fix: start the daemon",
		"FAIL report screen_on: amosd report screen_on: exit 3: ", "SKIP counting", "FAIL flush: amosd flush: exit 3: ",
		"FAIL status: amosd status --json: exit 3: ")
	t.Logf("FIGURES %s oem-check over adb: 4 runs (good with --push, no consent, wrong CA, daemon stopped) in %v", arch.Name, time.Since(start).Round(time.Second))
}

func hasLine(out, prefix string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// selfSignedCA is a CA certificate that signed nothing the collector holds.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the collector's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
