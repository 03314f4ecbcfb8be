package proof

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Sizes of the fixed-width values of docs/protocol.md.
const (
	PublicKeySize = ed25519.PublicKeySize
	SignatureSize = ed25519.SignatureSize
	SeedSize      = ed25519.SeedSize
	HashSize      = sha256.Size
)

// PublicKey is an Ed25519 public key.
type PublicKey [PublicKeySize]byte

// Signature is an Ed25519 signature.
type Signature [SignatureSize]byte

// Hash is a SHA-256 digest: a record hash or a device_id.
type Hash [HashSize]byte

// DeviceID is SHA-256 of the device public key (docs/protocol.md).
type DeviceID = Hash

// String returns the lowercase hex form used in logs, status and the collector's URLs.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// String returns the lowercase hex form of the key.
func (k PublicKey) String() string { return hex.EncodeToString(k[:]) }

// DeviceID returns SHA-256 of the key, the device_id of docs/protocol.md.
func (k PublicKey) DeviceID() DeviceID { return sha256.Sum256(k[:]) }

// Verify reports whether sig is a valid signature of msg by k.
func (k PublicKey) Verify(msg []byte, sig Signature) bool {
	return ed25519.Verify(ed25519.PublicKey(k[:]), msg, sig[:])
}

// HashRecord returns the record hash of docs/protocol.md: SHA-256 of all bytes of an encoded
// record, signature included.
func HashRecord(encoded []byte) Hash { return sha256.Sum256(encoded) }

// ParseHash decodes 64 lowercase or uppercase hex digits into a Hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if err := decodeHexInto(h[:], s); err != nil {
		return Hash{}, err
	}
	return h, nil
}

// ParsePublicKey decodes 64 hex digits into a PublicKey.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if err := decodeHexInto(k[:], s); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}

func decodeHexInto(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("proof: want %d hex digits, got %d: %w", 2*len(dst), len(s), ErrRange)
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("proof: %q: %w", s, err)
	}
	return nil
}

// Signer signs records and certificates. The file-backed KeySigner implements it; a
// hardware-backed key (a TEE or keystore) can replace it without touching callers.
type Signer interface {
	// PublicKey returns the key that verifies the signatures.
	PublicKey() PublicKey
	// Sign returns the Ed25519 signature of message.
	Sign(message []byte) (Signature, error)
}

// KeySigner is a Signer holding an Ed25519 private key in memory.
type KeySigner struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

// NewKeySigner returns a signer for the 32-byte Ed25519 seed (the raw contents of
// key_dir/device.key, docs/protocol.md).
func NewKeySigner(seed []byte) (*KeySigner, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("proof: Ed25519 seed is %d bytes, want %d: %w", len(seed), SeedSize, ErrRange)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	s := &KeySigner{priv: priv}
	copy(s.pub[:], priv.Public().(ed25519.PublicKey))
	return s, nil
}

// PublicKey implements Signer.
func (s *KeySigner) PublicKey() PublicKey { return s.pub }

// Sign implements Signer.
func (s *KeySigner) Sign(message []byte) (Signature, error) {
	var sig Signature
	copy(sig[:], ed25519.Sign(s.priv, message))
	return sig, nil
}

// signWith asks s for a signature of msg. A signature from any other Signer than the
// in-memory KeySigner (a hardware key, say) is verified before use, so that a faulty
// signer can never produce a record that the cloud would reject forever.
func signWith(s Signer, msg []byte) (Signature, error) {
	sig, err := s.Sign(msg)
	if err != nil {
		return Signature{}, fmt.Errorf("proof: sign: %w", err)
	}
	if _, ok := s.(*KeySigner); ok {
		return sig, nil
	}
	if !s.PublicKey().Verify(msg, sig) {
		return Signature{}, fmt.Errorf("proof: signer returned a signature its own key does not verify: %w", ErrSignature)
	}
	return sig, nil
}
