package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
)

//go:embed roots/google.pem
var googlePEM []byte

// ErrRoots: a roots file that is not one or more PEM certificates.
var ErrRoots = errors.New("attest: bad roots")

// Roots is a set of trusted root public keys, each with the certificates that carried
// it. The zero value trusts nothing.
type Roots struct {
	byKey map[string][]*x509.Certificate // key: the DER SubjectPublicKeyInfo
}

// GoogleRoots is the set shipped in roots/google.pem: Google's hardware attestation
// roots (roots/README.md names the source). The file is embedded and checked by the
// tests; a broken one is a build defect, so GoogleRoots panics on it.
func GoogleRoots() *Roots {
	r, err := LoadRoots(googlePEM)
	if err != nil {
		panic(fmt.Sprintf("attest: the embedded roots/google.pem: %v", err))
	}
	return r
}

// LoadRoots reads PEM certificates (text outside the blocks, such as comments, is
// ignored). It refuses a file with no certificate, a block of another type, or a
// certificate that does not parse.
func LoadRoots(pemBytes []byte) (*Roots, error) {
	r := &Roots{byKey: map[string][]*x509.Certificate{}}
	rest := pemBytes
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if bytes.Contains(rest, []byte("-----BEGIN")) {
				return nil, fmt.Errorf("%w: block %d is not valid PEM", ErrRoots, n)
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: block %d is a %q, want CERTIFICATE", ErrRoots, n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrRoots, n, err)
		}
		r.add(cert)
	}
	if len(r.byKey) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrRoots)
	}
	return r, nil
}

func (r *Roots) add(cert *x509.Certificate) {
	k := string(cert.RawSubjectPublicKeyInfo)
	for _, c := range r.byKey[k] {
		if c.Equal(cert) {
			return
		}
	}
	r.byKey[k] = append(r.byKey[k], cert)
}

// Union is a new set with the keys of r and of other (either may be nil).
func (r *Roots) Union(other *Roots) *Roots {
	u := &Roots{byKey: map[string][]*x509.Certificate{}}
	for _, s := range []*Roots{r, other} {
		if s == nil {
			continue
		}
		for _, certs := range s.byKey {
			for _, c := range certs {
				u.add(c)
			}
		}
	}
	return u
}

// Trusts reports whether cert's public key is one of the set's.
func (r *Roots) Trusts(cert *x509.Certificate) bool {
	if r == nil {
		return false
	}
	_, ok := r.byKey[string(cert.RawSubjectPublicKeyInfo)]
	return ok
}

// Keys is the number of distinct trusted keys.
func (r *Roots) Keys() int {
	if r == nil {
		return 0
	}
	return len(r.byKey)
}

// KeyIDs lists the trusted keys as the lowercase hex SHA-256 of their
// SubjectPublicKeyInfo, sorted.
func (r *Roots) KeyIDs() []string {
	var ids []string
	if r != nil {
		for k := range r.byKey {
			ids = append(ids, keyID([]byte(k)))
		}
	}
	sort.Strings(ids)
	return ids
}

// keyID is the lowercase hex SHA-256 of a DER SubjectPublicKeyInfo.
func keyID(spki []byte) string {
	h := sha256.Sum256(spki)
	return hex.EncodeToString(h[:])
}

// ErrChainPEM: a chain file that is not one or more PEM certificates.
var ErrChainPEM = errors.New("attest: bad chain PEM")

// ParseChainPEM reads a chain written as PEM CERTIFICATE blocks, leaf first, and
// returns their DER in order (text outside the blocks is ignored). The DER is not
// parsed here: Verify does, and refuses with ReasonParse.
func ParseChainPEM(pemBytes []byte) ([][]byte, error) {
	var chain [][]byte
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: block %d is a %q, want CERTIFICATE", ErrChainPEM, len(chain)+1, block.Type)
		}
		chain = append(chain, block.Bytes)
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("%w: block %d is not valid PEM", ErrChainPEM, len(chain)+1)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrChainPEM)
	}
	return chain, nil
}
