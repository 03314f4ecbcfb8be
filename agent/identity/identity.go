package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/proof"
)

// Files in key_dir (docs/protocol.md, docs/files.md).
const (
	// KeyFile is the file backend's Ed25519 key: the raw 32-byte seed.
	KeyFile = "device.key"
	// KeyFileP256 is the file backend's P-256 key: the raw 32-byte private scalar.
	KeyFileP256 = "device-p256.key"
	CertFile    = "device.cert"
	EpochFile   = "epoch"
	// ConsentFile keeps the owner's last consent decision beside the key, so that it
	// survives the loss of the store (docs/eligibility.md, consent).
	ConsentFile = "consent"
)

// Key backends (docs/config.md, key.backend).
const (
	BackendFile     = config.KeyBackendFile
	BackendKeystore = config.KeyBackendKeystore
)

// KeyFileOf returns the name of the file backend's key file for a key of type t.
func KeyFileOf(t proof.KeyType) string {
	if t == proof.KeyP256 {
		return KeyFileP256
	}
	return KeyFile
}

// ErrIdentity is wrapped by errors about the key files that an operator must fix; the
// command line exits 2 on them.
var ErrIdentity = errors.New("device identity error")

// ErrEpochDamaged is wrapped (with ErrIdentity) by ReadEpoch when key_dir/epoch exists but
// does not hold an epoch: the daemon rebuilds it from the store (docs/store-and-epochs.md).
var ErrEpochDamaged = fmt.Errorf("%w: damaged epoch file", ErrIdentity)

// Identity is the device's key and maker certificate.
type Identity struct {
	KeyDir string
	// Backend is where the key lives: BackendFile or BackendKeystore.
	Backend   string
	Signer    proof.Signer
	PublicKey proof.PublicKey
	DeviceID  proof.DeviceID
	// Chain is the key's attestation chain (DER, leaf first) when the keystore has one;
	// the genesis carries it. Nil for a file key.
	Chain [][]byte
	// Generated says the key was created by this load: the device's first start, or
	// the factory's amosd identity.
	Generated bool
	// Cert is the maker certificate when present and naming this key; nil otherwise.
	Cert *proof.Certificate
	// CertProblem says why a present device.cert is treated as absent, "" if it is not.
	CertProblem string
	// Warnings are problems that do not stop the daemon (selftest shows them).
	Warnings []string
}

// Options say where the device key is (docs/config.md, key).
type Options struct {
	KeyDir string
	// Backend is BackendFile ("" too) or BackendKeystore.
	Backend string
	// Type is the file backend's key type: proof.KeyEd25519 (0 too) or proof.KeyP256.
	Type proof.KeyType
	// Keystore says where com.amos.Keystore1 is (keystore backend).
	Keystore keystore.Options
	// Alias names the key in the keystore (keystore backend).
	Alias string
	// Challenge, for the keystore backend: when the keystore has no key under Alias, one
	// is generated, attested with this challenge (the factory's amosd identity). Nil: a
	// missing key is an identity error (the daemon never makes a keystore key).
	Challenge []byte
}

// OptionsFor returns the options of cfg's key: its backend, type and alias, and the
// bus of the keystore.
func OptionsFor(cfg *config.Config) Options {
	o := Options{KeyDir: cfg.KeyDir, Backend: cfg.Key.Backend, Keystore: keystore.Options{Bus: cfg.Bus}, Alias: cfg.Key.Alias}
	if cfg.Key.EffectiveType() == config.KeyTypeP256 {
		o.Type = proof.KeyP256
	}
	return o
}

// Load reads the device's Ed25519 key file from keyDir, generating it on first start,
// and the maker certificate if there is one: Open with the default file backend.
func Load(keyDir string) (*Identity, error) {
	return Open(context.Background(), Options{KeyDir: keyDir})
}

// Open reads the device key from its backend and the maker certificate of key_dir if
// there is one. The file backend generates its key on first start; a key file that
// group or others can read, or of the wrong size, is refused with an error wrapping
// ErrIdentity, and so is a key file of the other type, or any key file with the
// keystore backend: a handset never silently becomes another device. The keystore
// backend reads its key from com.amos.Keystore1 (errors wrap keystore's: ErrUnavailable
// when it cannot be reached) and generates it only when o.Challenge is set.
func Open(ctx context.Context, o Options) (*Identity, error) {
	id := &Identity{KeyDir: o.KeyDir, Backend: BackendFile}
	if o.Backend == BackendKeystore {
		id.Backend = BackendKeystore
	}
	keyDir := o.KeyDir
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, fmt.Errorf("key_dir %s: %w", keyDir, err)
	}
	if fi, err := os.Stat(keyDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		id.Warnings = append(id.Warnings, fmt.Sprintf("key_dir %s: mode %04o, want 0700 (chmod 700 %s)", keyDir, fi.Mode().Perm(), keyDir))
	}
	var err error
	if id.Backend == BackendKeystore {
		err = id.openKeystore(ctx, o)
	} else {
		err = id.openFile(o)
	}
	if err != nil {
		return nil, err
	}
	certPath := filepath.Join(keyDir, CertFile)
	switch b, err := os.ReadFile(certPath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		id.CertProblem = fmt.Sprintf("%s: %v", certPath, err)
	default:
		c, err := proof.ParseCertificate(b)
		switch {
		case err != nil:
			id.CertProblem = fmt.Sprintf("%s: %v", certPath, err)
		case c.DevicePublicKey != id.PublicKey:
			id.CertProblem = fmt.Sprintf("%s certifies key %s, this device's key is %s", certPath, c.DevicePublicKey, id.PublicKey)
		default:
			id.Cert = c
		}
	}
	return id, nil
}

// openFile reads (or on first start generates) the file backend's key.
func (id *Identity) openFile(o Options) error {
	t := o.Type
	if t == 0 {
		t = proof.KeyEd25519
	}
	otherType := proof.KeyP256
	if t == proof.KeyP256 {
		otherType = proof.KeyEd25519
	}
	path := filepath.Join(o.KeyDir, KeyFileOf(t))
	if other := filepath.Join(o.KeyDir, KeyFileOf(otherType)); exists(other) {
		return fmt.Errorf("%s: %w: key.type is %s but key_dir holds the %s key %s: a new key type would make this handset another device; set key.type to %q, or provision the handset again (remove %s and %s, keep epoch; certify the new key)",
			path, ErrIdentity, t, otherType, other, otherType.String(), other, filepath.Join(o.KeyDir, CertFile))
	}
	certPath := filepath.Join(o.KeyDir, CertFile)
	secret, err := readKey(path, t)
	if errors.Is(err, fs.ErrNotExist) {
		if exists(certPath) {
			// Never mint under a new key while a certificate for the old one is there:
			// the old key's device would silently become another, uncertified one.
			return fmt.Errorf("%s: %w: missing, but %s is present: the key it certifies is lost; %s",
				path, ErrIdentity, certPath, reprovision(o.KeyDir, KeyFileOf(t)))
		}
		if t == proof.KeyP256 {
			secret, err = proof.GenerateP256()
		} else {
			secret = make([]byte, proof.SeedSize)
			_, err = rand.Read(secret)
		}
		if err != nil {
			return fmt.Errorf("generate device key: %w", err)
		}
		if err := writeFileDurably(path, secret, 0o600); err != nil {
			return fmt.Errorf("write device key: %w", err)
		}
		id.Generated = true
	} else if err != nil {
		return err
	}
	var signer proof.Signer
	if t == proof.KeyP256 {
		signer, err = proof.NewP256Signer(secret)
	} else {
		signer, err = proof.NewKeySigner(secret)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %v", path, ErrIdentity, err)
	}
	id.Signer, id.PublicKey, id.DeviceID = signer, signer.PublicKey(), signer.PublicKey().DeviceID()
	return nil
}

// openKeystore reads the key from com.amos.Keystore1, or generates it for the factory.
func (id *Identity) openKeystore(ctx context.Context, o Options) error {
	for _, t := range []proof.KeyType{proof.KeyEd25519, proof.KeyP256} {
		if p := filepath.Join(o.KeyDir, KeyFileOf(t)); exists(p) {
			return fmt.Errorf("%s: %w: key.backend is keystore but key_dir holds the file key %s: the keystore's key would make this handset another device; set key.backend to \"file\", or provision the handset again (remove %s and %s, keep epoch; amosd identity --maker-id ID --serial-tag HEX; certify the new key)",
				o.KeyDir, ErrIdentity, p, p, filepath.Join(o.KeyDir, CertFile))
		}
	}
	c, err := keystore.Dial(ctx, o.Keystore)
	if err != nil {
		return fmt.Errorf("key.backend keystore: %w (start the platform's keystore service, which owns %s)", err, keystore.Name)
	}
	defer c.Close()
	s, err := keystore.NewSigner(ctx, c, o.Alias)
	if errors.Is(err, keystore.ErrNoKey) {
		certPath := filepath.Join(o.KeyDir, CertFile)
		switch {
		case o.Challenge == nil:
			return fmt.Errorf("keystore key %q: %w: %w: the factory makes it: amosd identity --maker-id ID --serial-tag HEX, then certifies its public_key (amos-collector maker certify)",
				o.Alias, ErrIdentity, err)
		case exists(certPath):
			return fmt.Errorf("keystore key %q: %w: missing, but %s is present: the key it certifies is lost; remove %s (keep epoch), then amosd identity --maker-id ID --serial-tag HEX and certify the new key",
				o.Alias, ErrIdentity, certPath, certPath)
		}
		if _, err := c.GenerateAttestedKey(ctx, o.Alias, o.Challenge); err != nil {
			return fmt.Errorf("keystore: generate key %q: %w", o.Alias, err)
		}
		id.Generated = true
		s, err = keystore.NewSigner(ctx, c, o.Alias)
	}
	switch {
	case errors.Is(err, keystore.ErrAccessDenied):
		return fmt.Errorf("keystore key %q: %w: %w (let amosd's uid %d use %s: the keystore's allowed uids and the bus policy)", o.Alias, ErrIdentity, err, os.Getuid(), keystore.Name)
	case err != nil:
		return fmt.Errorf("keystore key %q: %w", o.Alias, err)
	}
	id.Signer, id.PublicKey, id.DeviceID, id.Chain = s, s.PublicKey(), s.PublicKey().DeviceID(), s.Chain()
	return nil
}

// exists reports whether path names a file (of any kind).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// ReadKey reads an Ed25519 key file (a raw 32-byte seed) after checking that only
// its owner can read it.
func ReadKey(path string) ([]byte, error) { return readKey(path, proof.KeyEd25519) }

// ReadKeyOf reads a key file of type t: a raw 32-byte Ed25519 seed or P-256 scalar,
// after checking that only its owner can read it.
func ReadKeyOf(path string, t proof.KeyType) ([]byte, error) { return readKey(path, t) }

func readKey(path string, t proof.KeyType) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w: %v", path, ErrIdentity, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: %w: not a regular file", path, ErrIdentity)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%s: %w: mode %04o lets others read the device key, want 0600 (chmod 600 %s)", path, ErrIdentity, fi.Mode().Perm(), path)
	}
	size, what := proof.SeedSize, "Ed25519 seed"
	if t == proof.KeyP256 {
		size, what = proof.P256ScalarSize, "P-256 private scalar"
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(size)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrIdentity, err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%s: %w: %d bytes, want a raw %d-byte %s; the key is lost; %s",
			path, ErrIdentity, fi.Size(), size, what, reprovision(filepath.Dir(path), filepath.Base(path)))
	}
	return b, nil
}

// reprovision says what the factory must do for a handset whose device key is lost.
func reprovision(keyDir, keyFile string) string {
	return fmt.Sprintf("the factory must provision this handset again: remove %s and %s (keep epoch), let amosd make a new key, certify it (amosd identity --json; amos-collector maker certify) and write the certificate",
		filepath.Join(keyDir, keyFile), filepath.Join(keyDir, CertFile))
}

// ReadEpoch reads key_dir/epoch: the epoch as decimal ASCII. ok is false if the file
// does not exist.
func ReadEpoch(keyDir string) (epoch uint32, ok bool, err error) {
	path := filepath.Join(keyDir, EpochFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", path, err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, false, fmt.Errorf("%s: %w: %q is not an epoch (a decimal number from 1)", path, ErrEpochDamaged, clipBytes(b))
	}
	return uint32(n), true, nil
}

// clipBytes shortens what a damaged file holds for an error message.
func clipBytes(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// ReadConsent reads key_dir/consent: "granted" or "revoked" and a newline. ok is false if
// the file does not exist or does not hold one of them (err then says why).
func ReadConsent(keyDir string) (granted, ok bool, err error) {
	path := filepath.Join(keyDir, ConsentFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("%s: %w", path, err)
	}
	switch string(b) {
	case "granted\n":
		return true, true, nil
	case "revoked\n":
		return false, true, nil
	}
	return false, false, fmt.Errorf("%s: %q is not \"granted\" or \"revoked\"", path, clipBytes(b))
}

// WriteConsent replaces key_dir/consent durably.
func WriteConsent(keyDir string, granted bool) error {
	v := "revoked\n"
	if granted {
		v = "granted\n"
	}
	return writeFileDurably(filepath.Join(keyDir, ConsentFile), []byte(v), 0o600)
}

// RemoveConsent deletes key_dir/consent (a wiped data partition: a new owner decides).
func RemoveConsent(keyDir string) error {
	err := os.Remove(filepath.Join(keyDir, ConsentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// WriteEpoch replaces key_dir/epoch durably (written, synced, renamed, directory synced).
func WriteEpoch(keyDir string, epoch uint32) error {
	return writeFileDurably(filepath.Join(keyDir, EpochFile), []byte(strconv.FormatUint(uint64(epoch), 10)+"\n"), 0o600)
}

// writeFileDurably writes path through a temporary file, so that a crash leaves the
// old contents or the new, never a mix.
func writeFileDurably(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
