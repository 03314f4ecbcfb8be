package devattest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// The files Save writes in its directory.
const (
	RootFile            = "root.pem"
	RootKeyFile         = "root.key"
	IntermediateFile    = "intermediate.pem"
	IntermediateKeyFile = "intermediate.key"
)

// RootPEM is the root certificate as one PEM block: what a development verifier trusts.
func (a *Authority) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.root.Raw})
}

// ChainPEM encodes a chain (as Attest returns it) as PEM blocks, leaf first.
func ChainPEM(chain [][]byte) []byte {
	var b bytes.Buffer
	for _, der := range chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return b.Bytes()
}

// Save writes the root and the authority's intermediate, certificates and keys, as PEM
// files in dir (created mode 0700 if absent): root.pem, root.key, intermediate.pem,
// intermediate.key; the keys mode 0600.
func (a *Authority) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devattest: %w", err)
	}
	rootKey, err := x509.MarshalPKCS8PrivateKey(a.rootKey)
	if err != nil {
		return fmt.Errorf("devattest: root key: %w", err)
	}
	imKey, err := x509.MarshalPKCS8PrivateKey(a.intermediate.key)
	if err != nil {
		return fmt.Errorf("devattest: intermediate key: %w", err)
	}
	for _, f := range []struct {
		name, typ string
		der       []byte
		mode      os.FileMode
	}{
		{RootFile, "CERTIFICATE", a.root.Raw, 0o644},
		{RootKeyFile, "PRIVATE KEY", rootKey, 0o600},
		{IntermediateFile, "CERTIFICATE", a.intermediate.Cert.Raw, 0o644},
		{IntermediateKeyFile, "PRIVATE KEY", imKey, 0o600},
	} {
		path := filepath.Join(dir, f.name)
		tmp := path + ".tmp"
		data := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(tmp, data, f.mode); err != nil {
			return fmt.Errorf("devattest: %w", err)
		}
		if err := os.Chmod(tmp, f.mode); err != nil {
			return fmt.Errorf("devattest: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("devattest: %w", err)
		}
	}
	return nil
}

// Load reads an authority that Save wrote in dir. The name is the root's organization.
// The certificates must chain (the intermediate signed by the root) and each key must
// match its certificate.
func Load(dir string) (*Authority, error) {
	root, err := readCert(filepath.Join(dir, RootFile))
	if err != nil {
		return nil, err
	}
	rootKey, err := readKey(filepath.Join(dir, RootKeyFile), root)
	if err != nil {
		return nil, err
	}
	im, err := readCert(filepath.Join(dir, IntermediateFile))
	if err != nil {
		return nil, err
	}
	imKey, err := readKey(filepath.Join(dir, IntermediateKeyFile), im)
	if err != nil {
		return nil, err
	}
	if err := im.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("%w: %s is not signed by %s: %w", ErrFiles, IntermediateFile, RootFile, err)
	}
	if len(root.Subject.Organization) != 1 || root.Subject.Organization[0] == "" {
		return nil, fmt.Errorf("%w: %s: no organization to name the authority", ErrFiles, RootFile)
	}
	return &Authority{name: root.Subject.Organization[0], root: root, rootKey: rootKey, intermediate: Intermediate{Cert: im, key: imKey}}, nil
}

// readPEM reads a file of exactly one PEM block of type typ.
func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: %s: want exactly one %q PEM block", ErrFiles, path, typ)
	}
	return block.Bytes, nil
}

func readCert(path string) (*x509.Certificate, error) {
	der, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFiles, path, err)
	}
	return c, nil
}

func readKey(path string, cert *x509.Certificate) (*ecdsa.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFiles, path, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: a %T, want an ECDSA key", ErrFiles, path, k)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: %s does not match its certificate", ErrFiles, path)
	}
	return key, nil
}
