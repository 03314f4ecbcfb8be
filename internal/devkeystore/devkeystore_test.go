package devkeystore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"amos.example/amosd/internal/devattest"
)

func newService(t *testing.T, dir string, a *devattest.Authority) *Service {
	t.Helper()
	s, err := New(Options{StateDir: dir, Authority: a, AllowUIDs: []uint32{0}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeysPerUID: keys are kept per caller uid, survive a restart, in private files;
// one uid never sees or uses another's key.
func TestKeysPerUID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, created, err := LoadAuthority(filepath.Join(t.TempDir(), "authority"), "test")
	if err != nil || !created {
		t.Fatalf("LoadAuthority: %v, created %v", err, created)
	}
	s := newService(t, dir, a)
	k, err := s.Generate(1000, "amosd-device", []byte("challenge"))
	if err != nil {
		t.Fatal(err)
	}
	if len(k.PublicKey) != 65 || len(k.Chain) != 3 {
		t.Fatalf("key of %d bytes, chain of %d", len(k.PublicKey), len(k.Chain))
	}
	if _, err := s.Generate(1000, "amosd-device", []byte("again")); !errors.Is(err, ErrExists) {
		t.Fatalf("generate twice: %v, want ErrExists", err)
	}
	if _, err := s.Get(2000, "amosd-device"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("another uid's Get: %v, want ErrNoKey", err)
	}
	if _, err := s.Sign(2000, "amosd-device", make([]byte, 32)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("another uid's Sign: %v, want ErrNoKey", err)
	}
	for path, want := range map[string]os.FileMode{
		dir:                        0o700,
		filepath.Join(dir, "1000"): 0o700,
		filepath.Join(dir, "1000", "amosd-device.key"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v, want %04o", path, err, fi.Mode().Perm(), want)
		}
	}

	s2 := newService(t, dir, a) // a restart
	got, err := s2.Get(1000, "amosd-device")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.PublicKey) != string(k.PublicKey) || len(got.Chain) != 3 || string(got.Chain[0]) != string(k.Chain[0]) {
		t.Fatal("the key or its chain changed across a restart")
	}
	digest := sha256.Sum256([]byte("record"))
	sig, err := s2.Sign(1000, "amosd-device", digest[:])
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		t.Fatal("the DER signature does not verify")
	}
}

// TestArguments: aliases that are not names, challenges and digests of the wrong
// size are ErrInvalid.
func TestArguments(t *testing.T) {
	a, _, err := LoadAuthority(filepath.Join(t.TempDir(), "authority"), "test")
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, filepath.Join(t.TempDir(), "state"), a)
	for _, alias := range []string{"", "../x", "a/b", ".hidden", string(make([]byte, 65))} {
		if _, err := s.Generate(0, alias, []byte("c")); !errors.Is(err, ErrInvalid) {
			t.Errorf("alias %q: %v, want ErrInvalid", alias, err)
		}
	}
	if _, err := s.Generate(0, "k", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("no challenge: %v", err)
	}
	if _, err := s.Generate(0, "k", make([]byte, 129)); !errors.Is(err, ErrInvalid) {
		t.Errorf("challenge of 129 bytes: %v", err)
	}
	if _, err := s.Generate(0, "k", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(0, "k", make([]byte, 20)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a 20-byte digest: %v", err)
	}
}

// TestStateDirMode: a state directory others may enter is refused; LoadAuthority
// loads the authority it saved.
func TestStateDirMode(t *testing.T) {
	adir := filepath.Join(t.TempDir(), "authority")
	a, created, err := LoadAuthority(adir, "test")
	if err != nil || !created {
		t.Fatal(err)
	}
	b, created, err := LoadAuthority(adir, "test")
	if err != nil || created || !b.Root().Equal(a.Root()) {
		t.Fatalf("second LoadAuthority: %v, created %v, same root %v", err, created, err == nil && b.Root().Equal(a.Root()))
	}
	dir := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if _, err := New(Options{StateDir: dir, Authority: a, AllowUIDs: []uint32{0}}); err == nil {
		t.Fatal("a state directory of mode 0755 was accepted")
	} else {
		t.Log(err)
	}
	if _, err := New(Options{StateDir: filepath.Join(t.TempDir(), "x"), Authority: a}); err == nil {
		t.Fatal("no allowed uid was accepted")
	}
}
