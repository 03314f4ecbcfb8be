package attest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/internal/keydesc"
)

// The fields of Google's normal_cert_chain.pem (see testdata/attestation/google/README.md).
const (
	googleBootKey = "26ac4c60beb1e378357cad0c3061347af8df6fbabbb0d8cea2445855ee01e368"
	googleRSARoot = "feb2ea7551ee316ed4bb443c8293b884dbfdea40b603ee3e4f4a897e4580fbae"
	googleECRoot  = "3ee44512a1af2beb39c889490c60ea3f82e43f5d5a5532f5ab9419f676cd07ec"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statusList(t testing.TB, json string) *StatusList {
	t.Helper()
	l, err := ParseStatusList([]byte(json))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestVerifyGoogleChain: Google's real TEE chain verifies against the shipped roots as
// of a date inside its validity, with every check on, and Verify reads its exact fields.
func TestVerifyGoogleChain(t *testing.T) {
	chain := readChain(t, googleDir+"normal_cert_chain.pem")
	leafKey := parseCert(t, chain[0]).PublicKey.(*ecdsa.PublicKey)
	point, err := leafKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	google := statusList(t, string(readFile(t, googleDir+"status.json")))
	full := Policy{
		At: googleAt, Status: google, Challenge: []byte("challenge"), ExpectedKey: leafKey,
		BootKeys: [][]byte{{9}, mustHex(t, googleBootKey)}, MinPatchLevel: 202302,
	}
	r := Verify(chain, full)
	want := Result{
		Accepted: true, SecurityLevel: "TrustedEnvironment", KeyType: "ecdsa-p256", AttestedKey: hex.EncodeToString(point.Bytes()),
		Challenge: hex.EncodeToString([]byte("challenge")), BootState: "Verified", DeviceLocked: true, BootKey: googleBootKey,
		OSVersion: 130000, OSPatchLevel: 202302, AttestationVersion: 200, KeyMintVersion: 200, RootKey: googleRSARoot,
		ChainSerials:  []string{"1", "d05facf443ed535548d994f6845e6d3c", "81a25b152f47389f1a0803ccb64811ac3d95c2", "388266760658996860e", "d50ff25ba3f2d6b3"},
		StatusChecked: true, ChallengeChecked: true, KeyChecked: true, BootKeyChecked: true, Checked: googleAt,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got  %+v\nwant %+v", r, want)
	}
	if len(r.AttestedKey) != 130 || !strings.HasPrefix(r.AttestedKey, "04") {
		t.Fatalf("attested key %s: want 65 bytes uncompressed", r.AttestedKey)
	}
	// The raw forms of the expected key are accepted too.
	for _, k := range []any{point.Bytes(), leafKey} {
		p := full
		p.ExpectedKey = k
		if r := Verify(chain, p); !r.Accepted {
			t.Fatalf("ExpectedKey %T: %s %s", k, r.Reason, r.Detail)
		}
	}
	// Nothing but At: accepted, and the unchecked values are reported as such.
	r = Verify(chain, Policy{At: googleAt})
	if !r.Accepted || r.StatusChecked || r.ChallengeChecked || r.KeyChecked || r.BootKeyChecked || r.IDsChecked || r.BootKey != googleBootKey {
		t.Fatalf("minimal policy: %+v", r)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyRefusesGoogle: each tampering of Google's real chain, or of the policy it is
// verified under, is refused with its own reason.
func TestVerifyRefusesGoogle(t *testing.T) {
	chain := readChain(t, googleDir+"normal_cert_chain.pem")
	leafKey := parseCert(t, chain[0]).PublicKey.(*ecdsa.PublicKey)
	ok := Policy{At: googleAt, Challenge: []byte("challenge"), ExpectedKey: leafKey, BootKeys: [][]byte{mustHex(t, googleBootKey)}, MinPatchLevel: 202302}
	other := newMiniCA(t)
	otherEd, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) [][]byte { // the last byte of certificate i: inside its signature
		c := copyChain(chain)
		c[i][len(c[i])-1] ^= 0x01
		return c
	}
	nine := append(copyChain(chain), chain[1], chain[1], chain[1], chain[1])
	for _, tc := range []struct {
		name   string
		chain  [][]byte
		policy func(p *Policy)
		reason string
		detail string // a fragment of the detail
	}{
		{"no At", chain, func(p *Policy) { p.At = time.Time{} }, ReasonPolicy, "At"},
		{"empty", nil, nil, ReasonChainEmpty, ""},
		{"leaf alone", chain[:1], nil, ReasonChainTooShort, ""},
		{"nine certificates", nine, nil, ReasonChainTooLong, "9 certificates, at most 8"},
		{"longer than MaxChain", chain, func(p *Policy) { p.MaxChain = 4 }, ReasonChainTooLong, "at most 4"},
		{"not DER", [][]byte{chain[0], []byte("certificate"), chain[4]}, nil, ReasonParse, "certificate 1"},
		{"another root", chain, func(p *Policy) { p.Roots = other.roots(t) }, ReasonUntrustedRoot, googleRSARoot},
		{"a root without its intermediates", [][]byte{chain[0], chain[4]}, nil, ReasonSignature, "certificate 0's issuer"},
		{"an intermediate missing", [][]byte{chain[0], chain[2], chain[3], chain[4]}, nil, ReasonSignature, "certificate 0's issuer"},
		{"leaf signature broken", flip(0), nil, ReasonSignature, "certificate 0 is not signed"},
		{"intermediate signature broken", flip(2), nil, ReasonSignature, "certificate 2 is not signed"},
		{"expired", chain, func(p *Policy) { p.At = time.Date(2023, 4, 1, 0, 0, 0, 0, time.UTC) }, ReasonExpired, "certificate 1 (serial d05facf443ed535548d994f6845e6d3c) expired at 2023-03-24T01:33:52Z"},
		{"not yet valid", chain, func(p *Policy) { p.At = time.Date(2023, 2, 18, 12, 0, 0, 0, time.UTC) }, ReasonNotYetValid, "certificate 2"},
		{"stale status list", chain, func(p *Policy) { p.StatusStale = true }, ReasonStatusStale, ""},
		{"attestation key revoked", chain, func(p *Policy) {
			p.Status = statusList(t, `{"entries": {"d05facf443ed535548d994f6845e6d3c": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}`)
		}, ReasonRevoked, "certificate 1 (serial d05facf443ed535548d994f6845e6d3c) is REVOKED (KEY_COMPROMISE)"},
		{"intermediate suspended", chain, func(p *Policy) {
			p.Status = statusList(t, `{"entries": {"388266760658996860e": {"status": "SUSPENDED"}}}`)
		}, ReasonRevoked, "certificate 3"},
		{"wrong challenge", chain, func(p *Policy) { p.Challenge = []byte("challengf") }, ReasonChallenge, ""},
		{"empty challenge expected", chain, func(p *Policy) { p.Challenge = []byte{} }, ReasonChallenge, ""},
		{"not the genesis key", chain, func(p *Policy) { p.ExpectedKey = &newP256(t).PublicKey }, ReasonKeyMismatch, ""},
		{"an Ed25519 genesis key", chain, func(p *Policy) { p.ExpectedKey = otherEd }, ReasonKeyMismatch, ""},
		{"an unusable expected key", chain, func(p *Policy) { p.ExpectedKey = "key" }, ReasonPolicy, "ExpectedKey"},
		{"a raw key of 33 bytes", chain, func(p *Policy) { p.ExpectedKey = make([]byte, 33) }, ReasonPolicy, "33 bytes"},
		{"boot key not approved", chain, func(p *Policy) { p.BootKeys = [][]byte{make([]byte, 32)} }, ReasonBootKey, googleBootKey},
		{"patch level too low", chain, func(p *Policy) { p.MinPatchLevel = 202303 }, ReasonPatchLevel, "202302 is below the minimum 202303"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			if tc.policy != nil {
				tc.policy(&p)
			}
			r := Verify(tc.chain, p)
			if r.Accepted || r.Reason != tc.reason || !strings.Contains(r.Detail, tc.detail) {
				t.Fatalf("got %v %q %q, want %q with %q", r.Accepted, r.Reason, r.Detail, tc.reason, tc.detail)
			}
			if r.Transient != (tc.reason == ReasonStatusStale) {
				t.Fatalf("transient %v", r.Transient)
			}
		})
	}
}

// TestVerifyGoogleAttestKeyChains: Google's real chain of ATTEST_KEY keys, and its forged
// variant, have key descriptions below the leaf: refused, as Google's verifier does.
func TestVerifyGoogleAttestKeyChains(t *testing.T) {
	for file, reason := range map[string]string{
		"cert_chain_with_attest_keys.pem":      ReasonExtraKeyDescription,
		"fake_cert_chain_with_attest_keys.pem": ReasonExtraKeyDescription,
	} {
		r := Verify(readChain(t, googleDir+file), Policy{At: googleAt})
		if r.Accepted || r.Reason != reason {
			t.Errorf("%s: %v %s %s, want %s", file, r.Accepted, r.Reason, r.Detail, reason)
		}
	}
}

// devAt is inside the development authority's validity in these tests.
var devAt = time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)

func newAuthority(t testing.TB) *devattest.Authority {
	t.Helper()
	a, err := devattest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), "amos attest test")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func devRoots(t testing.TB, a *devattest.Authority) *Roots {
	t.Helper()
	r, err := LoadRoots(a.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func serialTag(key []byte, id string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	return m.Sum(nil)
}

// TestVerifyDevAuthority: chains of the development authority, trusted as a payer-added
// root: honest ones pass; each dishonest claim is refused with its reason; the
// development root is not a Google root.
func TestVerifyDevAuthority(t *testing.T) {
	a := newAuthority(t)
	roots := devRoots(t, a)
	key := newP256(t)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tagKey := []byte("registry key")
	imei, imei2 := "490154203237518", "356938035643809"
	monthFrom := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	shortLived, err := a.NewIntermediate(big.NewInt(0x5eed), monthFrom, monthFrom.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		pub    any
		o      devattest.Options
		policy func(p *Policy)
		reason string // "" for accepted
	}{
		{"honest P-256", &key.PublicKey, devattest.Options{Challenge: []byte("bind")}, nil, ""},
		{"honest Ed25519", edPub, devattest.Options{Challenge: []byte("bind")}, func(p *Policy) { p.ExpectedKey = edPub }, ""},
		{"Ed25519 key as raw bytes", edPub, devattest.Options{Challenge: []byte("bind")}, func(p *Policy) { p.ExpectedKey = []byte(edPub) }, ""},
		{"StrongBox", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), Level: devattest.StrongBox}, nil, ""},
		{"Google roots only", &key.PublicKey, devattest.Options{Challenge: []byte("bind")}, func(p *Policy) { p.Roots = nil }, ReasonUntrustedRoot},
		{"Google roots and the development root", &key.PublicKey, devattest.Options{Challenge: []byte("bind")}, func(p *Policy) { p.Roots = GoogleRoots().Union(roots) }, ""},
		{"software level", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), Level: devattest.Software}, nil, ReasonSoftwareLevel},
		{"unlocked bootloader", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), Unlocked: true, BootState: keydesc.Unverified}, nil, ReasonUnlocked},
		{"self-signed boot", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), BootState: keydesc.SelfSigned}, nil, ReasonBootState},
		{"another boot key", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), BootKey: make([]byte, 32)}, nil, ReasonBootKey},
		{"wrong challenge", &key.PublicKey, devattest.Options{Challenge: []byte("other")}, nil, ReasonChallenge},
		{"another key", &newP256(t).PublicKey, devattest.Options{Challenge: []byte("bind")}, nil, ReasonKeyMismatch},
		{"no patch level", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), OSPatchLevel: -1}, nil, ReasonPatchLevel},
		{"old patch level", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), OSPatchLevel: 202512}, nil, ReasonPatchLevel},
		{"no patch level, no minimum", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), OSPatchLevel: -1}, func(p *Policy) { p.MinPatchLevel = 0 }, ""},
		{"IMEI matches the serial tag", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), IMEI: imei, SecondIMEI: imei2}, func(p *Policy) {
			p.SerialTag, p.SerialTagKey = serialTag(tagKey, imei), tagKey
		}, ""},
		{"second IMEI matches", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), IMEI: imei, SecondIMEI: imei2}, func(p *Policy) {
			p.SerialTag, p.SerialTagKey = serialTag(tagKey, imei2), tagKey
		}, ""},
		{"serial matches", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), Serial: "SN-0001"}, func(p *Policy) {
			p.SerialTag, p.SerialTagKey = serialTag(tagKey, "SN-0001"), tagKey
		}, ""},
		{"IMEI of another handset", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), IMEI: imei}, func(p *Policy) {
			p.SerialTag, p.SerialTagKey = serialTag(tagKey, "490154203237519"), tagKey
		}, ReasonIDMismatch},
		{"another registry key", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), IMEI: imei}, func(p *Policy) {
			p.SerialTag, p.SerialTagKey = serialTag(tagKey, imei), []byte("other key")
		}, ReasonIDMismatch},
		{"no IDs attested: nothing to match", &key.PublicKey, devattest.Options{Challenge: []byte("bind")}, func(p *Policy) {
			p.SerialTag, p.SerialTagKey = serialTag(tagKey, imei), tagKey
		}, ""},
		{"short-lived intermediate, within its month", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), Intermediate: shortLived}, nil, ""},
		{"short-lived intermediate, received after its month", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), Intermediate: shortLived}, func(p *Policy) {
			p.At = monthFrom.AddDate(0, 1, 1)
		}, ReasonExpired},
		{"intermediate on the status list", &key.PublicKey, devattest.Options{Challenge: []byte("bind"), Intermediate: shortLived}, func(p *Policy) {
			p.Status = statusList(t, `{"entries": {"5eed": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}`)
		}, ReasonRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := a.Attest(tc.pub, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			p := Policy{At: devAt, Roots: roots, Challenge: []byte("bind"), ExpectedKey: &key.PublicKey,
				BootKeys: [][]byte{devattest.BootKey("amos attest test")}, MinPatchLevel: 202601}
			if tc.policy != nil {
				tc.policy(&p)
			}
			r := Verify(chain, p)
			if r.Accepted != (tc.reason == "") || r.Reason != tc.reason {
				t.Fatalf("got %v %q (%s), want %q", r.Accepted, r.Reason, r.Detail, tc.reason)
			}
			if r.Accepted && (r.BootState != "Verified" || !r.DeviceLocked || r.OSPatchLevel == 0 && tc.o.OSPatchLevel == 0) {
				t.Fatalf("accepted with %+v", r)
			}
			if (p.SerialTagKey != nil && (tc.o.IMEI != "" || tc.o.Serial != "")) != r.IDsChecked {
				t.Fatalf("ids_checked %v", r.IDsChecked)
			}
		})
	}
}

// TestVerifyDescriptionRules: descriptions an honest authority never writes, on a
// two-certificate chain of a test root.
func TestVerifyDescriptionRules(t *testing.T) {
	ca := newMiniCA(t)
	key := newP256(t)
	imported, levels := honestDescription(), honestDescription()
	one := 1
	imported.HardwareEnforced.Origin = &one
	levels.KeyMintSecurityLevel = keydesc.StrongBox
	noOrigin, noRoT, swOnly := honestDescription(), honestDescription(), honestDescription()
	noOrigin.HardwareEnforced.Origin = nil
	noRoT.HardwareEnforced.RootOfTrust = nil
	swOnly.SoftwareEnforced, swOnly.HardwareEnforced = swOnly.HardwareEnforced, keydesc.AuthorizationList{}
	for _, tc := range []struct {
		name   string
		exts   [][]byte
		reason string
	}{
		{"honest", [][]byte{marshal(t, honestDescription())}, ""},
		{"no key description", nil, ReasonNoKeyDescription},
		{"unparsable key description", [][]byte{{0x42, 0x42}}, ReasonKeyDescription},
		{"imported key", [][]byte{marshal(t, imported)}, ReasonOrigin},
		{"no origin", [][]byte{marshal(t, noOrigin)}, ReasonOrigin},
		{"levels differ", [][]byte{marshal(t, levels)}, ReasonSoftwareLevel},
		{"no root of trust", [][]byte{marshal(t, noRoT)}, ReasonKeyDescription},
		{"claims only software-enforced", [][]byte{marshal(t, swOnly)}, ReasonOrigin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Verify(ca.chain(t, &key.PublicKey, tc.exts...), Policy{At: devAt, Roots: ca.roots(t), Challenge: []byte("c"), ExpectedKey: &key.PublicKey})
			if r.Accepted != (tc.reason == "") || r.Reason != tc.reason {
				t.Fatalf("got %v %q (%s), want %q", r.Accepted, r.Reason, r.Detail, tc.reason)
			}
		})
	}
}

// TestReasonsDocumented: docs/attestation.md names every reason.
func TestReasonsDocumented(t *testing.T) {
	doc := string(readFile(t, "../../docs/attestation.md"))
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r] {
			t.Errorf("reason %q twice", r)
		}
		seen[r] = true
		if !strings.Contains(doc, "`"+r+"`") {
			t.Errorf("docs/attestation.md does not name the reason `%s`", r)
		}
	}
}
