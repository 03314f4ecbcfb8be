package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"amos.example/amosd/proof"
)

// Files in key_dir (docs/protocol.md).
const (
	KeyFile   = "device.key"
	CertFile  = "device.cert"
	EpochFile = "epoch"
	// ConsentFile keeps the owner's last consent decision beside the key, so that it
	// survives the loss of the store (docs/eligibility.md, consent).
	ConsentFile = "consent"
)

// ErrIdentity is wrapped by errors about the key files that an operator must fix; the
// command line exits 2 on them.
var ErrIdentity = errors.New("device identity error")

// ErrEpochDamaged is wrapped (with ErrIdentity) by ReadEpoch when key_dir/epoch exists but
// does not hold an epoch: the daemon rebuilds it from the store (docs/store-and-epochs.md).
var ErrEpochDamaged = fmt.Errorf("%w: damaged epoch file", ErrIdentity)

// Identity is the device's key and maker certificate.
type Identity struct {
	KeyDir    string
	Signer    proof.Signer
	PublicKey proof.PublicKey
	DeviceID  proof.DeviceID
	// Generated says the key was created by this load: the device's first start.
	Generated bool
	// Cert is the maker certificate when present and naming this key; nil otherwise.
	Cert *proof.Certificate
	// CertProblem says why a present device.cert is treated as absent, "" if it is not.
	CertProblem string
	// Warnings are problems that do not stop the daemon (selftest shows them).
	Warnings []string
}

// Load reads the device key from keyDir, generating it on first start, and
// the maker certificate if there is one. A key file that group or others can read, or
// that is not a 32-byte seed, is refused with an error wrapping ErrIdentity.
func Load(keyDir string) (*Identity, error) {
	id := &Identity{KeyDir: keyDir}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, fmt.Errorf("key_dir %s: %w", keyDir, err)
	}
	if fi, err := os.Stat(keyDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		id.Warnings = append(id.Warnings, fmt.Sprintf("key_dir %s: mode %04o, want 0700 (chmod 700 %s)", keyDir, fi.Mode().Perm(), keyDir))
	}
	path := filepath.Join(keyDir, KeyFile)
	certPath := filepath.Join(keyDir, CertFile)
	seed, err := ReadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, cerr := os.Lstat(certPath); cerr == nil {
			// Never mint under a new key while a certificate for the old one is there:
			// the old key's device would silently become another, uncertified one.
			return nil, fmt.Errorf("%s: %w: missing, but %s is present: the key it certifies is lost; %s",
				path, ErrIdentity, certPath, reprovision(keyDir))
		}
		seed = make([]byte, proof.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("generate device key: %w", err)
		}
		if err := writeFileDurably(path, seed, 0o600); err != nil {
			return nil, fmt.Errorf("write device key: %w", err)
		}
		id.Generated = true
	} else if err != nil {
		return nil, err
	}
	signer, err := proof.NewKeySigner(seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrIdentity, err)
	}
	id.Signer, id.PublicKey, id.DeviceID = signer, signer.PublicKey(), signer.PublicKey().DeviceID()

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

// ReadKey reads a key file after checking that only its owner can read it.
func ReadKey(path string) ([]byte, error) {
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
	b, err := io.ReadAll(io.LimitReader(f, proof.SeedSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrIdentity, err)
	}
	if len(b) != proof.SeedSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, want a raw %d-byte Ed25519 seed; the key is lost; %s",
			path, ErrIdentity, fi.Size(), proof.SeedSize, reprovision(filepath.Dir(path)))
	}
	return b, nil
}

// reprovision says what the factory must do for a handset whose device key is lost.
func reprovision(keyDir string) string {
	return fmt.Sprintf("the factory must provision this handset again: remove %s and %s (keep epoch), let amosd make a new key, certify it (amosd identity --json; amos-collector maker certify) and write the certificate",
		filepath.Join(keyDir, KeyFile), filepath.Join(keyDir, CertFile))
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
