package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/keystoretest"
	"amos.example/amosd/rigs/testenv"
)

// runExit runs a binary to completion and returns its output and exit code.
func runExit(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := testenv.Command(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return string(out), 0
}

// TestKeystoreBackendEndToEnd runs the real amosd with key.backend keystore against the
// real amos-keystored on a private bus: without a key the daemon refuses to start and
// names the factory's command; the factory's amosd identity makes the attested key
// for its maker and serial tag; the daemon then signs its genesis in the keystore and
// the genesis that reaches the server carries the attestation chain.
func TestKeystoreBackendEndToEnd(t *testing.T) {
	bus := testenv.StartBus(t)
	amosd := testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=e2e")
	keystored := testenv.Build(t, "amos.example/amosd/cmd/amos-keystored")
	col := testenv.StartCollector(t)
	genesis := make(chan *proof.Record, 4)
	col.SetVerdict(func(rec *proof.Record) (string, string) {
		if _, ok := rec.Genesis(); ok {
			genesis <- rec
		}
		return "", ""
	})
	dir := t.TempDir()
	persist := filepath.Join(dir, "persist")
	cfgPath := filepath.Join(dir, "amosd.json")
	b, _ := json.Marshal(map[string]any{
		"data_dir": filepath.Join(dir, "data"), "key_dir": persist, "server_url": col.URL, "ca_file": col.CAFile,
		"bus": bus.Address, "sources": []string{}, "consent_default": true, "log": "stderr",
		"key": map[string]any{"backend": "keystore"},
	})
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	// No keystore on the bus: not an identity error (it may come up), exit 1.
	out, code := runExit(t, amosd, "--config", cfgPath, "run")
	if code != exitFailed || !strings.Contains(out, "keystore unavailable") {
		t.Fatalf("run without a keystore: exit %d\n%s", code, out)
	}

	ks := testenv.Command(testenv.Context(t, 5*time.Minute), keystored, "--bus", bus.Address, "--state", filepath.Join(dir, "keystore"))
	var ksLog bytes.Buffer
	ks.Stderr = &ksLog
	if err := ks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Process.Kill(); ks.Wait(); t.Logf("amos-keystored:\n%s", ksLog.String()) })
	keystoretest.WaitName(t, bus.Address, keystore.Name, 30*time.Second)

	// The daemon never makes a keystore key.
	for _, args := range [][]string{{"run"}, {"identity", "--json"}} {
		out, code := runExit(t, amosd, append([]string{"--config", cfgPath}, args...)...)
		if code != exitUsage || !strings.Contains(out, "amosd identity --maker-id ID --serial-tag HEX") {
			t.Fatalf("%v without a key: exit %d\n%s", args, code, out)
		}
	}
	out, code = runExit(t, amosd, "--config", cfgPath, "identity", "--maker-id", "konka", "--serial-tag", "xyz")
	if code != exitUsage || !strings.Contains(out, "64 hex digits") {
		t.Fatalf("a bad serial tag: exit %d\n%s", code, out)
	}

	// The factory.
	serial := sha256.Sum256([]byte("IMEI 860000000000042"))
	chainFile := filepath.Join(dir, "chain.pem")
	out, code = runExit(t, amosd, "--config", cfgPath, "identity", "--json", "--maker-id", "konka", "--serial-tag", hex.EncodeToString(serial[:]), "--chain", chainFile)
	var ident struct {
		DeviceID    string `json:"device_id"`
		PublicKey   string `json:"public_key"`
		KeyType     string `json:"key_type"`
		Backend     string `json:"backend"`
		ChainLength int    `json:"chain_length"`
		Generated   bool   `json:"generated"`
		Alias       string `json:"key_alias"`
	}
	if err := json.Unmarshal([]byte(out), &ident); err != nil || code != 0 {
		t.Fatalf("identity at the factory: exit %d, %v\n%s", code, err, out)
	}
	if !ident.Generated || ident.KeyType != "p256" || ident.Backend != "keystore" || ident.ChainLength != 3 || ident.Alias != "amosd-device" || len(ident.PublicKey) != 130 {
		t.Fatalf("identity: %+v", ident)
	}
	pemChain, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	var chain [][]byte
	for rest := pemChain; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		chain = append(chain, block.Bytes)
	}
	if len(chain) != 3 {
		t.Fatalf("--chain wrote %d certificates, want 3", len(chain))
	}
	out, code = runExit(t, amosd, "--config", cfgPath, "identity", "--json", "--maker-id", "konka", "--serial-tag", hex.EncodeToString(serial[:]))
	if code != 0 || !strings.Contains(out, `"generated": false`) || !strings.Contains(out, ident.PublicKey) {
		t.Fatalf("identity again: exit %d\n%s", code, out)
	}
	// The maker certifies the key (as amos-collector maker certify does).
	pub, err := proof.ParsePublicKey(ident.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	maker, err := proof.NewKeySigner(bytes.Repeat([]byte{3}, proof.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := (&proof.Certificate{DevicePublicKey: pub, SerialTag: serial, MakerID: "konka", Model: "Amos T1", IssuedAt: time.Now().Unix()}).Sign(maker)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(persist, "device.cert"), cert, 0o600); err != nil {
		t.Fatal(err)
	}

	out, _ = runExit(t, amosd, "--config", cfgPath, "selftest") // fails: no daemon runs yet
	for _, want := range []string{"WARN keystore", "DEVELOPMENT", "ok   key ", "key.backend keystore, p256 key", "ok   attestation", "a chain of 3 certificates", "ok   certificate"} {
		if !strings.Contains(out, want) {
			t.Errorf("selftest does not say %q:\n%s", want, out)
		}
	}

	// The daemon.
	d := startDaemon(t, amosd, cfgPath)
	d.waitLog("sync: ok: 1 accepted")
	var rec *proof.Record
	select {
	case rec = <-genesis:
	case <-time.After(time.Minute):
		t.Fatal("no genesis reached the server")
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("amosd exit %d\n%s", code, d.log.String())
	}
	t.Logf("amosd:\n%s", d.log.String())
	g, _ := rec.Genesis()
	if g.PublicKey != pub || rec.DeviceID.String() != ident.DeviceID || g.Cert == nil || g.Cert.MakerID != "konka" {
		t.Fatalf("genesis of key %s device %s cert %+v, want the keystore's key %s", g.PublicKey, rec.DeviceID, g.Cert, pub)
	}
	if len(g.Attestation) != 3 {
		t.Fatalf("the genesis carries %d certificates, want the keystore's chain of 3", len(g.Attestation))
	}
	for i := range chain {
		if !bytes.Equal(g.Attestation[i], chain[i]) {
			t.Fatalf("certificate %d of the genesis is not the keystore's", i)
		}
	}
	if err := rec.Verify(pub); err != nil {
		t.Fatalf("the genesis signed in the keystore does not verify: %v", err)
	}
}

// TestIdentityFactoryFlags: --maker-id and --serial-tag go with key.backend keystore
// only, and must be a maker_id and a 32-byte serial tag; nothing is created on a
// refusal.
func TestIdentityFactoryFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, key string) string {
		p := filepath.Join(dir, name)
		js := `{"data_dir": "` + filepath.Join(dir, "data") + `", "key_dir": "` + filepath.Join(dir, "persist") + `", "server_url": "http://127.0.0.1:9", "allow_insecure_http": true, "bus": "unix:path=/nonexistent", "key": ` + key + `}`
		if err := os.WriteFile(p, []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file, ks := write("file.json", `{"type": "p256"}`), write("keystore.json", `{"backend": "keystore"}`)
	tag := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"file backend", []string{"--config", file, "identity", "--maker-id", "konka", "--serial-tag", tag}, exitUsage, `key.backend is "file"`},
		{"bad maker", []string{"--config", ks, "identity", "--maker-id", "Konka!", "--serial-tag", tag}, exitUsage, "[a-z0-9-]{1,32}"},
		{"short tag", []string{"--config", ks, "identity", "--maker-id", "konka", "--serial-tag", "abcd"}, exitUsage, "64 hex digits"},
		{"no keystore", []string{"--config", ks, "identity", "--maker-id", "konka", "--serial-tag", tag}, exitFailed, "keystore unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb, func(string) string { return "" }); code != tc.code || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, tc.code, errb.String(), tc.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "persist", "device-p256.key")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a key was made (%v)", err)
			}
		})
	}
}
