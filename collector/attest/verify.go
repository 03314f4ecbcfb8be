package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"amos.example/amosd/internal/keydesc"
)

// The reasons of a refused Result, in the order Verify checks them (docs/attestation.md).
const (
	ReasonPolicy              = "policy"                // the Policy itself is unusable (no At, an ExpectedKey of an unknown type)
	ReasonChainEmpty          = "chain_empty"           // no certificate
	ReasonChainTooShort       = "chain_too_short"       // one certificate: no leaf under a root
	ReasonChainTooLong        = "chain_too_long"        // more than Policy.MaxChain certificates
	ReasonParse               = "parse"                 // a certificate is not DER X.509
	ReasonUntrustedRoot       = "untrusted_root"        // the last certificate's key is not a trusted root's
	ReasonSignature           = "signature"             // a certificate is not issued (name) and signed by the next one
	ReasonNotYetValid         = "not_yet_valid"         // an intermediate is not valid yet at Policy.At
	ReasonExpired             = "expired"               // an intermediate has expired at Policy.At
	ReasonStatusStale         = "status_stale"          // the status list is stale (transient: verify again when fresh)
	ReasonRevoked             = "revoked"               // a certificate's serial is REVOKED or SUSPENDED
	ReasonNoKeyDescription    = "no_key_description"    // the leaf has no key description extension
	ReasonKeyDescription      = "key_description"       // the leaf's key description does not parse, or lacks its RootOfTrust
	ReasonExtraKeyDescription = "extra_key_description" // another certificate than the leaf has one (ATTEST_KEY chains)
	ReasonSoftwareLevel       = "software_level"        // a security level is not TrustedEnvironment or StrongBox, or they differ
	ReasonOrigin              = "origin"                // the key was not GENERATED in the hardware (imported, or no origin)
	ReasonKeyMismatch         = "key_mismatch"          // the attested key is not Policy.ExpectedKey
	ReasonChallenge           = "challenge"             // attestationChallenge is not Policy.Challenge
	ReasonUnlocked            = "unlocked"              // deviceLocked is false
	ReasonBootState           = "boot_state"            // verifiedBootState is not Verified
	ReasonBootKey             = "boot_key"              // verifiedBootKey is not in Policy.BootKeys
	ReasonPatchLevel          = "patch_level"           // osPatchLevel absent or below Policy.MinPatchLevel
	ReasonIDMismatch          = "id_mismatch"           // no attested serial or IMEI gives Policy.SerialTag
)

// Reasons lists every reason, in the order Verify checks them.
func Reasons() []string {
	return []string{ReasonPolicy, ReasonChainEmpty, ReasonChainTooShort, ReasonChainTooLong, ReasonParse,
		ReasonUntrustedRoot, ReasonSignature, ReasonNotYetValid, ReasonExpired, ReasonStatusStale, ReasonRevoked,
		ReasonNoKeyDescription, ReasonKeyDescription, ReasonExtraKeyDescription, ReasonSoftwareLevel, ReasonOrigin,
		ReasonKeyMismatch, ReasonChallenge, ReasonUnlocked, ReasonBootState, ReasonBootKey, ReasonPatchLevel, ReasonIDMismatch}
}

// DefaultMaxChain is Policy.MaxChain's default: Google's longest chains (RKP) have 5
// certificates.
const DefaultMaxChain = 8

// originGenerated is KeyMint's KeyOrigin GENERATED.
const originGenerated = 0

// Policy says what Verify requires. Zero values mean "not checked", except where said.
type Policy struct {
	// At is the time the certificates' validity is checked at: the collector passes the
	// factory's moment (the maker certificate's issued_at, at most 400 days before the
	// chain arrived) or the arrival (docs/attestation.md section 3). Required.
	At time.Time
	// Roots are the trusted root keys; nil: GoogleRoots().
	Roots *Roots
	// Status is the revocation status list; nil: not checked (Result.StatusChecked false).
	Status *StatusList
	// StatusStale says the list is stale by the Source's rule: Verify refuses with
	// ReasonStatusStale.
	StatusStale bool
	// Challenge is the expected attestationChallenge; nil: reported, not checked.
	Challenge []byte
	// ExpectedKey is the genesis key the leaf must attest: *ecdsa.PublicKey (P-256),
	// ed25519.PublicKey, or []byte (65-byte uncompressed SEC1 P-256, or 32-byte
	// Ed25519); nil: not checked.
	ExpectedKey crypto.PublicKey
	// BootKeys are the approved verifiedBootKeys; empty: reported, not checked.
	BootKeys [][]byte
	// MinPatchLevel is the lowest acceptable osPatchLevel (YYYYMM); 0: none.
	MinPatchLevel int
	// SerialTag and SerialTagKey check ID attestation: when both are set and the leaf
	// attests a serial or IMEI, SerialTag must be HMAC-SHA256(SerialTagKey, the ASCII
	// of one of the attested IMEIs or of the serial). Otherwise the IDs are reported.
	SerialTag, SerialTagKey []byte
	// MaxChain bounds the chain's length; 0: DefaultMaxChain.
	MaxChain int
}

// AttestedIDs are the device IDs the hardware attested (ID attestation), as text.
type AttestedIDs struct {
	Serial     string `json:"serial,omitempty"`
	IMEI       string `json:"imei,omitempty"`
	SecondIMEI string `json:"second_imei,omitempty"`
	MEID       string `json:"meid,omitempty"`
	Brand      string `json:"brand,omitempty"`
	Model      string `json:"model,omitempty"`
}

// Result is Verify's verdict and what it read. When Accepted is false, Reason is the
// first rule that failed and the other fields are for diagnosis only.
type Result struct {
	Accepted           bool         `json:"accepted"`
	Reason             string       `json:"reason"`
	Detail             string       `json:"detail,omitempty"`
	SecurityLevel      string       `json:"security_level,omitempty"` // "TrustedEnvironment", "StrongBox" or "Software"
	KeyType            string       `json:"key_type,omitempty"`       // "ecdsa-p256", "ed25519", or another type's name
	AttestedKey        string       `json:"attested_key,omitempty"`   // hex: 65-byte uncompressed SEC1 (P-256), 32 bytes (Ed25519), else the SPKI DER
	Challenge          string       `json:"challenge,omitempty"`      // hex of attestationChallenge
	BootState          string       `json:"boot_state,omitempty"`     // "Verified", "SelfSigned", "Unverified", "Failed"
	DeviceLocked       bool         `json:"device_locked"`
	BootKey            string       `json:"boot_key,omitempty"` // hex of verifiedBootKey
	OSVersion          int          `json:"os_version,omitempty"`
	OSPatchLevel       int          `json:"os_patch_level,omitempty"` // YYYYMM; 0 when absent
	AttestationVersion int          `json:"attestation_version,omitempty"`
	KeyMintVersion     int          `json:"keymint_version,omitempty"`
	IDs                *AttestedIDs `json:"attested_ids,omitempty"`
	RootKey            string       `json:"root_key,omitempty"`       // hex SHA-256 of the root's SubjectPublicKeyInfo
	ChainSerials       []string     `json:"chain_serials"`            // each certificate's serial, as status lists write it, leaf first
	StatusChecked      bool         `json:"status_checked"`           // a status list was consulted
	ChallengeChecked   bool         `json:"challenge_checked"`        // Policy.Challenge was compared
	KeyChecked         bool         `json:"key_checked"`              // Policy.ExpectedKey was compared
	BootKeyChecked     bool         `json:"boot_key_checked"`         // Policy.BootKeys were consulted
	IDsChecked         bool         `json:"ids_checked"`              // attested IDs were matched to the serial tag
	Checked            time.Time    `json:"checked_at"`               // Policy.At
	Transient          bool         `json:"transient,omitempty"`      // the refusal may pass later unchanged (status_stale)
	RevokedSerial      string       `json:"revoked_serial,omitempty"` // the listed serial, when Reason is revoked
}

// refusal ends a verification with a reason.
type refusal struct{ reason, detail string }

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{reason, fmt.Sprintf(format, args...)}
}

// Verify checks chain (DER certificates, leaf first) under p; see the package doc for
// the rules and their order.
func Verify(chain [][]byte, p Policy) Result {
	r := Result{Checked: p.At, ChainSerials: []string{}}
	if f := verify(chain, p, &r); f != nil {
		r.Reason, r.Detail = f.reason, f.detail
		r.Transient = f.reason == ReasonStatusStale
		return r
	}
	r.Accepted = true
	return r
}

func verify(chain [][]byte, p Policy, r *Result) *refusal {
	if p.At.IsZero() {
		return refuse(ReasonPolicy, "Policy.At is not set")
	}
	maxChain := p.MaxChain
	if maxChain <= 0 {
		maxChain = DefaultMaxChain
	}
	switch {
	case len(chain) == 0:
		return refuse(ReasonChainEmpty, "no certificate")
	case len(chain) == 1:
		return refuse(ReasonChainTooShort, "one certificate: a chain is a leaf, its issuers and a root")
	case len(chain) > maxChain:
		return refuse(ReasonChainTooLong, "%d certificates, at most %d", len(chain), maxChain)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return refuse(ReasonParse, "certificate %d: %v", i, err)
		}
		certs[i] = c
		r.ChainSerials = append(r.ChainSerials, SerialKey(c.SerialNumber))
	}
	leaf, root := certs[0], certs[len(certs)-1]
	r.RootKey = keyID(root.RawSubjectPublicKeyInfo)
	r.KeyType, r.AttestedKey = publicKeyHex(leaf)
	// Read the description first, so that a refusal still reports what it says.
	desc, descErr := keydesc.FromCertificate(leaf)
	if descErr == nil {
		report(desc, r)
	}

	roots := p.Roots
	if roots == nil {
		roots = GoogleRoots()
	}
	if !roots.Trusts(root) {
		return refuse(ReasonUntrustedRoot, "the root's key (SHA-256 of its SubjectPublicKeyInfo %s) is not among the %d trusted", r.RootKey, roots.Keys())
	}
	for i := 0; i+1 < len(certs); i++ {
		child, parent := certs[i], certs[i+1]
		if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
			return refuse(ReasonSignature, "certificate %d's issuer is not certificate %d's subject", i, i+1)
		}
		if err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature); err != nil {
			return refuse(ReasonSignature, "certificate %d is not signed by certificate %d's key: %v", i, i+1, err)
		}
	}
	for i := 1; i+1 < len(certs); i++ {
		c := certs[i]
		if p.At.Before(c.NotBefore) {
			return refuse(ReasonNotYetValid, "certificate %d (serial %s) is valid from %s, after %s", i, SerialKey(c.SerialNumber), c.NotBefore.UTC().Format(time.RFC3339), p.At.UTC().Format(time.RFC3339))
		}
		if p.At.After(c.NotAfter) {
			return refuse(ReasonExpired, "certificate %d (serial %s) expired at %s, before %s", i, SerialKey(c.SerialNumber), c.NotAfter.UTC().Format(time.RFC3339), p.At.UTC().Format(time.RFC3339))
		}
	}
	if p.StatusStale {
		return refuse(ReasonStatusStale, "the revocation status list is stale")
	}
	if p.Status != nil {
		r.StatusChecked = true
		for i, c := range certs {
			if e, listed := p.Status.Lookup(c.SerialNumber); listed {
				r.RevokedSerial = SerialKey(c.SerialNumber)
				return refuse(ReasonRevoked, "certificate %d (serial %s) is %s (%s)", i, r.RevokedSerial, e.Status, e.Reason)
			}
		}
	}
	if f := checkDescription(certs, desc, descErr); f != nil {
		return f
	}
	return checkClaims(leaf, desc, p, r)
}

// checkDescription: the leaf has a well-formed description, and no other certificate
// has one; the security levels; the origin.
func checkDescription(certs []*x509.Certificate, desc *keydesc.Description, err error) *refusal {
	if errors.Is(err, keydesc.ErrNoExtension) {
		return refuse(ReasonNoKeyDescription, "the leaf has no key description extension")
	}
	if err != nil {
		return refuse(ReasonKeyDescription, "%v", err)
	}
	for i, c := range certs[1:] {
		for _, e := range c.Extensions {
			if e.Id.Equal(keydesc.OID) {
				return refuse(ReasonExtraKeyDescription, "certificate %d also has a key description: only the leaf may (ATTEST_KEY chains are not accepted)", i+1)
			}
		}
	}
	if !desc.AttestationSecurityLevel.Hardware() || !desc.KeyMintSecurityLevel.Hardware() {
		return refuse(ReasonSoftwareLevel, "attestation security level %v, KeyMint security level %v", desc.AttestationSecurityLevel, desc.KeyMintSecurityLevel)
	}
	if desc.AttestationSecurityLevel != desc.KeyMintSecurityLevel {
		return refuse(ReasonSoftwareLevel, "attestation security level %v differs from KeyMint's %v", desc.AttestationSecurityLevel, desc.KeyMintSecurityLevel)
	}
	if o := desc.HardwareEnforced.Origin; o == nil || *o != originGenerated {
		if o == nil {
			return refuse(ReasonOrigin, "no hardware-enforced origin")
		}
		return refuse(ReasonOrigin, "origin %d, not GENERATED", *o)
	}
	if desc.HardwareEnforced.RootOfTrust == nil {
		return refuse(ReasonKeyDescription, "no hardware-enforced RootOfTrust")
	}
	return nil
}

// checkClaims: the key, the challenge, the boot, the patch level, the IDs.
func checkClaims(leaf *x509.Certificate, desc *keydesc.Description, p Policy, r *Result) *refusal {
	if p.ExpectedKey != nil {
		want, err := rawKey(p.ExpectedKey)
		if err != nil {
			return refuse(ReasonPolicy, "ExpectedKey: %v", err)
		}
		r.KeyChecked = true
		if got, _ := rawLeafKey(leaf); got == nil || !bytes.Equal(got, want) {
			return refuse(ReasonKeyMismatch, "the leaf attests key %s, not the expected %x", r.AttestedKey, want)
		}
	}
	if p.Challenge != nil {
		r.ChallengeChecked = true
		if !bytes.Equal(desc.AttestationChallenge, p.Challenge) {
			return refuse(ReasonChallenge, "attestationChallenge %x, expected %x", desc.AttestationChallenge, p.Challenge)
		}
	}
	rot := desc.HardwareEnforced.RootOfTrust
	if !rot.DeviceLocked {
		return refuse(ReasonUnlocked, "deviceLocked is false: the bootloader is unlocked")
	}
	if rot.VerifiedBootState != keydesc.Verified {
		return refuse(ReasonBootState, "verifiedBootState %v, not Verified", rot.VerifiedBootState)
	}
	if len(p.BootKeys) > 0 {
		r.BootKeyChecked = true
		approved := false
		for _, k := range p.BootKeys {
			approved = approved || bytes.Equal(k, rot.VerifiedBootKey)
		}
		if !approved {
			return refuse(ReasonBootKey, "verifiedBootKey %x is not among the %d approved", rot.VerifiedBootKey, len(p.BootKeys))
		}
	}
	if p.MinPatchLevel > 0 {
		lvl := desc.HardwareEnforced.OSPatchLevel
		if lvl == nil {
			return refuse(ReasonPatchLevel, "no hardware-enforced osPatchLevel, minimum %d", p.MinPatchLevel)
		}
		if *lvl < p.MinPatchLevel {
			return refuse(ReasonPatchLevel, "osPatchLevel %d is below the minimum %d", *lvl, p.MinPatchLevel)
		}
	}
	return checkIDs(desc, p, r)
}

// checkIDs is the ID attestation rule: serial_tag = HMAC-SHA256(key, ID) for one of the
// attested IMEIs or the serial (docs/protocol.md section 2 recommends the IMEI).
func checkIDs(desc *keydesc.Description, p Policy, r *Result) *refusal {
	hw := desc.HardwareEnforced
	var ids [][]byte
	for _, id := range [][]byte{hw.AttestationIDIMEI, hw.AttestationIDSecondIMEI, hw.AttestationIDSerial} {
		if len(id) > 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 || p.SerialTagKey == nil || p.SerialTag == nil {
		return nil
	}
	r.IDsChecked = true
	for _, id := range ids {
		mac := hmac.New(sha256.New, p.SerialTagKey)
		mac.Write(id)
		if hmac.Equal(mac.Sum(nil), p.SerialTag) {
			return nil
		}
	}
	return refuse(ReasonIDMismatch, "the serial tag %x is the HMAC of none of the %d attested IDs", p.SerialTag, len(ids))
}

// report copies what the description says into r.
func report(d *keydesc.Description, r *Result) {
	r.SecurityLevel = d.AttestationSecurityLevel.String()
	r.AttestationVersion, r.KeyMintVersion = d.AttestationVersion, d.KeyMintVersion
	r.Challenge = hex.EncodeToString(d.AttestationChallenge)
	hw := d.HardwareEnforced
	if rot := hw.RootOfTrust; rot != nil {
		r.BootState, r.DeviceLocked, r.BootKey = rot.VerifiedBootState.String(), rot.DeviceLocked, hex.EncodeToString(rot.VerifiedBootKey)
	}
	if hw.OSVersion != nil {
		r.OSVersion = *hw.OSVersion
	}
	if hw.OSPatchLevel != nil {
		r.OSPatchLevel = *hw.OSPatchLevel
	}
	ids := AttestedIDs{Serial: string(hw.AttestationIDSerial), IMEI: string(hw.AttestationIDIMEI), SecondIMEI: string(hw.AttestationIDSecondIMEI),
		MEID: string(hw.AttestationIDMEID), Brand: string(hw.AttestationIDBrand), Model: string(hw.AttestationIDModel)}
	if ids != (AttestedIDs{}) {
		r.IDs = &ids
	}
}

// rawLeafKey is the leaf's key as raw bytes (65-byte SEC1 for P-256, 32 for Ed25519),
// with its type name; nil bytes for other keys.
func rawLeafKey(c *x509.Certificate) ([]byte, string) {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			if e, err := k.ECDH(); err == nil {
				return e.Bytes(), "ecdsa-p256"
			}
		}
		return nil, "ecdsa-" + k.Curve.Params().Name
	case ed25519.PublicKey:
		return []byte(k), "ed25519"
	}
	return nil, fmt.Sprintf("%v", c.PublicKeyAlgorithm)
}

// publicKeyHex is the leaf's key type and its hex: raw for P-256 and Ed25519, else the
// SubjectPublicKeyInfo.
func publicKeyHex(c *x509.Certificate) (string, string) {
	raw, typ := rawLeafKey(c)
	if raw == nil {
		raw = c.RawSubjectPublicKeyInfo
	}
	return typ, hex.EncodeToString(raw)
}

// rawKey is an ExpectedKey as raw bytes.
func rawKey(k crypto.PublicKey) ([]byte, error) {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA key on %s, not P-256", k.Curve.Params().Name)
		}
		e, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		return e.Bytes(), nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("an Ed25519 key of %d bytes", len(k))
		}
		return []byte(k), nil
	case []byte:
		if len(k) == ed25519.PublicKeySize || len(k) == 65 && k[0] == 4 {
			return k, nil
		}
		return nil, fmt.Errorf("raw key of %d bytes: want 32 (Ed25519) or 65 (uncompressed P-256)", len(k))
	}
	return nil, fmt.Errorf("key type %T: want *ecdsa.PublicKey, ed25519.PublicKey or []byte", k)
}
