package keydesc

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

// OID is the object identifier of the key description extension.
var OID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 17}

// Sentinels for what callers branch on. Every decoding error wraps ErrMalformed, and
// may wrap one of the more specific sentinels too.
var (
	// ErrNoExtension: the certificate has no key description extension.
	ErrNoExtension = errors.New("keydesc: no key description extension")
	// ErrMalformed: the bytes are not a key description as the schema defines it.
	ErrMalformed = errors.New("keydesc: malformed key description")
	// ErrTrailingData: bytes follow a complete element where none may.
	ErrTrailingData = errors.New("keydesc: trailing data")
	// ErrTagOrder: the tags of an AuthorizationList are not strictly increasing.
	ErrTagOrder = errors.New("keydesc: authorization list tags not strictly increasing")
	// ErrInvalid: Marshal was given a Description it cannot encode.
	ErrInvalid = errors.New("keydesc: invalid description")
)

// SecurityLevel says where a key lives and where the attestation was made.
type SecurityLevel int

// The security levels of the schema.
const (
	Software           SecurityLevel = 0
	TrustedEnvironment SecurityLevel = 1
	StrongBox          SecurityLevel = 2
)

// String names the level as the schema does.
func (s SecurityLevel) String() string {
	switch s {
	case Software:
		return "Software"
	case TrustedEnvironment:
		return "TrustedEnvironment"
	case StrongBox:
		return "StrongBox"
	}
	return fmt.Sprintf("SecurityLevel(%d)", int(s))
}

// Hardware reports whether the level is TrustedEnvironment or StrongBox.
func (s SecurityLevel) Hardware() bool { return s == TrustedEnvironment || s == StrongBox }

// BootState is the verifiedBootState of the RootOfTrust.
type BootState int

// The verified boot states of the schema.
const (
	Verified   BootState = 0
	SelfSigned BootState = 1
	Unverified BootState = 2
	Failed     BootState = 3
)

// String names the state as the schema does.
func (b BootState) String() string {
	switch b {
	case Verified:
		return "Verified"
	case SelfSigned:
		return "SelfSigned"
	case Unverified:
		return "Unverified"
	case Failed:
		return "Failed"
	}
	return fmt.Sprintf("BootState(%d)", int(b))
}

// Description is a decoded key description.
type Description struct {
	AttestationVersion       int
	AttestationSecurityLevel SecurityLevel
	KeyMintVersion           int // keymasterVersion before KeyMint
	KeyMintSecurityLevel     SecurityLevel
	AttestationChallenge     []byte
	UniqueID                 []byte
	SoftwareEnforced         AuthorizationList
	HardwareEnforced         AuthorizationList
}

// RootOfTrust is the boot state that the secure hardware vouches for.
type RootOfTrust struct {
	VerifiedBootKey   []byte
	DeviceLocked      bool
	VerifiedBootState BootState
	VerifiedBootHash  []byte // nil when absent (attestation version 1 and 2)
}

// Element is one AuthorizationList element that this package does not decode: its tag
// and the DER of its content (inside the EXPLICIT tag).
type Element struct {
	Tag   int
	Value []byte
}

// AuthorizationList holds the decoded authorizations. A nil pointer or nil slice means
// the tag is absent; a present OCTET STRING, even empty, is non-nil.
type AuthorizationList struct {
	Purpose                   []int        // [1] SET OF INTEGER
	Algorithm                 *int         // [2]
	KeySize                   *int         // [3]
	Digest                    []int        // [5] SET OF INTEGER
	ECCurve                   *int         // [10]
	NoAuthRequired            bool         // [503] NULL
	CreationDateTime          *int64       // [701] milliseconds since the Unix epoch
	Origin                    *int         // [702]
	RootOfTrust               *RootOfTrust // [704]
	OSVersion                 *int         // [705] e.g. 160000 for Android 16
	OSPatchLevel              *int         // [706] YYYYMM
	AttestationApplicationID  []byte       // [709] the DER of AttestationApplicationId
	AttestationIDBrand        []byte       // [710]
	AttestationIDDevice       []byte       // [711]
	AttestationIDProduct      []byte       // [712]
	AttestationIDSerial       []byte       // [713]
	AttestationIDIMEI         []byte       // [714]
	AttestationIDMEID         []byte       // [715]
	AttestationIDManufacturer []byte       // [716]
	AttestationIDModel        []byte       // [717]
	VendorPatchLevel          *int         // [718] YYYYMMDD
	BootPatchLevel            *int         // [719] YYYYMMDD
	AttestationIDSecondIMEI   []byte       // [723]
	Extra                     []Element    // every other tag, in increasing tag order
}

// Tags of the AuthorizationList elements this package decodes.
const (
	TagPurpose                   = 1
	TagAlgorithm                 = 2
	TagKeySize                   = 3
	TagDigest                    = 5
	TagECCurve                   = 10
	TagNoAuthRequired            = 503
	TagCreationDateTime          = 701
	TagOrigin                    = 702
	TagRootOfTrust               = 704
	TagOSVersion                 = 705
	TagOSPatchLevel              = 706
	TagAttestationApplicationID  = 709
	TagAttestationIDBrand        = 710
	TagAttestationIDDevice       = 711
	TagAttestationIDProduct      = 712
	TagAttestationIDSerial       = 713
	TagAttestationIDIMEI         = 714
	TagAttestationIDMEID         = 715
	TagAttestationIDManufacturer = 716
	TagAttestationIDModel        = 717
	TagVendorPatchLevel          = 718
	TagBootPatchLevel            = 719
	TagAttestationIDSecondIMEI   = 723
)

// FromCertificate finds the key description extension of cert and parses it. A
// certificate without it gives ErrNoExtension; one with it twice is malformed.
func FromCertificate(cert *x509.Certificate) (*Description, error) {
	var found []byte
	n := 0
	for _, e := range cert.Extensions {
		if e.Id.Equal(OID) {
			found = e.Value
			n++
		}
	}
	switch n {
	case 0:
		return nil, ErrNoExtension
	case 1:
		return Parse(found)
	}
	return nil, fmt.Errorf("%w: the extension appears %d times", ErrMalformed, n)
}

// Parse decodes the DER of a key description extension (the extnValue's content). It
// is strict: DER as encoding/asn1 reads it, no byte after the KeyDescription, the eight
// fields in order and nothing else, AuthorizationList tags strictly increasing and each
// element's content exactly one value of the schema's type.
func Parse(ext []byte) (*Description, error) {
	fields, err := sequence(ext, "KeyDescription")
	if err != nil {
		return nil, err
	}
	var (
		d            Description
		av, kv       int
		asl, ksl     asn1.Enumerated
		chal, unique []byte
		sw, hw       asn1.RawValue
	)
	for _, f := range []struct {
		name string
		v    any
	}{
		{"attestationVersion", &av},
		{"attestationSecurityLevel", &asl},
		{"keyMintVersion", &kv},
		{"keyMintSecurityLevel", &ksl},
		{"attestationChallenge", &chal},
		{"uniqueId", &unique},
		{"softwareEnforced", &sw},
		{"hardwareEnforced", &hw},
	} {
		if len(fields) == 0 {
			return nil, fmt.Errorf("%w: KeyDescription ends before %s", ErrMalformed, f.name)
		}
		if fields, err = asn1.Unmarshal(fields, f.v); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, f.name, err)
		}
	}
	if len(fields) != 0 {
		return nil, fmt.Errorf("%w: %w: %d bytes after hardwareEnforced in KeyDescription", ErrMalformed, ErrTrailingData, len(fields))
	}
	d.AttestationVersion, d.KeyMintVersion = av, kv
	d.AttestationSecurityLevel, d.KeyMintSecurityLevel = SecurityLevel(asl), SecurityLevel(ksl)
	d.AttestationChallenge, d.UniqueID = nonNil(chal), nonNil(unique)
	if err := parseList(sw, &d.SoftwareEnforced); err != nil {
		return nil, fmt.Errorf("softwareEnforced: %w", err)
	}
	if err := parseList(hw, &d.HardwareEnforced); err != nil {
		return nil, fmt.Errorf("hardwareEnforced: %w", err)
	}
	return &d, nil
}

// sequence reads one universal SEQUENCE that fills der entirely and returns its content.
func sequence(der []byte, name string) ([]byte, error) {
	var rv asn1.RawValue
	rest, err := asn1.Unmarshal(der, &rv)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, name, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %w: %d bytes after %s", ErrMalformed, ErrTrailingData, len(rest), name)
	}
	if !isSequence(rv) {
		return nil, fmt.Errorf("%w: %s is not a SEQUENCE (class %d tag %d)", ErrMalformed, name, rv.Class, rv.Tag)
	}
	return rv.Bytes, nil
}

func isSequence(rv asn1.RawValue) bool {
	return rv.Class == asn1.ClassUniversal && rv.Tag == asn1.TagSequence && rv.IsCompound
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// parseList decodes an AuthorizationList from its RawValue.
func parseList(rv asn1.RawValue, l *AuthorizationList) error {
	if !isSequence(rv) {
		return fmt.Errorf("%w: AuthorizationList is not a SEQUENCE (class %d tag %d)", ErrMalformed, rv.Class, rv.Tag)
	}
	rest, last := rv.Bytes, -1
	for len(rest) > 0 {
		var el asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &el); err != nil {
			return fmt.Errorf("%w: element after tag %d: %w", ErrMalformed, last, err)
		}
		if el.Class != asn1.ClassContextSpecific || !el.IsCompound {
			return fmt.Errorf("%w: element after tag %d is not a context-specific EXPLICIT tag (class %d tag %d)", ErrMalformed, last, el.Class, el.Tag)
		}
		if el.Tag <= last {
			return fmt.Errorf("%w: %w: tag %d after tag %d", ErrMalformed, ErrTagOrder, el.Tag, last)
		}
		last = el.Tag
		if err := l.set(el.Tag, el.Bytes); err != nil {
			return fmt.Errorf("%w: tag %d: %w", ErrMalformed, el.Tag, err)
		}
	}
	return nil
}

// one decodes exactly one value of v's type from der, with params.
func one(der []byte, v any, params string) error {
	rest, err := asn1.UnmarshalWithParams(der, v, params)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after the value", ErrTrailingData, len(rest))
	}
	return nil
}

func oneInt(der []byte, dst **int) error {
	var v int
	if err := one(der, &v, ""); err != nil {
		return err
	}
	*dst = &v
	return nil
}

func oneBytes(der []byte, dst *[]byte) error {
	var v []byte
	if err := one(der, &v, ""); err != nil {
		return err
	}
	*dst = nonNil(v)
	return nil
}

// set decodes the content of the element with tag into l.
func (l *AuthorizationList) set(tag int, der []byte) error {
	if p := l.intField(tag); p != nil {
		return oneInt(der, p)
	}
	if p := l.bytesField(tag); p != nil {
		return oneBytes(der, p)
	}
	switch tag {
	case TagPurpose, TagDigest:
		var v []int
		if err := one(der, &v, "set"); err != nil {
			return err
		}
		if again, err := asn1.MarshalWithParams(v, "set"); err != nil || !bytes.Equal(again, der) {
			return fmt.Errorf("SET OF INTEGER not in DER form")
		}
		if v == nil {
			v = []int{}
		}
		if tag == TagPurpose {
			l.Purpose = v
		} else {
			l.Digest = v
		}
		return nil
	case TagNoAuthRequired:
		var v asn1.RawValue
		if err := one(der, &v, ""); err != nil {
			return err
		}
		if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagNull || v.IsCompound || len(v.Bytes) != 0 {
			return fmt.Errorf("not a NULL")
		}
		l.NoAuthRequired = true
		return nil
	case TagCreationDateTime:
		var v int64
		if err := one(der, &v, ""); err != nil {
			return err
		}
		l.CreationDateTime = &v
		return nil
	case TagRootOfTrust:
		rot, err := parseRootOfTrust(der)
		if err != nil {
			return err
		}
		l.RootOfTrust = rot
		return nil
	}
	var v asn1.RawValue // unknown: keep it, but it must still be one DER value
	if err := one(der, &v, ""); err != nil {
		return err
	}
	l.Extra = append(l.Extra, Element{Tag: tag, Value: append([]byte(nil), der...)})
	return nil
}

// intField is the INTEGER field of tag, nil when tag is not one.
func (l *AuthorizationList) intField(tag int) **int {
	switch tag {
	case TagAlgorithm:
		return &l.Algorithm
	case TagKeySize:
		return &l.KeySize
	case TagECCurve:
		return &l.ECCurve
	case TagOrigin:
		return &l.Origin
	case TagOSVersion:
		return &l.OSVersion
	case TagOSPatchLevel:
		return &l.OSPatchLevel
	case TagVendorPatchLevel:
		return &l.VendorPatchLevel
	case TagBootPatchLevel:
		return &l.BootPatchLevel
	}
	return nil
}

// bytesField is the OCTET STRING field of tag, nil when tag is not one.
func (l *AuthorizationList) bytesField(tag int) *[]byte {
	switch tag {
	case TagAttestationApplicationID:
		return &l.AttestationApplicationID
	case TagAttestationIDBrand:
		return &l.AttestationIDBrand
	case TagAttestationIDDevice:
		return &l.AttestationIDDevice
	case TagAttestationIDProduct:
		return &l.AttestationIDProduct
	case TagAttestationIDSerial:
		return &l.AttestationIDSerial
	case TagAttestationIDIMEI:
		return &l.AttestationIDIMEI
	case TagAttestationIDMEID:
		return &l.AttestationIDMEID
	case TagAttestationIDManufacturer:
		return &l.AttestationIDManufacturer
	case TagAttestationIDModel:
		return &l.AttestationIDModel
	case TagAttestationIDSecondIMEI:
		return &l.AttestationIDSecondIMEI
	}
	return nil
}

// parseRootOfTrust decodes the RootOfTrust SEQUENCE (three fields, or four with
// verifiedBootHash).
func parseRootOfTrust(der []byte) (*RootOfTrust, error) {
	fields, err := sequence(der, "RootOfTrust")
	if err != nil {
		return nil, err
	}
	var (
		key, hash []byte
		locked    bool
		state     asn1.Enumerated
	)
	if fields, err = asn1.Unmarshal(fields, &key); err != nil {
		return nil, fmt.Errorf("verifiedBootKey: %w", err)
	}
	if fields, err = asn1.Unmarshal(fields, &locked); err != nil {
		return nil, fmt.Errorf("deviceLocked: %w", err)
	}
	if fields, err = asn1.Unmarshal(fields, &state); err != nil {
		return nil, fmt.Errorf("verifiedBootState: %w", err)
	}
	rot := &RootOfTrust{VerifiedBootKey: nonNil(key), DeviceLocked: locked, VerifiedBootState: BootState(state)}
	if len(fields) > 0 {
		if fields, err = asn1.Unmarshal(fields, &hash); err != nil {
			return nil, fmt.Errorf("verifiedBootHash: %w", err)
		}
		rot.VerifiedBootHash = nonNil(hash)
	}
	if len(fields) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after RootOfTrust's last field", ErrTrailingData, len(fields))
	}
	return rot, nil
}
