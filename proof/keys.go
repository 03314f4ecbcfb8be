package proof

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
)

// Sizes of the fixed-width values of docs/protocol.md.
const (
	PublicKeySize     = ed25519.PublicKeySize // an Ed25519 public key
	P256PublicKeySize = 65                    // an ECDSA P-256 public key, SEC1 uncompressed 0x04‖X‖Y
	SignatureSize     = ed25519.SignatureSize // Ed25519, or ECDSA P-256 r‖s
	SeedSize          = ed25519.SeedSize
	P256ScalarSize    = 32 // the raw private scalar of a P-256 key
	HashSize          = sha256.Size
)

// KeyType names the algorithm of a device key (docs/protocol.md, "Keys and identifiers").
type KeyType uint8

// The device key types. Maker keys are always Ed25519.
const (
	KeyEd25519 KeyType = 1 // Ed25519 (RFC 8032)
	KeyP256    KeyType = 2 // ECDSA P-256 with SHA-256, signatures r‖s with low s
)

// String returns "ed25519", "p256", or the number of an unknown type.
func (t KeyType) String() string {
	switch t {
	case KeyEd25519:
		return "ed25519"
	case KeyP256:
		return "p256"
	}
	return fmt.Sprintf("key type %d", uint8(t))
}

// Size returns the length of a public key of the type, 0 for an unknown type.
func (t KeyType) Size() int {
	switch t {
	case KeyEd25519:
		return PublicKeySize
	case KeyP256:
		return P256PublicKeySize
	}
	return 0
}

// PublicKey is a public key of either type; the zero value is no key. It is comparable.
type PublicKey struct {
	typ KeyType
	b   [P256PublicKeySize]byte
}

// Signature is an Ed25519 signature, or an ECDSA P-256 signature as r‖s (32 bytes each,
// big-endian) with s at most half the group order.
type Signature [SignatureSize]byte

// Hash is a SHA-256 digest: a record hash or a device_id.
type Hash [HashSize]byte

// DeviceID is SHA-256 of the device public key (docs/protocol.md).
type DeviceID = Hash

// String returns the lowercase hex form used in logs, status and the collector's URLs.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Ed25519Key returns the Ed25519 public key b.
func Ed25519Key(b [PublicKeySize]byte) PublicKey {
	k := PublicKey{typ: KeyEd25519}
	copy(k.b[:], b[:])
	return k
}

// NewPublicKey returns the key of type t with the bytes b: 32 bytes for Ed25519, the
// 65-byte uncompressed point (on the curve) for P-256.
func NewPublicKey(t KeyType, b []byte) (PublicKey, error) {
	if t.Size() == 0 {
		return PublicKey{}, fmt.Errorf("proof: %v: %w", t, ErrKeyType)
	}
	if len(b) != t.Size() {
		return PublicKey{}, fmt.Errorf("proof: %v public key is %d bytes, want %d: %w", t, len(b), t.Size(), ErrRange)
	}
	if t == KeyP256 {
		if _, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b); err != nil {
			return PublicKey{}, fmt.Errorf("proof: p256 public key: %v: %w", err, ErrKeyType)
		}
	}
	k := PublicKey{typ: t}
	copy(k.b[:], b)
	return k, nil
}

// Type returns the key's type, 0 for the zero key.
func (k PublicKey) Type() KeyType { return k.typ }

// Bytes returns the key's bytes (a copy): 32 for Ed25519, 65 for P-256, none for the zero key.
func (k PublicKey) Bytes() []byte { return append([]byte(nil), k.b[:k.typ.Size()]...) }

// IsZero reports whether k is no key.
func (k PublicKey) IsZero() bool { return k.typ == 0 }

// String returns the lowercase hex form of the key's bytes.
func (k PublicKey) String() string { return hex.EncodeToString(k.b[:k.typ.Size()]) }

// DeviceID returns SHA-256 of the key's bytes, the device_id of docs/protocol.md.
func (k PublicKey) DeviceID() DeviceID { return sha256.Sum256(k.b[:k.typ.Size()]) }

// ECDSA returns the P-256 key as a crypto/ecdsa key; false for another type.
func (k PublicKey) ECDSA() (*ecdsa.PublicKey, bool) {
	if k.typ != KeyP256 {
		return nil, false
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k.b[:])
	return pub, err == nil
}

// p256HalfOrder is n/2 for P-256: a canonical signature's s is at most this.
var p256HalfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

// Verify reports whether sig is a valid signature of msg by k. A P-256 signature must
// have a low s (docs/protocol.md), so that a record has a single valid byte form.
func (k PublicKey) Verify(msg []byte, sig Signature) bool {
	switch k.typ {
	case KeyEd25519:
		return ed25519.Verify(ed25519.PublicKey(k.b[:PublicKeySize]), msg, sig[:])
	case KeyP256:
		pub, ok := k.ECDSA()
		if !ok {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if s.Cmp(p256HalfOrder) > 0 {
			return false
		}
		h := sha256.Sum256(msg)
		return ecdsa.Verify(pub, h[:], r, s)
	}
	return false
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

// ParsePublicKey decodes a key from hex: 64 digits are an Ed25519 key, 130 digits a
// P-256 key (uncompressed point).
func ParsePublicKey(s string) (PublicKey, error) {
	t := KeyEd25519
	if len(s) == 2*P256PublicKeySize {
		t = KeyP256
	}
	b := make([]byte, t.Size())
	if err := decodeHexInto(b, s); err != nil {
		return PublicKey{}, err
	}
	return NewPublicKey(t, b)
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

// AttestationChallenge returns the attestationChallenge that binds a hardware-attested
// device key to its maker and serial tag (docs/protocol.md, "Attestation"): SHA-256 of
// "amos attestation v1", a zero byte, the maker_id's length as one byte, the maker_id
// and the 32-byte serial tag.
func AttestationChallenge(makerID string, serialTag [32]byte) []byte {
	h := sha256.New()
	h.Write([]byte("amos attestation v1\x00"))
	h.Write([]byte{byte(len(makerID))})
	h.Write([]byte(makerID))
	h.Write(serialTag[:])
	return h.Sum(nil)
}

// Signer signs records and certificates. The file-backed KeySigner and P256Signer
// implement it; a hardware keystore can replace them without touching callers.
type Signer interface {
	// PublicKey returns the key that verifies the signatures.
	PublicKey() PublicKey
	// Sign returns the signature of message: Ed25519, or ECDSA P-256 over SHA-256(message).
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
	s.pub = PublicKey{typ: KeyEd25519}
	copy(s.pub.b[:], priv.Public().(ed25519.PublicKey))
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

// P256Signer is a Signer holding an ECDSA P-256 private key in memory (the file
// backend's key_dir/device-p256.key).
type P256Signer struct {
	priv *ecdsa.PrivateKey
	pub  PublicKey
}

// GenerateP256 returns the raw 32-byte scalar of a new P-256 private key.
func GenerateP256() ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("proof: generate p256 key: %w", err)
	}
	return priv.Bytes()
}

// NewP256Signer returns a signer for the 32-byte raw private scalar of a P-256 key.
func NewP256Signer(scalar []byte) (*P256Signer, error) {
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
	if err != nil {
		return nil, fmt.Errorf("proof: p256 private key of %d bytes: %v: %w", len(scalar), err, ErrRange)
	}
	pb, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("proof: p256 public key: %w", err)
	}
	pub, err := NewPublicKey(KeyP256, pb)
	if err != nil {
		return nil, err
	}
	return &P256Signer{priv: priv, pub: pub}, nil
}

// PublicKey implements Signer.
func (s *P256Signer) PublicKey() PublicKey { return s.pub }

// Sign implements Signer: ECDSA over SHA-256(message), as r‖s with low s.
func (s *P256Signer) Sign(message []byte) (Signature, error) {
	h := sha256.Sum256(message)
	der, err := ecdsa.SignASN1(rand.Reader, s.priv, h[:])
	if err != nil {
		return Signature{}, fmt.Errorf("proof: p256 sign: %w", err)
	}
	return SignatureFromASN1(der)
}

// SignatureFromASN1 converts an ECDSA P-256 signature in ASN.1 DER (what a keystore
// returns) into the r‖s form of docs/protocol.md, with s replaced by n−s when it is
// above n/2 (the same signature, in its one canonical form).
func SignatureFromASN1(der []byte) (Signature, error) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	n := elliptic.P256().Params().N
	switch {
	case err != nil:
		return Signature{}, fmt.Errorf("proof: ECDSA signature: %v: %w", err, ErrSignature)
	case len(rest) > 0:
		return Signature{}, fmt.Errorf("proof: ECDSA signature: %d trailing bytes: %w", len(rest), ErrSignature)
	case v.R.Sign() <= 0 || v.S.Sign() <= 0 || v.R.Cmp(n) >= 0 || v.S.Cmp(n) >= 0:
		return Signature{}, fmt.Errorf("proof: ECDSA signature: r or s out of range: %w", ErrSignature)
	}
	if v.S.Cmp(p256HalfOrder) > 0 {
		v.S.Sub(n, v.S)
	}
	var sig Signature
	v.R.FillBytes(sig[:32])
	v.S.FillBytes(sig[32:])
	return sig, nil
}

// signWith asks s for a signature of msg. A signature from any other Signer than the
// in-memory ones (a hardware key, say) is verified before use, so that a faulty signer
// can never produce a record that the cloud would reject forever.
func signWith(s Signer, msg []byte) (Signature, error) {
	sig, err := s.Sign(msg)
	if err != nil {
		return Signature{}, fmt.Errorf("proof: sign: %w", err)
	}
	switch s.(type) {
	case *KeySigner, *P256Signer:
		return sig, nil
	}
	if !s.PublicKey().Verify(msg, sig) {
		return Signature{}, fmt.Errorf("proof: signer returned a signature its own key does not verify: %w", ErrSignature)
	}
	return sig, nil
}
