package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/internal/devattest"
)

const googleChain = "../../testdata/attestation/google/normal_cert_chain.pem"

// TestAttestationVerify: the command prints the verdict as JSON and exits 0 when
// accepted, 1 when refused, 2 on a usage error naming the flag or file.
func TestAttestationVerify(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, err := devattest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "cli test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	devChain, err := a.Attest(&key.PublicKey, devattest.Options{Challenge: []byte("bind")})
	if err != nil {
		t.Fatal(err)
	}
	devFile := write("dev.pem", string(devattest.ChainPEM(devChain)))
	devRoot := write("root.pem", string(a.RootPEM()))
	revoked := write("status.json", `{"entries": {"d05facf443ed535548d994f6845e6d3c": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}`)
	clean := write("clean.json", `{"entries": {}}`)
	const at = "--at=2023-03-01T12:00:00Z"
	const bootKey = "26ac4c60beb1e378357cad0c3061347af8df6fbabbb0d8cea2445855ee01e368"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		reason string // in the JSON
		stderr string // a fragment of stderr
	}{
		{"Google's chain, all checks", []string{"--chain", googleChain, at, "--challenge", "challenge", "--boot-key", bootKey, "--min-patch", "202302", "--status-list", clean}, 0, "", ""},
		{"Google's chain, hex challenge", []string{"--chain", googleChain, at, "--challenge-hex", "6368616c6c656e6765"}, 0, "", ""},
		{"default time is the command's clock (2026): expired", []string{"--chain", googleChain}, 1, "expired", "expired"},
		{"revoked", []string{"--chain", googleChain, at, "--status-list", revoked}, 1, "revoked", "refused: revoked"},
		{"wrong challenge", []string{"--chain", googleChain, at, "--challenge", "nope"}, 1, "challenge", ""},
		{"boot key not approved", []string{"--chain", googleChain, at, "--boot-key", "00", "--boot-key", "01"}, 1, "boot_key", ""},
		{"patch level", []string{"--chain", googleChain, at, "--min-patch", "202401"}, 1, "patch_level", ""},
		{"another key", []string{"--chain", googleChain, at, "--key", strings.Repeat("ab", 32)}, 1, "key_mismatch", ""},
		{"--roots replaces Google's", []string{"--chain", googleChain, at, "--roots", devRoot}, 1, "untrusted_root", ""},
		{"development chain, Google roots", []string{"--chain", devFile, "--challenge", "bind"}, 1, "untrusted_root", ""},
		{"development chain, its root", []string{"--chain", devFile, "--challenge", "bind", "--roots", devRoot}, 0, "", ""},
		{"both challenges", []string{"--chain", googleChain, "--challenge", "a", "--challenge-hex", "61"}, 2, "", "not both"},
		{"no chain", []string{at}, 2, "", "--chain FILE is required"},
		{"missing chain file", []string{"--chain", filepath.Join(dir, "none.pem")}, 2, "", "none.pem"},
		{"chain not PEM", []string{"--chain", clean}, 2, "", "clean.json"},
		{"bad --at", []string{"--chain", googleChain, "--at", "yesterday"}, 2, "", "--at"},
		{"bad hex challenge", []string{"--chain", googleChain, "--challenge-hex", "zz"}, 2, "", "--challenge-hex"},
		{"bad boot key", []string{"--chain", googleChain, "--boot-key", "xyz"}, 2, "", "boot-key"},
		{"bad min patch", []string{"--chain", googleChain, "--min-patch", "2024"}, 2, "", "--min-patch"},
		{"bad key", []string{"--chain", googleChain, "--key", "k"}, 2, "", "--key"},
		{"bad status list", []string{"--chain", googleChain, "--status-list", devFile}, 2, "", "dev.pem"},
		{"missing status list", []string{"--chain", googleChain, "--status-list", filepath.Join(dir, "x.json")}, 2, "", "x.json"},
		{"bad roots", []string{"--chain", googleChain, "--roots", clean}, 2, "", "clean.json"},
		{"unknown flag", []string{"--chain", googleChain, "--nope"}, 2, "", "nope"},
		{"positional argument", []string{"--chain", googleChain, "extra"}, 2, "", "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append([]string{"attestation", "verify"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out, errOut)
			}
			if tc.code == 2 {
				return
			}
			var r struct {
				Accepted      bool   `json:"accepted"`
				Reason        string `json:"reason"`
				SecurityLevel string `json:"security_level"`
				AttestedKey   string `json:"attested_key"`
				BootState     string `json:"boot_state"`
				DeviceLocked  bool   `json:"device_locked"`
				BootKey       string `json:"boot_key"`
				OSPatchLevel  int    `json:"os_patch_level"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if r.Accepted != (tc.code == 0) || r.Reason != tc.reason || r.SecurityLevel != "TrustedEnvironment" || len(r.AttestedKey) != 130 || r.BootState != "Verified" || !r.DeviceLocked || r.OSPatchLevel == 0 || r.BootKey == "" {
				t.Fatalf("verdict %+v from %s", r, out)
			}
		})
	}
	for _, args := range [][]string{{"attestation"}, {"attestation", "sign"}} {
		if code, _, errOut := runCLI(t, nil, args...); code != 2 || !strings.Contains(errOut, "want verify") {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
	}
	if code, out, _ := runCLI(t, nil, "help"); code != 0 || !strings.Contains(out, "attestation verify --chain FILE.pem") {
		t.Errorf("help does not list the command: %s", out)
	}
}
