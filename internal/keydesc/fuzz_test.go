package keydesc

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics; whatever it accepts, Marshal encodes back to the very
// same bytes (the accepted form is canonical) and Parse reads that to an equal value.
func FuzzParse(f *testing.F) {
	for _, ext := range googleExtensions(f) {
		f.Add(ext)
	}
	f.Add(description(seq(el(2, der(3)), el(713, der([]byte("SN"))), el(1000, der(1)))))
	d := &Description{AttestationVersion: 400, AttestationSecurityLevel: TrustedEnvironment, HardwareEnforced: AuthorizationList{
		Purpose: []int{2}, RootOfTrust: &RootOfTrust{VerifiedBootKey: []byte{1}, DeviceLocked: true}, OSPatchLevel: ptr(202611),
		AttestationIDIMEI: []byte("490154203237518"), NoAuthRequired: true,
	}}
	if b, err := Marshal(d); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Parse(in)
		if err != nil {
			return
		}
		out, err := Marshal(d)
		if err != nil {
			t.Fatalf("Marshal of a parsed description: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("two byte forms of one description:\n%x\n%x", in, out)
		}
		again, err := Parse(out)
		if err != nil || !reflect.DeepEqual(again, d) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, again, d)
		}
	})
}
