package proof

import (
	"bytes"
	"math"
	"unicode/utf8"
)

// Magics of the maker certificate: the device key's type decides which (docs/protocol.md).
const (
	CertMagic     = "AMC1" // certifies an Ed25519 device key (32 bytes)
	CertMagicP256 = "AMC2" // certifies an ECDSA P-256 device key (65 bytes)
)

// certMagic returns the magic of a certificate for a key of type t, "" if none.
func certMagic(t KeyType) string {
	switch t {
	case KeyEd25519:
		return CertMagic
	case KeyP256:
		return CertMagicP256
	}
	return ""
}

// Limits of the variable-length certificate fields (docs/protocol.md).
const (
	MaxMakerIDLen = 32
	MaxModelLen   = 64
)

// Certificate is a maker certificate (docs/protocol.md): the maker's signed statement that a
// device key belongs to a handset it built.
type Certificate struct {
	DevicePublicKey PublicKey // Ed25519 or P-256
	SerialTag       [32]byte  // opaque, assigned by the factory
	MakerID         string    // [a-z0-9-]{1,32}
	Model           string    // UTF-8, at most 64 bytes
	IssuedAt        int64     // unix seconds
	Signature       Signature
}

// ValidMakerID reports whether id is a maker_id of docs/protocol.md: [a-z0-9-]{1,32}.
func ValidMakerID(id string) bool {
	if len(id) < 1 || len(id) > MaxMakerIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validate checks the fields that the byte form cannot express wrongly by itself.
func (c *Certificate) validate() error {
	const obj = "certificate"
	switch {
	case certMagic(c.DevicePublicKey.Type()) == "":
		return formatErr(obj, "device_public_key", 4, ErrKeyType, "no device key")
	case !ValidMakerID(c.MakerID):
		return formatErr(obj, "maker_id", -1, ErrText, "%q is not [a-z0-9-]{1,32}", c.MakerID)
	case len(c.Model) > MaxModelLen:
		return formatErr(obj, "model", -1, ErrText, "%d bytes, at most %d", len(c.Model), MaxModelLen)
	case !utf8.ValidString(c.Model):
		return formatErr(obj, "model", -1, ErrText, "%q is not UTF-8", c.Model)
	case c.IssuedAt < 0:
		return formatErr(obj, "issued_at", -1, ErrRange, "%d is before 1970", c.IssuedAt)
	}
	return nil
}

// size returns the length of the encoded certificate.
func (c *Certificate) size() int {
	return 4 + c.DevicePublicKey.Type().Size() + 32 + 1 + len(c.MakerID) + 1 + len(c.Model) + 8 + SignatureSize
}

// appendSigned appends the signed part of the certificate, all bytes before the signature.
func (c *Certificate) appendSigned(b []byte) []byte {
	b = append(b, certMagic(c.DevicePublicKey.Type())...)
	b = append(b, c.DevicePublicKey.b[:c.DevicePublicKey.Type().Size()]...)
	b = append(b, c.SerialTag[:]...)
	b = append(b, byte(len(c.MakerID)))
	b = append(b, c.MakerID...)
	b = append(b, byte(len(c.Model)))
	b = append(b, c.Model...)
	return appendU64(b, uint64(c.IssuedAt))
}

// SignedBytes returns the bytes that the maker's signature covers.
func (c *Certificate) SignedBytes() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c.appendSigned(nil), nil
}

// MarshalBinary returns the canonical byte form of the certificate, signature included.
func (c *Certificate) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(nil)
}

// AppendBinary appends the canonical byte form of the certificate to b.
func (c *Certificate) AppendBinary(b []byte) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	b = c.appendSigned(b)
	return append(b, c.Signature[:]...), nil
}

// Sign signs the certificate with the maker's key, stores the signature in c and returns
// the encoded certificate. This is the factory step.
func (c *Certificate) Sign(maker Signer) ([]byte, error) {
	msg, err := c.SignedBytes()
	if err != nil {
		return nil, err
	}
	if c.Signature, err = signWith(maker, msg); err != nil {
		return nil, err
	}
	return append(msg, c.Signature[:]...), nil
}

// Verify checks the certificate's signature against the maker's public key. It returns
// an error wrapping ErrBadCert and ErrSignature if it does not verify.
func (c *Certificate) Verify(makerKey PublicKey) error {
	msg, err := c.SignedBytes()
	if err != nil {
		return err
	}
	if makerKey.Type() != KeyEd25519 || !makerKey.Verify(msg, c.Signature) {
		return formatErr("certificate", "signature", -1, ErrBadCert, "not signed by the key of maker %q: %v", c.MakerID, ErrSignature)
	}
	return nil
}

// ParseCertificate decodes a certificate in its canonical byte form. It checks the
// format only; Verify checks the maker's signature.
func ParseCertificate(b []byte) (*Certificate, error) {
	c := &Certificate{}
	if err := ParseCertificateInto(c, b); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseCertificateInto is ParseCertificate into c, for a caller that decodes many: c is
// overwritten, and its contents are undefined when it returns an error.
func ParseCertificateInto(c *Certificate, b []byte) error {
	*c = Certificate{}
	r := &reader{obj: "certificate", b: b}
	t := KeyType(0)
	switch m := r.take("magic", 4); {
	case m == nil:
	case string(m) == CertMagic:
		t = KeyEd25519
	case string(m) == CertMagicP256:
		t = KeyP256
	default:
		r.fail("magic", 4, ErrMagic, "%q, want %q or %q", m, CertMagic, CertMagicP256)
	}
	if key := r.take("device_public_key", t.Size()); key != nil {
		k, err := NewPublicKey(t, key)
		if err != nil {
			r.fail("device_public_key", len(key), ErrKeyType, "%v", err)
		}
		c.DevicePublicKey = k
	}
	r.fixed("serial_tag", c.SerialTag[:])
	if n := int(r.u8("maker_id length")); r.err == nil {
		if n < 1 || n > MaxMakerIDLen {
			r.fail("maker_id length", 1, ErrRange, "%d, want 1..%d", n, MaxMakerIDLen)
		} else if v := r.take("maker_id", n); v != nil {
			if c.MakerID = string(v); !ValidMakerID(c.MakerID) {
				r.fail("maker_id", n, ErrText, "%q is not [a-z0-9-]{1,32}", v)
			}
		}
	}
	if n := int(r.u8("model length")); r.err == nil {
		if n > MaxModelLen {
			r.fail("model length", 1, ErrRange, "%d, at most %d", n, MaxModelLen)
		} else if v := r.take("model", n); v != nil {
			if c.Model = string(v); !utf8.Valid(v) {
				r.fail("model", n, ErrText, "%q is not UTF-8", v)
			}
		}
	}
	if t := r.u64("issued_at"); r.err == nil {
		if t > math.MaxInt64 {
			r.fail("issued_at", 8, ErrRange, "%d is past the year 292277026596", t)
		}
		c.IssuedAt = int64(t)
	}
	r.fixed("signature", c.Signature[:])
	r.end()
	if r.err != nil {
		return r.err
	}
	var buf [320]byte // the largest certificate: no allocation for the comparison
	if again, err := c.AppendBinary(buf[:0]); err != nil || !bytes.Equal(again, b) {
		return formatErr("certificate", "", -1, ErrNotCanonical, "")
	}
	return nil
}
