package keydesc

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"reflect"
	"testing"
)

const googleDir = "../../testdata/attestation/google/"

// googleExtensions returns the key description extension of the first certificate of
// each real file of Google's project (see testdata/attestation/google/README.md).
func googleExtensions(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range []string{"normal_cert_chain.pem", "cert_chain_with_attest_keys.pem", "key_RSA_StrongBox_on_cert0.pem"} {
		data, err := os.ReadFile(googleDir + name)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			t.Fatalf("%s: no PEM", name)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, e := range cert.Extensions {
			if e.Id.Equal(OID) {
				out[name] = e.Value
			}
		}
		if out[name] == nil {
			t.Fatalf("%s: no key description", name)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseGoogle: the real extensions parse to the exact fields, and Marshal gives the
// very same bytes back.
func TestParseGoogle(t *testing.T) {
	exts := googleExtensions(t)
	tee, sb := exts["normal_cert_chain.pem"], exts["key_RSA_StrongBox_on_cert0.pem"]
	for _, tc := range []struct {
		name  string
		ext   []byte
		check func(d *Description) bool
	}{
		{"TEE, attestation version 200", tee, func(d *Description) bool {
			hw, rot := d.HardwareEnforced, d.HardwareEnforced.RootOfTrust
			return d.AttestationVersion == 200 && d.KeyMintVersion == 200 &&
				d.AttestationSecurityLevel == TrustedEnvironment && d.KeyMintSecurityLevel == TrustedEnvironment &&
				string(d.AttestationChallenge) == "challenge" && len(d.UniqueID) == 0 &&
				reflect.DeepEqual(hw.Purpose, []int{2}) && *hw.Algorithm == 3 && *hw.KeySize == 256 &&
				reflect.DeepEqual(hw.Digest, []int{4}) && *hw.ECCurve == 1 && hw.NoAuthRequired && *hw.Origin == 0 &&
				bytes.Equal(rot.VerifiedBootKey, mustHex(t, "26ac4c60beb1e378357cad0c3061347af8df6fbabbb0d8cea2445855ee01e368")) &&
				rot.DeviceLocked && rot.VerifiedBootState == Verified &&
				bytes.Equal(rot.VerifiedBootHash, mustHex(t, "eaa453395774dfa111215c607b7d09f12557f76515d1fa971696c71dab167e41")) &&
				*hw.OSVersion == 130000 && *hw.OSPatchLevel == 202302 && *hw.VendorPatchLevel == 20230205 && *hw.BootPatchLevel == 20230205 &&
				hw.AttestationIDSerial == nil && hw.AttestationIDIMEI == nil && len(hw.Extra) == 0 &&
				*d.SoftwareEnforced.CreationDateTime == 1678285947542 && len(d.SoftwareEnforced.AttestationApplicationID) == 76 &&
				len(d.SoftwareEnforced.Extra) == 3 && d.SoftwareEnforced.Extra[0].Tag == 400 && d.SoftwareEnforced.Extra[2].Tag == 402
		}},
		{"StrongBox, Keymaster 4, unlocked", sb, func(d *Description) bool {
			hw, rot := d.HardwareEnforced, d.HardwareEnforced.RootOfTrust
			return d.AttestationVersion == 3 && d.KeyMintVersion == 4 &&
				d.AttestationSecurityLevel == StrongBox && d.KeyMintSecurityLevel == StrongBox &&
				string(d.AttestationChallenge) == "abc" &&
				reflect.DeepEqual(hw.Purpose, []int{2, 3}) && *hw.Algorithm == 3 && *hw.KeySize == 256 && hw.ECCurve == nil &&
				bytes.Equal(rot.VerifiedBootKey, make([]byte, 32)) && !rot.DeviceLocked && rot.VerifiedBootState == Unverified &&
				*hw.OSVersion == 0 && *hw.OSPatchLevel == 201907 && *hw.VendorPatchLevel == 20190705 && *hw.BootPatchLevel == 20190700
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(tc.ext)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(d) {
				t.Fatalf("fields: %+v\nhardware %+v\nroot of trust %+v", d, d.HardwareEnforced, d.HardwareEnforced.RootOfTrust)
			}
			again, err := Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, tc.ext) {
				t.Fatalf("Marshal(Parse(x)) != x:\n%x\n%x", again, tc.ext)
			}
		})
	}
}

// el encodes one EXPLICIT context-specific element around the DER value v.
func el(tag int, v []byte) []byte {
	b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: v})
	if err != nil {
		panic(err)
	}
	return b
}

func seq(parts ...[]byte) []byte {
	b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: bytes.Join(parts, nil)})
	if err != nil {
		panic(err)
	}
	return b
}

func der(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// description builds a KeyDescription with the given hardwareEnforced list content.
func description(hw []byte) []byte {
	return seq(der(300), der(asn1.Enumerated(1)), der(300), der(asn1.Enumerated(1)), der([]byte("c")), der([]byte{}), seq(), hw)
}

// TestParseRefuses: each malformed input is refused with ErrMalformed and, where one
// applies, the specific sentinel.
func TestParseRefuses(t *testing.T) {
	good := description(seq(el(1, []byte{0x31, 0x03, 0x02, 0x01, 0x02}), el(704, seq(der([]byte{1}), der(true), der(asn1.Enumerated(0))))))
	if _, err := Parse(good); err != nil {
		t.Fatalf("the base case: %v", err)
	}
	rot := func(parts ...[]byte) []byte { return description(seq(el(704, seq(parts...)))) }
	for _, tc := range []struct {
		name string
		in   []byte
		also error
	}{
		{"empty", nil, nil},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrTrailingData},
		{"not a sequence", der(5), nil},
		{"seven fields", seq(der(300), der(asn1.Enumerated(1)), der(300), der(asn1.Enumerated(1)), der([]byte("c")), der([]byte{}), seq()), nil},
		{"nine fields", seq(der(300), der(asn1.Enumerated(1)), der(300), der(asn1.Enumerated(1)), der([]byte("c")), der([]byte{}), seq(), seq(), der(1)), ErrTrailingData},
		{"level as INTEGER", seq(der(300), der(1), der(300), der(asn1.Enumerated(1)), der([]byte("c")), der([]byte{}), seq(), seq()), nil},
		{"list as SET", description([]byte{0x31, 0x00}), nil},
		{"tags decreasing", description(seq(el(3, der(256)), el(2, der(3)))), ErrTagOrder},
		{"tag twice", description(seq(el(2, der(3)), el(2, der(3)))), ErrTagOrder},
		{"high tags decreasing", description(seq(el(706, der(202401)), el(705, der(140000)))), ErrTagOrder},
		{"universal element", description(seq(der(3))), nil},
		{"implicit (primitive) tag", description(seq([]byte{0x82, 0x01, 0x03})), nil},
		{"algorithm as OCTET STRING", description(seq(el(2, der([]byte{3})))), nil},
		{"two values in one tag", description(seq(el(2, append(der(3), der(3)...)))), ErrTrailingData},
		{"serial as INTEGER", description(seq(el(713, der(5)))), nil},
		{"purpose not a SET", description(seq(el(1, seq(der(2))))), nil},
		{"purpose SET unsorted", description(seq(el(1, []byte{0x31, 0x06, 0x02, 0x01, 0x03, 0x02, 0x01, 0x02}))), nil},
		{"noAuthRequired not NULL", description(seq(el(503, der(true)))), nil},
		{"non-minimal INTEGER", description(seq(el(3, []byte{0x02, 0x02, 0x00, 0x01}))), nil},
		{"non-minimal length", description(seq(el(3, []byte{0x02, 0x81, 0x01, 0x01}))), nil},
		{"indefinite length", description(seq(el(3, []byte{0x02, 0x80, 0x01, 0x00, 0x00}))), nil},
		{"non-minimal high tag", description(seq([]byte{0xbf, 0x80, 0x05, 0x03, 0x02, 0x01, 0x01})), nil},
		{"high form for a low tag", description(seq([]byte{0xbf, 0x05, 0x03, 0x02, 0x01, 0x01})), nil},
		{"truncated element", description(seq([]byte{0xa2, 0x05, 0x02, 0x01})), nil},
		{"root of trust: BOOLEAN 0x01 (not DER)", rot(der([]byte{1}), []byte{0x01, 0x01, 0x01}, der(asn1.Enumerated(0))), nil},
		{"root of trust: two fields", rot(der([]byte{1}), der(true)), nil},
		{"root of trust: five fields", rot(der([]byte{1}), der(true), der(asn1.Enumerated(0)), der([]byte{2}), der([]byte{3})), ErrTrailingData},
		{"root of trust: state as INTEGER", rot(der([]byte{1}), der(true), der(0)), nil},
		{"root of trust: not a SEQUENCE", description(seq(el(704, der([]byte{1})))), nil},
		{"root of trust: trailing after SEQUENCE", description(seq(el(704, append(seq(der([]byte{1}), der(true), der(asn1.Enumerated(0))), 0, 0)))), ErrTrailingData},
		{"unknown tag with two values", description(seq(el(9999, append(der(1), der(2)...)))), ErrTrailingData},
		{"unknown tag empty", description(seq(el(9999, nil))), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %+v, %v; want ErrMalformed", d, err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("%v; want also %v", err, tc.also)
			}
		})
	}
}

// TestParseHighTags: tags above 30 (high-tag-number form), IDs and unknown tags are read;
// unknown ones are kept and written back in place.
func TestParseHighTags(t *testing.T) {
	in := description(seq(
		el(2, der(3)),
		el(713, der([]byte("SN-1"))),
		el(714, der([]byte("490154203237518"))),
		el(715, der([]byte{})),
		el(723, der([]byte("356938035643809"))),
		el(1000, der(2048)),
		el(100000, der([]byte("x"))),
	))
	d, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	hw := d.HardwareEnforced
	if string(hw.AttestationIDSerial) != "SN-1" || string(hw.AttestationIDIMEI) != "490154203237518" ||
		string(hw.AttestationIDSecondIMEI) != "356938035643809" || hw.AttestationIDMEID == nil || len(hw.AttestationIDMEID) != 0 {
		t.Fatalf("IDs %+v", hw)
	}
	if len(hw.Extra) != 2 || hw.Extra[0].Tag != 1000 || hw.Extra[1].Tag != 100000 || !bytes.Equal(hw.Extra[0].Value, der(2048)) {
		t.Fatalf("extra %+v", hw.Extra)
	}
	out, err := Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("round trip:\n%x\n%x", out, in)
	}
}

// TestMarshalRoundTrip: every field Marshal writes comes back equal from Parse.
func TestMarshalRoundTrip(t *testing.T) {
	d := &Description{
		AttestationVersion: 400, AttestationSecurityLevel: StrongBox, KeyMintVersion: 400, KeyMintSecurityLevel: StrongBox,
		AttestationChallenge: []byte("binding"), UniqueID: []byte{},
		SoftwareEnforced: AuthorizationList{CreationDateTime: ptr(int64(1767225600000)), AttestationApplicationID: []byte{0x30, 0x00}},
		HardwareEnforced: AuthorizationList{
			Purpose: []int{2, 7}, Algorithm: ptr(3), KeySize: ptr(256), Digest: []int{0, 4}, ECCurve: ptr(1), NoAuthRequired: true, Origin: ptr(0),
			RootOfTrust: &RootOfTrust{VerifiedBootKey: bytes.Repeat([]byte{7}, 32), DeviceLocked: true, VerifiedBootState: SelfSigned, VerifiedBootHash: []byte{1}},
			OSVersion:   ptr(160000), OSPatchLevel: ptr(202611), VendorPatchLevel: ptr(20261101), BootPatchLevel: ptr(20261101),
			AttestationIDBrand: []byte("amos"), AttestationIDDevice: []byte("d"), AttestationIDProduct: []byte("p"),
			AttestationIDSerial: []byte("SN"), AttestationIDIMEI: []byte("1"), AttestationIDMEID: []byte("2"),
			AttestationIDManufacturer: []byte("m"), AttestationIDModel: []byte("M"), AttestationIDSecondIMEI: []byte("3"),
			Extra: []Element{{Tag: 724, Value: der([]byte("module hash"))}, {Tag: 5000, Value: der(asn1.NullRawValue)}},
		},
	}
	b, err := Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("round trip:\n%+v\n%+v", got, d)
	}
	// Absent fields stay absent: an empty description.
	empty, err := Marshal(&Description{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Parse(empty)
	if err != nil {
		t.Fatal(err)
	}
	if e.HardwareEnforced.RootOfTrust != nil || e.HardwareEnforced.Purpose != nil || e.HardwareEnforced.AttestationIDSerial != nil || e.AttestationChallenge == nil {
		t.Fatalf("empty: %+v", e)
	}
}

// TestMarshalRefuses: what Marshal cannot encode faithfully is ErrInvalid.
func TestMarshalRefuses(t *testing.T) {
	for name, d := range map[string]*Description{
		"nil":                nil,
		"extra shadows":      {HardwareEnforced: AuthorizationList{Algorithm: ptr(3), Extra: []Element{{Tag: TagAlgorithm, Value: der(3)}}}},
		"extra twice":        {SoftwareEnforced: AuthorizationList{Extra: []Element{{Tag: 900, Value: der(1)}, {Tag: 900, Value: der(2)}}}},
		"extra not DER":      {HardwareEnforced: AuthorizationList{Extra: []Element{{Tag: 900, Value: []byte{0x02}}}}},
		"extra two values":   {HardwareEnforced: AuthorizationList{Extra: []Element{{Tag: 900, Value: append(der(1), der(1)...)}}}},
		"extra negative tag": {HardwareEnforced: AuthorizationList{Extra: []Element{{Tag: -1, Value: der(1)}}}},
	} {
		if _, err := Marshal(d); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestFromCertificate: the extension is found among others; its absence is
// ErrNoExtension; twice is malformed.
func TestFromCertificate(t *testing.T) {
	ext := googleExtensions(t)["normal_cert_chain.pem"]
	other := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Value: []byte{3, 2, 7, 128}}
	mine := pkix.Extension{Id: OID, Value: ext}
	if d, err := FromCertificate(&x509.Certificate{Extensions: []pkix.Extension{other, mine}}); err != nil || d.AttestationVersion != 200 {
		t.Fatalf("found: %v %v", d, err)
	}
	if _, err := FromCertificate(&x509.Certificate{Extensions: []pkix.Extension{other}}); !errors.Is(err, ErrNoExtension) {
		t.Fatalf("absent: %v", err)
	}
	if _, err := FromCertificate(&x509.Certificate{Extensions: []pkix.Extension{mine, mine}}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("twice: %v", err)
	}
	if _, err := FromCertificate(&x509.Certificate{Extensions: []pkix.Extension{{Id: OID, Value: []byte{0x42, 0x42}}}}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}

// TestNames: the levels and states print as the schema names them.
func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		Software.String(): "Software", TrustedEnvironment.String(): "TrustedEnvironment", StrongBox.String(): "StrongBox",
		SecurityLevel(9).String(): "SecurityLevel(9)", Verified.String(): "Verified", SelfSigned.String(): "SelfSigned",
		Unverified.String(): "Unverified", Failed.String(): "Failed", BootState(7).String(): "BootState(7)",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	if Software.Hardware() || !TrustedEnvironment.Hardware() || !StrongBox.Hardware() || SecurityLevel(3).Hardware() {
		t.Error("Hardware()")
	}
}
