package proof

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"testing/cryptotest"
	"time"
)

// cst is the default reporting zone of docs/protocol.md: UTC+08:00.
const cst = 480

// fixture holds the deterministic keys and records behind the golden vectors: the same
// seeds always give the same bytes, since Ed25519 signatures are deterministic.
type fixture struct {
	maker, device, other *KeySigner
	cert                 *Certificate
	certBytes            []byte
	genesis              []byte
	days                 [][]byte // activity records for 2026-10-01..31, seq 2..32

	// The P-256 device: its certificate (AMC2), an extended genesis with a two-certificate
	// attestation chain, and activity records for 2026-10-01..03.
	p256          *P256Signer
	p256Cert      *Certificate
	p256CertBytes []byte
	attestation   [][]byte
	p256Genesis   []byte
	p256Days      [][]byte
}

func seed(label string) []byte {
	s := sha256.Sum256([]byte("amosd golden " + label))
	return s[:]
}

func mustSigner(t testing.TB, label string) *KeySigner {
	t.Helper()
	s, err := NewKeySigner(seed(label))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bootID() (b [16]byte) {
	copy(b[:], seed("boot id"))
	return b
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		maker:  mustSigner(t, "maker key"),
		device: mustSigner(t, "device key"),
		other:  mustSigner(t, "other key"),
	}
	f.cert = &Certificate{
		DevicePublicKey: f.device.PublicKey(),
		MakerID:         "amos-golden",
		Model:           "Amos G1 测试机",
		IssuedAt:        time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).Unix(),
	}
	copy(f.cert.SerialTag[:], seed("serial tag"))
	var err error
	if f.certBytes, err = f.cert.Sign(f.maker); err != nil {
		t.Fatal(err)
	}
	g := f.genesisRecord()
	if f.genesis, err = g.Sign(f.device); err != nil {
		t.Fatal(err)
	}
	prev := HashRecord(f.genesis)
	for i := 0; i < 31; i++ {
		r := f.dayRecord(i, prev)
		b, err := r.Sign(f.device)
		if err != nil {
			t.Fatal(err)
		}
		f.days = append(f.days, b)
		prev = HashRecord(b)
	}
	f.addP256(t)
	return f
}

// addP256 makes the P-256 device's vectors. ECDSA signatures are randomised: a test (not
// a fuzz target or benchmark) pins crypto's randomness so that the bytes repeat.
func (f *fixture) addP256(t testing.TB) {
	if tt, ok := t.(*testing.T); ok {
		cryptotest.SetGlobalRandom(tt, 17)
	}
	var err error
	if f.p256, err = NewP256Signer(seed("p256 device key")); err != nil {
		t.Fatal(err)
	}
	c := *f.cert
	c.DevicePublicKey = f.p256.PublicKey()
	f.p256Cert = &c
	if f.p256CertBytes, err = f.p256Cert.Sign(f.maker); err != nil {
		t.Fatal(err)
	}
	f.attestation = attestationChain(t, f.p256)
	if f.p256Genesis, err = f.p256GenesisRecord(f.attestation).Sign(f.p256); err != nil {
		t.Fatal(err)
	}
	prev := HashRecord(f.p256Genesis)
	for i := 0; i < 3; i++ {
		r := f.dayRecord(i, prev)
		r.DeviceID = f.p256.PublicKey().DeviceID()
		b, err := r.Sign(f.p256)
		if err != nil {
			t.Fatal(err)
		}
		f.p256Days = append(f.p256Days, b)
		prev = HashRecord(b)
	}
}

func (f *fixture) p256GenesisRecord(chain [][]byte) *Record {
	r := f.genesisRecord()
	r.DeviceID = f.p256.PublicKey().DeviceID()
	r.Body = &Genesis{PublicKey: f.p256.PublicKey(), Cert: f.p256Cert, Attestation: chain, Reason: ReasonFirstStart}
	return r
}

// attestationChain returns a leaf certificate for the device key and the self-signed
// root that signed it (DER, leaf first): the framing of an attestation chain. The real
// key description and roots are the collector's business (collector/attest).
func attestationChain(t testing.TB, dev *P256Signer) [][]byte {
	root, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed("attestation root"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := dev.PublicKey().ECDSA()
	from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "amos golden attestation root"},
		NotBefore: from, NotAfter: to, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &root.PublicKey, root)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Android Keystore Key"},
		NotBefore: from, NotAfter: to}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, rootTmpl, pub, root)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{leafDER, rootDER}
}

func (f *fixture) genesisRecord() *Record {
	return &Record{
		Flags:    FlagClockUnconfirmed,
		DeviceID: f.device.PublicKey().DeviceID(),
		Epoch:    1,
		Seq:      1,
		MintedAt: time.Date(2026, 9, 30, 10, 0, 0, 0, time.UTC).Unix(),
		BootID:   bootID(),
		UptimeMS: 12_345_678,
		Body:     &Genesis{PublicKey: f.device.PublicKey(), Cert: f.cert, Reason: ReasonFirstStart},
	}
}

// dayRecord returns the unsigned activity record for 2026-10-(i+1), seq i+2.
func (f *fixture) dayRecord(i int, prev Hash) *Record {
	date := NewDate(2026, time.October, i+1)
	hours := uint32(0x3F0<<uint(i%6)) & AllHours // 6 active hours
	a := &ActivityDay{
		Date:               date,
		UTCOffsetMinutes:   cst,
		InteractiveSeconds: uint32(60 + i*613%7200),
		Unlocks:            uint16(1 + i%7),
		ScreenOns:          uint16(2 + i%11),
		ActiveHours:        hours,
	}
	var flags Flags
	if i == 14 {
		flags = FlagClockJumped
	}
	return &Record{
		Flags:    flags,
		DeviceID: f.device.PublicKey().DeviceID(),
		Epoch:    1,
		Seq:      uint64(i + 2),
		PrevHash: prev,
		MintedAt: date.Next().Start(cst).Unix() + 5,
		BootID:   bootID(),
		UptimeMS: 86_400_000 * uint64(i+1),
		Body:     a,
	}
}

// chain returns the genesis and the 31 activity records in order.
func (f *fixture) chain() [][]byte {
	return append([][]byte{f.genesis}, f.days...)
}

func (f *fixture) makers(id string) (PublicKey, bool) {
	if id == f.cert.MakerID {
		return f.maker.PublicKey(), true
	}
	return PublicKey{}, false
}
