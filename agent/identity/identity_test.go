package identity_test

import (
	"bytes"
	"errors"
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

// certify writes key_dir/device.cert for key, signed by a throwaway maker.
func certify(t *testing.T, dir string, key proof.PublicKey) {
	t.Helper()
	maker, err := proof.NewKeySigner(bytes.Repeat([]byte{9}, proof.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	c := &proof.Certificate{DevicePublicKey: key, MakerID: "acme", Model: "A1", IssuedAt: 1_800_000_000}
	b, err := c.Sign(maker)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, identity.CertFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFileBackend: each key type has its own file, generated at the first start and
// read at the next; the certificate is matched against the key of that type.
func TestFileBackend(t *testing.T) {
	for _, typ := range []proof.KeyType{proof.KeyEd25519, proof.KeyP256} {
		t.Run(typ.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			o := identity.Options{KeyDir: dir, Type: typ}
			id, err := identity.Open(testenv.Context(t, time.Minute), o)
			if err != nil {
				t.Fatal(err)
			}
			if !id.Generated || id.Backend != identity.BackendFile || id.PublicKey.Type() != typ || id.Chain != nil {
				t.Fatalf("first open: generated %v, backend %s, key type %v, chain %d", id.Generated, id.Backend, id.PublicKey.Type(), len(id.Chain))
			}
			fi, err := os.Stat(filepath.Join(dir, identity.KeyFileOf(typ)))
			if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
				t.Fatalf("key file: %v %v", err, fi)
			}
			certify(t, dir, id.PublicKey)
			again, err := identity.Open(testenv.Context(t, time.Minute), o)
			if err != nil {
				t.Fatal(err)
			}
			if again.Generated || again.PublicKey != id.PublicKey || again.Cert == nil || again.CertProblem != "" {
				t.Fatalf("second open: generated %v, same key %v, cert %v (%s)", again.Generated, again.PublicKey == id.PublicKey, again.Cert != nil, again.CertProblem)
			}
			msg := []byte("record")
			sig, err := again.Signer.Sign(msg)
			if err != nil || !id.PublicKey.Verify(msg, sig) {
				t.Fatalf("signature: %v", err)
			}
		})
	}
	// Load is the Ed25519 file backend.
	dir := t.TempDir()
	id, err := identity.Load(dir)
	if err != nil || id.PublicKey.Type() != proof.KeyEd25519 || id.Backend != identity.BackendFile {
		t.Fatalf("Load: %v", err)
	}
}

// TestIdentityErrors: a key file of the wrong form or mode, a key of the other type,
// a file key beside the keystore backend, and a missing key under a certificate stop
// the daemon (ErrIdentity) with a message that names the file and the fix.
func TestIdentityErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       identity.Options
		files   map[string][]byte // in key_dir, mode 0600
		want    []string
		created string // a file that must not have been created
	}{
		{"p256 beside an ed25519 key", identity.Options{Type: proof.KeyP256}, map[string][]byte{identity.KeyFile: make([]byte, 32)},
			[]string{"key.type is p256 but key_dir holds the ed25519 key", identity.KeyFile, `set key.type to "ed25519"`}, identity.KeyFileP256},
		{"ed25519 beside a p256 key", identity.Options{}, map[string][]byte{identity.KeyFileP256: make([]byte, 32)},
			[]string{"key.type is ed25519 but key_dir holds the p256 key", identity.KeyFileP256}, identity.KeyFile},
		{"short p256 key", identity.Options{Type: proof.KeyP256}, map[string][]byte{identity.KeyFileP256: make([]byte, 31), identity.CertFile: []byte("c")},
			[]string{"31 bytes, want a raw 32-byte P-256 private scalar", "the factory must provision this handset again", identity.KeyFileP256}, ""},
		{"zero p256 key", identity.Options{Type: proof.KeyP256}, map[string][]byte{identity.KeyFileP256: make([]byte, 32)},
			[]string{identity.KeyFileP256}, ""},
		{"p256 key lost under a certificate", identity.Options{Type: proof.KeyP256}, map[string][]byte{identity.CertFile: []byte("c")},
			[]string{"missing, but", identity.KeyFileP256, "the factory must provision this handset again"}, identity.KeyFileP256},
		{"keystore beside a file key", identity.Options{Backend: identity.BackendKeystore, Keystore: keystore.Options{Bus: "unix:path=/nonexistent"}},
			map[string][]byte{identity.KeyFile: make([]byte, 32)},
			[]string{"key.backend is keystore but key_dir holds the file key", identity.KeyFile, `set key.backend to "file"`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.o.KeyDir = dir
			for name, b := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := identity.Open(testenv.Context(t, time.Minute), tc.o)
			if !errors.Is(err, identity.ErrIdentity) {
				t.Fatalf("%v, want ErrIdentity", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
			if tc.created != "" {
				if _, err := os.Stat(filepath.Join(dir, tc.created)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s was created (%v)", tc.created, err)
				}
			}
			t.Log(err)
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, identity.KeyFileP256), make([]byte, 32), 0o644)
	if _, err := identity.Open(testenv.Context(t, time.Minute), identity.Options{KeyDir: dir, Type: proof.KeyP256}); !errors.Is(err, identity.ErrIdentity) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a p256 key of mode 0644: %v", err)
	}
}

// TestKeystoreBackend: against the development keystore on a real bus, the daemon
// never makes a key (an identity error that names the factory's command), the
// factory's challenge makes one with its chain, and the next open reads it back with
// its certificate. An unreachable keystore is no identity error (it may come up).
func TestKeystoreBackend(t *testing.T) {
	bus := testenv.StartBus(t)
	keystoretest.Start(t, bus)
	ctx := testenv.Context(t, time.Minute)
	dir := filepath.Join(t.TempDir(), "keys")
	cfg := config.Default()
	cfg.KeyDir, cfg.Bus, cfg.Key.Backend = dir, bus.Address, config.KeyBackendKeystore
	o := identity.OptionsFor(&cfg)
	if o.Alias != config.DefaultKeyAlias || o.Keystore.Bus != bus.Address || o.Backend != identity.BackendKeystore {
		t.Fatalf("OptionsFor: %+v", o)
	}

	_, err := identity.Open(ctx, o)
	if !errors.Is(err, identity.ErrIdentity) || !errors.Is(err, keystore.ErrNoKey) || !strings.Contains(err.Error(), "amosd identity --maker-id ID --serial-tag HEX") {
		t.Fatalf("open without a key: %v, want ErrIdentity naming the factory's command", err)
	}
	o.Challenge = proof.AttestationChallenge("acme", [32]byte{1, 2, 3})
	id, err := identity.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !id.Generated || id.Backend != identity.BackendKeystore || id.PublicKey.Type() != proof.KeyP256 || len(id.Chain) != 3 {
		t.Fatalf("factory open: generated %v, backend %s, key %v, chain %d", id.Generated, id.Backend, id.PublicKey.Type(), len(id.Chain))
	}
	for _, typ := range []proof.KeyType{proof.KeyEd25519, proof.KeyP256} {
		if _, err := os.Stat(filepath.Join(dir, identity.KeyFileOf(typ))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the keystore backend wrote %s", identity.KeyFileOf(typ))
		}
	}
	certify(t, dir, id.PublicKey)
	o.Challenge = nil
	again, err := identity.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Generated || again.PublicKey != id.PublicKey || again.Cert == nil || len(again.Chain) != 3 {
		t.Fatalf("daemon open: generated %v, same key %v, cert %v, chain %d", again.Generated, again.PublicKey == id.PublicKey, again.Cert != nil, len(again.Chain))
	}
	msg := []byte("record")
	if sig, err := again.Signer.Sign(msg); err != nil || !id.PublicKey.Verify(msg, sig) {
		t.Fatalf("keystore signature: %v", err)
	}

	// A certificate for a key the keystore lost: never a new key under it.
	o.Alias, o.Challenge = "another", []byte("challenge")
	if _, err := identity.Open(ctx, o); !errors.Is(err, identity.ErrIdentity) || !strings.Contains(err.Error(), "the key it certifies is lost") {
		t.Fatalf("generate under a certificate: %v", err)
	}

	o.Keystore.Bus = "unix:path=" + filepath.Join(t.TempDir(), "none")
	if _, err := identity.Open(ctx, o); !errors.Is(err, keystore.ErrUnavailable) || errors.Is(err, identity.ErrIdentity) {
		t.Fatalf("unreachable keystore: %v, want ErrUnavailable and no identity error", err)
	}
}

// TestKeystoreRefusesAmosd: a keystore that does not allow amosd's uid is an identity
// error that says whom to ask.
func TestKeystoreRefusesAmosd(t *testing.T) {
	bus := testenv.StartBus(t)
	keystoretest.Start(t, bus, 4242)
	o := identity.Options{KeyDir: t.TempDir(), Backend: identity.BackendKeystore, Keystore: keystore.Options{Bus: bus.Address}, Alias: "amosd-device"}
	_, err := identity.Open(testenv.Context(t, time.Minute), o)
	if !errors.Is(err, identity.ErrIdentity) || !errors.Is(err, keystore.ErrAccessDenied) || !strings.Contains(err.Error(), "allowed uids") {
		t.Fatalf("%v, want ErrIdentity and ErrAccessDenied", err)
	}
}
