package selftest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/keystoretest"
	"amos.example/amosd/rigs/testenv"
)

// find returns the check called name, failing the test if there is none.
func find(t *testing.T, checks []Check, name string) Check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, checks)
	return Check{}
}

func wantCheck(t *testing.T, c Check, ok, warn bool, detail, fix string) {
	t.Helper()
	t.Logf("%+v", c)
	if c.OK != ok || c.Warn != warn || !strings.Contains(c.Detail, detail) || !strings.Contains(c.Fix, fix) {
		t.Errorf("%s: ok %v warn %v detail %q fix %q; want ok %v warn %v, %q, fix %q", c.Name, c.OK, c.Warn, c.Detail, c.Fix, ok, warn, detail, fix)
	}
}

// TestFileKeyTypes: the file backend reports its key type and that it has no chain,
// and fails on a key file of the other type.
func TestFileKeyTypes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	cfg := config.Default()
	cfg.KeyDir, cfg.Key.Type = dir, config.KeyTypeP256
	id, err := identity.Open(context.Background(), identity.OptionsFor(&cfg)) // makes device-p256.key
	if err != nil {
		t.Fatal(err)
	}
	checks := checkKey(context.Background(), &cfg)
	wantCheck(t, find(t, checks, "key"), true, false, "device_id "+id.DeviceID.String()+" (key.backend file, p256 key", "")
	wantCheck(t, find(t, checks, "attestation"), true, false, "none: a file key has no attestation chain", "")
	cfg.Key.Type = config.KeyTypeEd25519
	wantCheck(t, find(t, checkKey(context.Background(), &cfg), "key"), false, false, "key.type is ed25519 but key_dir holds the p256 key", `set key.type to "p256"`)
	cfg.Key.Backend = config.KeyBackendKeystore
	wantCheck(t, find(t, checkKey(context.Background(), &cfg), "key"), false, false, "key.backend is keystore but key_dir holds the file key", `set key.backend to "file"`)
}

// TestKeystoreChecks: against the development keystore on a real bus: what it is (a
// warning: software), a missing key with the factory's fix, then the key and its chain;
// and the fix when nobody owns com.amos.Keystore1.
func TestKeystoreChecks(t *testing.T) {
	bus := testenv.StartBus(t)
	cfg := config.Default()
	cfg.KeyDir, cfg.Bus, cfg.Key.Backend = filepath.Join(t.TempDir(), "keys"), bus.Address, config.KeyBackendKeystore
	ctx := testenv.Context(t, time.Minute)

	wantCheck(t, find(t, checkKey(ctx, &cfg), "keystore"), false, false, "keystore unavailable", "amos-keystored")

	keystoretest.Start(t, bus)
	checks := checkKey(ctx, &cfg)
	wantCheck(t, find(t, checks, "keystore"), true, true, "DEVELOPMENT", "TEE or StrongBox")
	wantCheck(t, find(t, checks, "key"), false, false, `the keystore has no key "amosd-device"`, "amosd identity --maker-id ID --serial-tag HEX")

	c, err := keystore.Dial(ctx, keystore.Options{Bus: bus.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k, err := c.GenerateAttestedKey(ctx, cfg.Key.Alias, proof.AttestationChallenge("acme", [32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	checks = checkKey(ctx, &cfg)
	wantCheck(t, find(t, checks, "key"), true, false, "device_id "+k.PublicKey.DeviceID().String()+` (key.backend keystore, p256 key "amosd-device")`, "")
	wantCheck(t, find(t, checks, "attestation"), true, false, "a chain of 3 certificates", "")
	wantCheck(t, find(t, checks, "certificate"), false, false, "is missing", "maker certify")
	if _, err := os.Stat(cfg.KeyDir); !os.IsNotExist(err) {
		t.Errorf("selftest created key_dir (%v)", err)
	}
}
