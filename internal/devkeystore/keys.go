package devkeystore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"amos.example/amosd/agent/keystore"
)

// Errors of the key operations; the D-Bus methods answer them with the error names of
// the API (docs/dbus-api.md).
var (
	ErrNoKey   = errors.New("no such key")
	ErrExists  = errors.New("a key exists under this alias")
	ErrInvalid = errors.New("invalid argument")
	ErrDenied  = errors.New("access denied")
)

// Files of a key in the state directory: DIR/UID/ALIAS.key is the raw 32-byte P-256
// private scalar (mode 0600), DIR/UID/ALIAS.chain the attestation chain as PEM
// certificates, leaf first. The key file is written last: a key exists once it is there.
const (
	keySuffix   = ".key"
	chainSuffix = ".chain"
	scalarSize  = 32
)

// Key is a key of the store: its public key (65-byte uncompressed point) and chain.
type Key struct {
	PublicKey []byte
	Chain     [][]byte
}

// uidDir returns the directory of uid's keys.
func (s *Service) uidDir(uid uint32) string {
	return filepath.Join(s.o.StateDir, strconv.FormatUint(uint64(uid), 10))
}

// checkAlias refuses an alias of the wrong form (a path, say).
func checkAlias(alias string) error {
	if !keystore.ValidAlias(alias) {
		return fmt.Errorf("%w: alias %q: want 1 to %d of [A-Za-z0-9._-], not starting with '.'", ErrInvalid, alias, keystore.MaxAliasLen)
	}
	return nil
}

// Generate makes a new key for uid under alias, attested with challenge by the
// development authority. ErrExists if uid has one: a key is never replaced.
func (s *Service) Generate(uid uint32, alias string, challenge []byte) (Key, error) {
	if err := checkAlias(alias); err != nil {
		return Key{}, err
	}
	if len(challenge) == 0 || len(challenge) > keystore.MaxChallengeLen {
		return Key{}, fmt.Errorf("%w: challenge of %d bytes, want 1 to %d", ErrInvalid, len(challenge), keystore.MaxChallengeLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.uidDir(uid)
	keyPath := filepath.Join(dir, alias+keySuffix)
	if _, err := os.Lstat(keyPath); err == nil {
		return Key{}, fmt.Errorf("%w: uid %d already has key %q", ErrExists, uid, alias)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate: %w", err)
	}
	chain, err := s.o.Authority.Attest(&priv.PublicKey, s.attestOptions(challenge))
	if err != nil {
		return Key{}, fmt.Errorf("attest: %w", err)
	}
	scalar, err := priv.Bytes()
	if err != nil {
		return Key{}, fmt.Errorf("generate: %w", err)
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return Key{}, fmt.Errorf("generate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, err
	}
	var pemChain bytes.Buffer
	for _, der := range chain {
		pem.Encode(&pemChain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if err := writeFile(filepath.Join(dir, alias+chainSuffix), pemChain.Bytes()); err != nil {
		return Key{}, err
	}
	if err := writeFile(keyPath, scalar); err != nil {
		return Key{}, err
	}
	return Key{PublicKey: pub, Chain: chain}, nil
}

// Get returns uid's key under alias; ErrNoKey if there is none.
func (s *Service) Get(uid uint32, alias string) (Key, error) {
	if err := checkAlias(alias); err != nil {
		return Key{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	priv, err := s.load(uid, alias)
	if err != nil {
		return Key{}, err
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return Key{}, err
	}
	chain, err := readChain(filepath.Join(s.uidDir(uid), alias+chainSuffix))
	if err != nil {
		return Key{}, err
	}
	return Key{PublicKey: pub, Chain: chain}, nil
}

// Sign signs a SHA-256 digest with uid's key under alias; the signature is ASN.1 DER,
// as Android Keystore returns it.
func (s *Service) Sign(uid uint32, alias string, digest []byte) ([]byte, error) {
	if err := checkAlias(alias); err != nil {
		return nil, err
	}
	if len(digest) != keystore.DigestSize {
		return nil, fmt.Errorf("%w: digest of %d bytes, want a %d-byte SHA-256 digest", ErrInvalid, len(digest), keystore.DigestSize)
	}
	s.mu.Lock()
	priv, err := s.load(uid, alias)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return ecdsa.SignASN1(rand.Reader, priv, digest)
}

// load reads uid's private key under alias.
func (s *Service) load(uid uint32, alias string) (*ecdsa.PrivateKey, error) {
	path := filepath.Join(s.uidDir(uid), alias+keySuffix)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: uid %d has no key %q", ErrNoKey, uid, alias)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, scalarSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) != scalarSize {
		return nil, fmt.Errorf("%s: %d bytes, want a %d-byte P-256 scalar", path, len(b), scalarSize)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// readChain reads a chain file (PEM certificates, leaf first); absent, the chain is
// empty.
func readChain(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return [][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	chain := [][]byte{}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		chain = append(chain, block.Bytes)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, fmt.Errorf("%s: not PEM certificates", path)
	}
	return chain, nil
}

// writeFile writes path (mode 0600) through a temporary file and syncs it, so that a
// crash leaves the whole file or none.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
