package attest

import (
	"testing"
	"time"

	"amos.example/amosd/internal/devattest"
)

// BenchmarkVerifyDevChain is the collector's cost of verifying one genesis's chain
// (leaf, intermediate, root; P-256) with every check on: once per device key.
func BenchmarkVerifyDevChain(b *testing.B) {
	a, err := devattest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC), "bench")
	if err != nil {
		b.Fatal(err)
	}
	roots, err := LoadRoots(a.RootPEM())
	if err != nil {
		b.Fatal(err)
	}
	k := newP256(b)
	chain, err := a.Attest(&k.PublicKey, devattest.Options{Challenge: []byte("bench challenge")})
	if err != nil {
		b.Fatal(err)
	}
	p := Policy{At: time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC), Roots: roots, Challenge: []byte("bench challenge"),
		ExpectedKey: &k.PublicKey, BootKeys: [][]byte{devattest.BootKey("bench")}, Status: &StatusList{}}
	b.ReportAllocs()
	for b.Loop() {
		if r := Verify(chain, p); !r.Accepted {
			b.Fatalf("refused: %s %s", r.Reason, r.Detail)
		}
	}
}

// BenchmarkVerifyGoogleChain is the same for Google's real TEE chain (RSA root).
func BenchmarkVerifyGoogleChain(b *testing.B) {
	chain := readChain(b, "../../testdata/attestation/google/normal_cert_chain.pem")
	p := Policy{At: googleAt}
	b.ReportAllocs()
	for b.Loop() {
		if r := Verify(chain, p); !r.Accepted {
			b.Fatalf("refused: %s %s", r.Reason, r.Detail)
		}
	}
}
