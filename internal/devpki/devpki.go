// Package devpki makes a throwaway certificate authority and one server certificate it
// signed, as PEM and as files, for the demo, the fleet simulator and tests: never for a
// payer's collector.
package devpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Options say what the certificates are for; zero values take the defaults named.
type Options struct {
	NotBefore, NotAfter time.Time // both certificates' validity (required)
	CAName              string    // "amos development CA"
	ServerName          string    // the server certificate's common name: "amos-collector development server"
	DNSNames            []string  // ["localhost"]
	IPs                 []net.IP  // [127.0.0.1, ::1]
}

// PKI is the CA and the server certificate, as PEM, as files in one directory
// (ca.pem, server.pem, server.key with mode 0600), and ready for crypto/tls.
type PKI struct {
	CAPEM, CertPEM, KeyPEM    []byte
	CAFile, CertFile, KeyFile string
	Pool                      *x509.CertPool // the CA only
	Server                    tls.Certificate
}

// New makes the CA and the server certificate (ECDSA P-256) and writes them into dir.
func New(dir string, o Options) (*PKI, error) {
	if o.NotBefore.IsZero() || !o.NotAfter.After(o.NotBefore) {
		return nil, fmt.Errorf("devpki: validity %v to %v is empty", o.NotBefore, o.NotAfter)
	}
	if o.CAName == "" {
		o.CAName = "amos development CA"
	}
	if o.ServerName == "" {
		o.ServerName = "amos-collector development server"
	}
	if o.DNSNames == nil {
		o.DNSNames = []string{"localhost"}
	}
	if o.IPs == nil {
		o.IPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: o.CAName},
		NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: o.ServerName},
		NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    o.DNSNames, IPAddresses: o.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &PKI{
		CAPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server.key"),
		Pool:     x509.NewCertPool(),
		Server:   tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
	p.Pool.AddCert(ca)
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{{p.CAFile, p.CAPEM, 0o644}, {p.CertFile, p.CertPEM, 0o644}, {p.KeyFile, p.KeyPEM, 0o600}} {
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			return nil, fmt.Errorf("devpki: write %s: %w", f.path, err)
		}
	}
	return p, nil
}

// ClientConfig is a client TLS configuration that trusts only the CA, TLS 1.2 at
// least, as amosd's.
func (p *PKI) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
}

// LoadPool reads a PEM bundle of CA certificates.
func LoadPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("devpki: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}
