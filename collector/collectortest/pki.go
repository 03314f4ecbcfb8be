// Package collectortest makes what tests of the collector need: signed records of simulated
// handsets and makers, and a throwaway CA with a server certificate for real TLS.
package collectortest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a CA and one server certificate it signed, as PEM and as files.
type PKI struct {
	CAPEM, CertPEM, KeyPEM    []byte
	CAFile, CertFile, KeyFile string
	Pool                      *x509.CertPool // holds the CA only
}

// New makes a CA and a server certificate for 127.0.0.1, ::1 and localhost, and writes
// ca.pem, server.pem and server.key (0600) to a temporary directory of t.
func New(t testing.TB) *PKI {
	t.Helper()
	return NewValid(t, 24*time.Hour)
}

// NewValid is New with certificates valid from an hour ago for the given time: a test
// that moves a clock forward by months needs them to outlive it.
func NewValid(t testing.TB, validity time.Duration) *PKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "amos-collector test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "amos-collector test server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &PKI{
		CAPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server.key"),
		Pool:     x509.NewCertPool(),
	}
	p.Pool.AddCert(ca)
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{p.CAFile, p.CAPEM, 0o644}, {p.CertFile, p.CertPEM, 0o644}, {p.KeyFile, p.KeyPEM, 0o600}} {
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// ClientConfig returns a client TLS configuration that trusts only the CA: TLS 1.2 at
// least, as amosd's (SPEC §5).
func (p *PKI) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
}
