package devattest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"amos.example/amosd/internal/keydesc"
)

// Sentinels for what callers branch on.
var (
	// ErrOptions: New, NewIntermediate or Attest was given values it cannot use.
	ErrOptions = errors.New("devattest: invalid options")
	// ErrFiles: Load found the authority's files missing, unreadable or inconsistent.
	ErrFiles = errors.New("devattest: bad authority files")
)

// Defaults of Options and of the leaf's key description.
const (
	// DefaultOSPatchLevel is the osPatchLevel (YYYYMM) attested when Options leave it 0.
	DefaultOSPatchLevel = 202611
	// DefaultOSVersion is the osVersion attested (Android 16).
	DefaultOSVersion = 160000
	// AttestationVersion is the attestationVersion and keyMintVersion written (KeyMint 4).
	AttestationVersion = 400
)

// Level is the security level an attestation claims. The zero value is TEE, the honest
// default.
type Level int

// The levels Attest can claim.
const (
	TEE       Level = iota // TrustedEnvironment
	StrongBox              // StrongBox
	Software               // Software: what a verifier must refuse
)

func (l Level) keydesc() (keydesc.SecurityLevel, error) {
	switch l {
	case TEE:
		return keydesc.TrustedEnvironment, nil
	case StrongBox:
		return keydesc.StrongBox, nil
	case Software:
		return keydesc.Software, nil
	}
	return 0, fmt.Errorf("%w: level %d", ErrOptions, int(l))
}

// Options shape one attestation. The zero value is an honest attestation: TEE, device
// locked, boot state Verified, the authority's boot key, DefaultOSPatchLevel, no
// challenge, no IDs, the leaf valid as long as its intermediate.
type Options struct {
	Challenge []byte            // attestationChallenge
	Level     Level             // TEE (zero), StrongBox or Software; both security levels
	Unlocked  bool              // deviceLocked false
	BootState keydesc.BootState // zero: Verified
	// BootKey is the verifiedBootKey; nil: BootKey(the authority's name), 32 bytes.
	BootKey []byte
	// OSPatchLevel is the osPatchLevel, YYYYMM; 0: DefaultOSPatchLevel; negative: absent.
	OSPatchLevel int
	// Serial, IMEI and SecondIMEI are attested as attestationIdSerial, attestationIdImei
	// and attestationIdSecondImei when not empty.
	Serial, IMEI, SecondIMEI string
	// NotBefore and NotAfter bound the leaf; zero: the intermediate's.
	NotBefore, NotAfter time.Time
	// Intermediate signs the leaf instead of the authority's own; see NewIntermediate.
	Intermediate *Intermediate
}

// Intermediate is a provisioning CA certificate that the root signed, and its key.
type Intermediate struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Authority is a development root and its provisioning intermediate.
type Authority struct {
	name         string
	root         *x509.Certificate
	rootKey      *ecdsa.PrivateKey
	intermediate Intermediate
}

// BootKey is the default verifiedBootKey of an authority named name: SHA-256 of
// "amos devattest verified boot key\x00" and the name.
func BootKey(name string) []byte {
	h := sha256.Sum256(append([]byte("amos devattest verified boot key\x00"), name...))
	return h[:]
}

// New makes a self-signed ECDSA P-256 root and a provisioning intermediate it signs,
// both valid from notBefore to notAfter; name (not empty) names them.
func New(notBefore, notAfter time.Time, name string) (*Authority, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty name", ErrOptions)
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("%w: notAfter %v not after notBefore %v", ErrOptions, notAfter, notBefore)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devattest: root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{name}, CommonName: name + " development attestation root (NOT FOR PRODUCTION)"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("devattest: root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devattest: root certificate: %w", err)
	}
	a := &Authority{name: name, root: root, rootKey: key}
	im, err := a.NewIntermediate(nil, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	a.intermediate = *im
	return a, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devattest: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// NewIntermediate issues another provisioning intermediate under the root, with a new
// key, the given serial (nil: random) and validity: for tests of short-lived
// intermediates and of status lists. Pass it as Options.Intermediate.
func (a *Authority) NewIntermediate(serial *big.Int, notBefore, notAfter time.Time) (*Intermediate, error) {
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("%w: intermediate notAfter %v not after notBefore %v", ErrOptions, notAfter, notBefore)
	}
	if serial == nil {
		var err error
		if serial, err = randomSerial(); err != nil {
			return nil, err
		}
	} else if serial.Sign() <= 0 {
		return nil, fmt.Errorf("%w: serial %v not positive", ErrOptions, serial)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devattest: intermediate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{a.name}, CommonName: a.name + " development provisioning intermediate (NOT FOR PRODUCTION)"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.root, &key.PublicKey, a.rootKey)
	if err != nil {
		return nil, fmt.Errorf("devattest: intermediate certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devattest: intermediate certificate: %w", err)
	}
	return &Intermediate{Cert: cert, key: key}, nil
}

// Name is the authority's name.
func (a *Authority) Name() string { return a.name }

// Root is the root certificate.
func (a *Authority) Root() *x509.Certificate { return a.root }

// Intermediate is the authority's own provisioning intermediate.
func (a *Authority) Intermediate() *Intermediate { return &a.intermediate }

// Attest issues a chain for pub (an ECDSA P-256 *ecdsa.PublicKey or an
// ed25519.PublicKey): DER certificates, leaf first (leaf, intermediate, root). The leaf
// carries the key description shaped by o (see Options for the defaults).
func (a *Authority) Attest(pub crypto.PublicKey, o Options) ([][]byte, error) {
	im := o.Intermediate
	if im == nil {
		im = &a.intermediate
	}
	if im.key == nil || im.Cert == nil {
		return nil, fmt.Errorf("%w: intermediate without key", ErrOptions)
	}
	ext, err := a.description(pub, o)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter := o.NotBefore, o.NotAfter
	if notBefore.IsZero() {
		notBefore = im.Cert.NotBefore
	}
	if notAfter.IsZero() {
		notAfter = im.Cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("%w: leaf notAfter %v not after notBefore %v", ErrOptions, notAfter, notBefore)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: "Android Keystore Key"},
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: keydesc.OID, Value: ext}},
	}
	leaf, err := x509.CreateCertificate(rand.Reader, tmpl, im.Cert, pub, im.key)
	if err != nil {
		return nil, fmt.Errorf("devattest: leaf certificate: %w", err)
	}
	return [][]byte{leaf, im.Cert.Raw, a.root.Raw}, nil
}

// KeyMint's constants for the authorizations written.
const (
	purposeSign     = 2
	algorithmEC     = 3
	curveP256       = 1
	curve25519      = 4
	digestNone      = 0
	digestSHA256    = 4
	originGenerated = 0
)

// description builds the DER key description of the leaf.
func (a *Authority) description(pub crypto.PublicKey, o Options) ([]byte, error) {
	var curve, digest int
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: an ECDSA key must be on P-256", ErrOptions)
		}
		curve, digest = curveP256, digestSHA256
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrOptions, len(k))
		}
		curve, digest = curve25519, digestNone
	default:
		return nil, fmt.Errorf("%w: key type %T (want *ecdsa.PublicKey or ed25519.PublicKey)", ErrOptions, pub)
	}
	level, err := o.Level.keydesc()
	if err != nil {
		return nil, err
	}
	bootKey := o.BootKey
	if bootKey == nil {
		bootKey = BootKey(a.name)
	}
	hash := sha256.Sum256(append([]byte("amos devattest verified boot hash\x00"), bootKey...))
	algorithm, keySize, origin, osVersion := algorithmEC, 256, originGenerated, DefaultOSVersion
	hw := keydesc.AuthorizationList{
		Purpose:   []int{purposeSign},
		Algorithm: &algorithm,
		KeySize:   &keySize,
		Digest:    []int{digest},
		ECCurve:   &curve,
		Origin:    &origin,
		RootOfTrust: &keydesc.RootOfTrust{
			VerifiedBootKey:   bootKey,
			DeviceLocked:      !o.Unlocked,
			VerifiedBootState: o.BootState,
			VerifiedBootHash:  hash[:],
		},
		OSVersion: &osVersion,
	}
	hw.NoAuthRequired = true
	patch := o.OSPatchLevel
	if patch == 0 {
		patch = DefaultOSPatchLevel
	}
	if patch > 0 {
		vendor := patch*100 + 1
		hw.OSPatchLevel, hw.VendorPatchLevel, hw.BootPatchLevel = &patch, &vendor, &vendor
	}
	for _, id := range []struct {
		v   string
		dst *[]byte
	}{{o.Serial, &hw.AttestationIDSerial}, {o.IMEI, &hw.AttestationIDIMEI}, {o.SecondIMEI, &hw.AttestationIDSecondIMEI}} {
		if id.v != "" {
			*id.dst = []byte(id.v)
		}
	}
	appID, err := applicationID()
	if err != nil {
		return nil, err
	}
	d := &keydesc.Description{
		AttestationVersion:       AttestationVersion,
		AttestationSecurityLevel: level,
		KeyMintVersion:           AttestationVersion,
		KeyMintSecurityLevel:     level,
		AttestationChallenge:     o.Challenge,
		SoftwareEnforced:         keydesc.AuthorizationList{AttestationApplicationID: appID},
		HardwareEnforced:         hw,
	}
	if level == keydesc.Software { // a software keystore enforces everything itself
		d.SoftwareEnforced, d.HardwareEnforced = hw, keydesc.AuthorizationList{}
		d.SoftwareEnforced.AttestationApplicationID = appID
	}
	der, err := keydesc.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("devattest: key description: %w", err)
	}
	return der, nil
}

// applicationID is the AttestationApplicationId keystore writes for the system uids:
// one package "AndroidSystem", version 1, no signature digest.
func applicationID() ([]byte, error) {
	type packageInfo struct {
		Name    []byte
		Version int64
	}
	type appID struct {
		Packages   []packageInfo `asn1:"set"`
		Signatures [][]byte      `asn1:"set"`
	}
	der, err := asn1.Marshal(appID{Packages: []packageInfo{{Name: []byte("AndroidSystem"), Version: 1}}, Signatures: [][]byte{}})
	if err != nil {
		return nil, fmt.Errorf("devattest: application id: %w", err)
	}
	return der, nil
}
