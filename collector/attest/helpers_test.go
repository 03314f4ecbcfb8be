package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
	"time"

	"amos.example/amosd/internal/keydesc"
)

const googleDir = "../../testdata/attestation/google/"

// googleAt is a moment inside the validity of every certificate of Google's
// normal_cert_chain.pem (its RKP certificates live 2023-02-19 – 2023-03-24).
var googleAt = time.Date(2023, 3, 1, 12, 0, 0, 0, time.UTC)

// readChain reads a PEM file of certificates as DER, in order.
func readChain(t testing.TB, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var chain [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		chain = append(chain, b.Bytes)
	}
	if len(chain) == 0 {
		t.Fatalf("%s: no certificate", path)
	}
	return chain
}

func parseCert(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// copyChain copies a chain deeply, so that a case may damage its copy.
func copyChain(chain [][]byte) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = append([]byte(nil), c...)
	}
	return out
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// miniCA is a root that signs leaves directly, with any key description: for the
// rules devattest's honest chains never break.
type miniCA struct {
	root *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newMiniCA(t testing.TB) *miniCA {
	t.Helper()
	key := newP256(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "mini root"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &miniCA{root: parseCert(t, der), key: key}
}

func (ca *miniCA) roots(t testing.TB) *Roots {
	t.Helper()
	r, err := LoadRoots(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw}))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// leaf issues a two-certificate chain (leaf, root) for pub with the given extension
// values (nil: none).
func (ca *miniCA) chain(t testing.TB, pub crypto.PublicKey, exts ...[]byte) [][]byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Android Keystore Key"},
		NotBefore: ca.root.NotBefore, NotAfter: ca.root.NotAfter,
	}
	for _, e := range exts {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: keydesc.OID, Value: e})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{der, ca.root.Raw}
}

// honestDescription is a description Verify accepts, for miniCA chains to vary.
func honestDescription() *keydesc.Description {
	origin, patch := 0, 202601
	return &keydesc.Description{
		AttestationVersion: 300, AttestationSecurityLevel: keydesc.TrustedEnvironment,
		KeyMintVersion: 300, KeyMintSecurityLevel: keydesc.TrustedEnvironment,
		AttestationChallenge: []byte("c"),
		HardwareEnforced: keydesc.AuthorizationList{
			Origin:       &origin,
			RootOfTrust:  &keydesc.RootOfTrust{VerifiedBootKey: []byte{1, 2}, DeviceLocked: true},
			OSPatchLevel: &patch,
		},
	}
}

func marshal(t testing.TB, d *keydesc.Description) []byte {
	t.Helper()
	b, err := keydesc.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
