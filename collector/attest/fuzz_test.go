package attest

import (
	"testing"
)

// FuzzParseStatusList: the status list decoder never panics, and a list it accepts
// answers lookups.
func FuzzParseStatusList(f *testing.F) {
	f.Add([]byte(listA))
	f.Add([]byte(`{"entries": {"2c8cdddfd5e03bfc": {"status": "REVOKED", "expires": "2020-11-13", "reason": "KEY_COMPROMISE", "comment": "x"}}}`))
	f.Add([]byte(`{"entries": {"abc": {"status": "REVOKED"}, "abc": {}}}`))
	f.Add(readFile(f, googleDir+"status.json"))
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := ParseStatusList(in)
		if err != nil {
			return
		}
		for k, e := range l.entries {
			if !validSerialKey(k) || (e.Status != StatusRevoked && e.Status != StatusSuspended) {
				t.Fatalf("accepted entry %q %+v", k, e)
			}
		}
	})
}

// FuzzVerify: Verify never panics on any chain bytes, and never accepts a chain built
// from fuzzed bytes around Google's real certificates unless it is that chain.
func FuzzVerify(f *testing.F) {
	chain := readChain(f, googleDir+"normal_cert_chain.pem")
	f.Add(chain[0], chain[1], chain[2])
	f.Add([]byte{0x30, 0x00}, chain[1], chain[4])
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		r := Verify([][]byte{a, b, c}, Policy{At: googleAt})
		if r.Accepted {
			t.Fatalf("accepted a forged three-certificate chain: %+v", r)
		}
		Verify([][]byte{a, chain[1], chain[2], chain[3], chain[4]}, Policy{At: googleAt, Challenge: []byte("challenge")})
	})
}

// FuzzPEM: the PEM readers of chains and roots never panic, and what they accept holds
// at least one certificate block.
func FuzzPEM(f *testing.F) {
	f.Add(readFile(f, googleDir+"normal_cert_chain.pem"))
	f.Add(googlePEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if chain, err := ParseChainPEM(in); err == nil && len(chain) == 0 {
			t.Fatal("an empty chain accepted")
		}
		if r, err := LoadRoots(in); err == nil && r.Keys() == 0 {
			t.Fatal("an empty root set accepted")
		}
	})
}
