package attest

import (
	"errors"
	"reflect"
	"testing"
)

// TestGoogleRoots: the shipped file holds Google's five root certificates, which carry
// two keys (the RSA key re-issued four times, and Key Attestation CA1), and trusts the
// root of Google's real chain.
func TestGoogleRoots(t *testing.T) {
	r := GoogleRoots()
	if r.Keys() != 2 || !reflect.DeepEqual(r.KeyIDs(), []string{googleECRoot, googleRSARoot}) {
		t.Fatalf("keys %v", r.KeyIDs())
	}
	n := 0
	for _, certs := range r.byKey {
		n += len(certs)
	}
	if n != 5 {
		t.Fatalf("%d certificates, want 5", n)
	}
	chain := readChain(t, googleDir+"normal_cert_chain.pem")
	if !r.Trusts(parseCert(t, chain[len(chain)-1])) || r.Trusts(parseCert(t, chain[1])) {
		t.Fatal("Trusts")
	}
	var none *Roots
	if none.Trusts(parseCert(t, chain[4])) || none.Keys() != 0 || len(none.KeyIDs()) != 0 {
		t.Fatal("a nil set trusts something")
	}
}

// TestLoadRoots: payer roots load from PEM; what is not a PEM certificate is refused;
// Union joins sets without duplicates.
func TestLoadRoots(t *testing.T) {
	ca := newMiniCA(t)
	mine := ca.roots(t)
	if mine.Keys() != 1 {
		t.Fatal("one root")
	}
	u := GoogleRoots().Union(mine).Union(mine).Union(nil)
	if u.Keys() != 3 || !u.Trusts(ca.root) {
		t.Fatalf("union: %d keys", u.Keys())
	}
	for name, in := range map[string]string{
		"empty":       "",
		"text only":   "no certificates here\n",
		"a key":       "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"not DER":     "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"broken PEM":  "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
		"half a file": string(googlePEM[:len(googlePEM)/2]),
	} {
		if _, err := LoadRoots([]byte(in)); !errors.Is(err, ErrRoots) {
			t.Errorf("%s: %v, want ErrRoots", name, err)
		}
	}
}

// TestParseChainPEM: a PEM chain gives its DER in order; what is not one is refused.
func TestParseChainPEM(t *testing.T) {
	data := readFile(t, googleDir+"normal_cert_chain.pem")
	chain, err := ParseChainPEM(append([]byte("subject=whatever\n"), data...))
	if err != nil || len(chain) != 5 || !reflect.DeepEqual(chain, readChain(t, googleDir+"normal_cert_chain.pem")) {
		t.Fatalf("%d certificates, %v", len(chain), err)
	}
	for name, in := range map[string]string{
		"empty":      "",
		"a key":      "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
		"broken PEM": string(data[:len(data)-40]),
	} {
		if _, err := ParseChainPEM([]byte(in)); !errors.Is(err, ErrChainPEM) {
			t.Errorf("%s: %v, want ErrChainPEM", name, err)
		}
	}
}
