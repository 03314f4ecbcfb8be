package devattest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"amos.example/amosd/internal/keydesc"
)

var (
	t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	t1 = time.Date(2036, 3, 1, 0, 0, 0, 0, time.UTC)
)

func newAuthority(t *testing.T) *Authority {
	t.Helper()
	a, err := New(t0, t1, "amos test")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// parseChain parses a chain and checks each link's signature and the root's.
func parseChain(t *testing.T, chain [][]byte) []*x509.Certificate {
	t.Helper()
	if len(chain) != 3 {
		t.Fatalf("chain of %d certificates, want 3", len(chain))
	}
	var certs []*x509.Certificate
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("certificate %d: %v", i, err)
		}
		certs = append(certs, c)
	}
	for i := 0; i < 2; i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
	}
	if err := certs[2].CheckSignatureFrom(certs[2]); err != nil {
		t.Fatalf("root: %v", err)
	}
	return certs
}

// TestAttestDefaults: zero Options give an honest, locked, Verified, TEE attestation of
// the key, with the authority's boot key and the default patch level.
func TestAttestDefaults(t *testing.T) {
	a := newAuthority(t)
	k := p256(t)
	chain, err := a.Attest(&k.PublicKey, Options{Challenge: []byte("binding")})
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	if !certs[0].PublicKey.(*ecdsa.PublicKey).Equal(&k.PublicKey) {
		t.Fatal("leaf key is not the attested key")
	}
	if !certs[0].NotAfter.Equal(t1) || !certs[0].NotBefore.Equal(t0) {
		t.Fatalf("leaf validity %v..%v", certs[0].NotBefore, certs[0].NotAfter)
	}
	d, err := keydesc.FromCertificate(certs[0])
	if err != nil {
		t.Fatal(err)
	}
	hw := d.HardwareEnforced
	switch {
	case d.AttestationSecurityLevel != keydesc.TrustedEnvironment || d.KeyMintSecurityLevel != keydesc.TrustedEnvironment:
		t.Errorf("levels %v %v", d.AttestationSecurityLevel, d.KeyMintSecurityLevel)
	case string(d.AttestationChallenge) != "binding":
		t.Errorf("challenge %q", d.AttestationChallenge)
	case hw.RootOfTrust == nil || !hw.RootOfTrust.DeviceLocked || hw.RootOfTrust.VerifiedBootState != keydesc.Verified:
		t.Errorf("root of trust %+v", hw.RootOfTrust)
	case !bytes.Equal(hw.RootOfTrust.VerifiedBootKey, BootKey("amos test")) || len(BootKey("amos test")) != 32:
		t.Errorf("boot key %x", hw.RootOfTrust.VerifiedBootKey)
	case hw.OSPatchLevel == nil || *hw.OSPatchLevel != DefaultOSPatchLevel:
		t.Errorf("patch level %v", hw.OSPatchLevel)
	case hw.AttestationIDSerial != nil || hw.AttestationIDIMEI != nil:
		t.Errorf("IDs attested without being asked")
	case hw.ECCurve == nil || *hw.ECCurve != curveP256:
		t.Errorf("curve %v", hw.ECCurve)
	}
}

// TestAttestOptions: each option shows in the key description; an Ed25519 key is
// attested with curve 25519; bad keys and levels are refused.
func TestAttestOptions(t *testing.T) {
	a := newAuthority(t)
	k := p256(t)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafFrom := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		pub   any
		o     Options
		check func(d *keydesc.Description, leaf *x509.Certificate) bool
	}{
		{"strongbox", &k.PublicKey, Options{Level: StrongBox}, func(d *keydesc.Description, _ *x509.Certificate) bool {
			return d.AttestationSecurityLevel == keydesc.StrongBox && d.KeyMintSecurityLevel == keydesc.StrongBox
		}},
		{"software", &k.PublicKey, Options{Level: Software}, func(d *keydesc.Description, _ *x509.Certificate) bool {
			return d.AttestationSecurityLevel == keydesc.Software && d.SoftwareEnforced.RootOfTrust != nil && d.HardwareEnforced.RootOfTrust == nil
		}},
		{"unlocked", &k.PublicKey, Options{Unlocked: true, BootState: keydesc.Unverified}, func(d *keydesc.Description, _ *x509.Certificate) bool {
			r := d.HardwareEnforced.RootOfTrust
			return !r.DeviceLocked && r.VerifiedBootState == keydesc.Unverified
		}},
		{"boot key and patch", &k.PublicKey, Options{BootKey: []byte{1, 2, 3}, OSPatchLevel: 202401}, func(d *keydesc.Description, _ *x509.Certificate) bool {
			h := d.HardwareEnforced
			return bytes.Equal(h.RootOfTrust.VerifiedBootKey, []byte{1, 2, 3}) && *h.OSPatchLevel == 202401 && *h.VendorPatchLevel == 20240101
		}},
		{"no patch", &k.PublicKey, Options{OSPatchLevel: -1}, func(d *keydesc.Description, _ *x509.Certificate) bool {
			return d.HardwareEnforced.OSPatchLevel == nil
		}},
		{"ids", &k.PublicKey, Options{Serial: "SN1", IMEI: "490154203237518", SecondIMEI: "356938035643809"}, func(d *keydesc.Description, _ *x509.Certificate) bool {
			h := d.HardwareEnforced
			return string(h.AttestationIDSerial) == "SN1" && string(h.AttestationIDIMEI) == "490154203237518" && string(h.AttestationIDSecondIMEI) == "356938035643809"
		}},
		{"leaf validity", &k.PublicKey, Options{NotBefore: leafFrom, NotAfter: leafFrom.Add(time.Hour)}, func(_ *keydesc.Description, leaf *x509.Certificate) bool {
			return leaf.NotBefore.Equal(leafFrom) && leaf.NotAfter.Equal(leafFrom.Add(time.Hour))
		}},
		{"ed25519", edPub, Options{}, func(d *keydesc.Description, leaf *x509.Certificate) bool {
			return *d.HardwareEnforced.ECCurve == curve25519 && bytes.Equal(leaf.PublicKey.(ed25519.PublicKey), edPub)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := a.Attest(tc.pub, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			certs := parseChain(t, chain)
			d, err := keydesc.FromCertificate(certs[0])
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(d, certs[0]) {
				t.Fatalf("description %+v", d)
			}
		})
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]struct {
		pub any
		o   Options
	}{
		"P-384":            {&p384.PublicKey, Options{}},
		"short ed25519":    {ed25519.PublicKey{1, 2}, Options{}},
		"string":           {"key", Options{}},
		"level":            {&k.PublicKey, Options{Level: 7}},
		"leaf before":      {&k.PublicKey, Options{NotBefore: t1, NotAfter: t0}},
		"keyless interim":  {&k.PublicKey, Options{Intermediate: &Intermediate{Cert: a.Root()}}},
		"nil ecdsa public": {(*ecdsa.PublicKey)(nil), Options{}},
	} {
		if _, err := a.Attest(bad.pub, bad.o); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v, want ErrOptions", name, err)
		}
	}
}

// TestNewIntermediate: an intermediate with a chosen serial and a short validity signs
// the leaf when passed in Options, and the leaf's validity defaults to it.
func TestNewIntermediate(t *testing.T) {
	a := newAuthority(t)
	from := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	im, err := a.NewIntermediate(big.NewInt(0x1234abcd), from, from.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := a.Attest(&p256(t).PublicKey, Options{Intermediate: im})
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	if certs[1].SerialNumber.Cmp(big.NewInt(0x1234abcd)) != 0 || !certs[1].NotAfter.Equal(from.AddDate(0, 1, 0)) {
		t.Fatalf("intermediate serial %x until %v", certs[1].SerialNumber, certs[1].NotAfter)
	}
	if !certs[0].NotAfter.Equal(certs[1].NotAfter) || certs[1].Equal(a.Intermediate().Cert) {
		t.Fatal("leaf not under the new intermediate")
	}
	if _, err := a.NewIntermediate(big.NewInt(0), from, from.Add(time.Hour)); !errors.Is(err, ErrOptions) {
		t.Fatalf("zero serial: %v", err)
	}
	if _, err := a.NewIntermediate(nil, from, from); !errors.Is(err, ErrOptions) {
		t.Fatalf("empty validity: %v", err)
	}
	if _, err := New(t0, t1, ""); !errors.Is(err, ErrOptions) {
		t.Fatalf("empty name: %v", err)
	}
	if _, err := New(t1, t0, "x"); !errors.Is(err, ErrOptions) {
		t.Fatalf("reversed validity: %v", err)
	}
}

// TestSaveLoad: Save writes the four PEM files, keys private; Load gives an authority
// with the same root, intermediate and name, whose chains verify under RootPEM; damaged
// or mismatched files are refused with ErrFiles.
func TestSaveLoad(t *testing.T) {
	a := newAuthority(t)
	dir := filepath.Join(t.TempDir(), "ca")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{RootKeyFile, IntermediateKeyFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "amos test" || !b.Root().Equal(a.Root()) || !b.Intermediate().Cert.Equal(a.Intermediate().Cert) {
		t.Fatal("loaded authority differs")
	}
	if !bytes.Equal(b.RootPEM(), a.RootPEM()) {
		t.Fatal("RootPEM differs")
	}
	block, _ := pem.Decode(a.RootPEM())
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := b.Attest(&p256(t).PublicKey, Options{})
	if err != nil {
		t.Fatal(err)
	}
	certs := parseChain(t, chain)
	if !certs[2].Equal(root) {
		t.Fatal("chain does not end at RootPEM")
	}
	if n := bytes.Count(ChainPEM(chain), []byte("BEGIN CERTIFICATE")); n != 3 {
		t.Fatalf("ChainPEM has %d blocks", n)
	}

	other := newAuthority(t)
	otherDir := filepath.Join(t.TempDir(), "other")
	if err := other.Save(otherDir); err != nil {
		t.Fatal(err)
	}
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, damage := range map[string]func(d string){
		"missing key": func(d string) { os.Remove(filepath.Join(d, RootKeyFile)) },
		"foreign key": func(d string) {
			copyFile(filepath.Join(otherDir, IntermediateKeyFile), filepath.Join(d, IntermediateKeyFile))
		},
		"foreign interim": func(d string) {
			copyFile(filepath.Join(otherDir, IntermediateFile), filepath.Join(d, IntermediateFile))
		},
		"not pem":          func(d string) { os.WriteFile(filepath.Join(d, RootFile), []byte("hello"), 0o644) },
		"two blocks":       func(d string) { os.WriteFile(filepath.Join(d, RootFile), append(a.RootPEM(), a.RootPEM()...), 0o644) },
		"key as cert file": func(d string) { copyFile(filepath.Join(d, RootKeyFile), filepath.Join(d, RootFile)) },
	} {
		d := filepath.Join(t.TempDir(), "damaged")
		if err := a.Save(d); err != nil {
			t.Fatal(err)
		}
		damage(d)
		if _, err := Load(d); !errors.Is(err, ErrFiles) {
			t.Errorf("%s: %v, want ErrFiles", name, err)
		}
	}
}
