package attest

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestParseGoogleStatusList: Google's sample list parses; its serials are found by the
// certificate serial they name, and others are not.
func TestParseGoogleStatusList(t *testing.T) {
	l, err := ParseStatusList(readFile(t, googleDir+"status.json"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 5 {
		t.Fatalf("%d entries", l.Len())
	}
	serial, _ := new(big.Int).SetString("cc66e9a93713b6e643b26c15879786f7", 16)
	e, ok := l.Lookup(serial)
	if !ok || e.Status != StatusSuspended || e.Reason != "KEY_COMPROMISE" || e.Comment != "Entry for testing only" {
		t.Fatalf("lookup: %+v %v", e, ok)
	}
	// "6681152659205225093" is a hex key like any other.
	hexKey, _ := new(big.Int).SetString("6681152659205225093", 16)
	if e, ok := l.Lookup(hexKey); !ok || e.Status != StatusRevoked {
		t.Fatalf("hex-looking key: %+v %v", e, ok)
	}
	decimal, _ := new(big.Int).SetString("6681152659205225093", 10)
	if _, ok := l.Lookup(decimal); ok {
		t.Fatal("the decimal reading of a key matched")
	}
	var nilList *StatusList
	if _, ok := nilList.Lookup(serial); ok || nilList.Len() != 0 {
		t.Fatal("a nil list lists something")
	}
}

// TestSerialKey: lowercase hex without leading zeros, as Google's verifier writes serials.
func TestSerialKey(t *testing.T) {
	for _, tc := range []struct {
		in   *big.Int
		want string
	}{
		{big.NewInt(1), "1"},
		{big.NewInt(0x0abc), "abc"},
		{big.NewInt(1228286566665971148), "110bc01fe88265cc"},
		{new(big.Int).SetBytes([]byte{0x00, 0xd0, 0x5f, 0xac}), "d05fac"},
		{big.NewInt(-5), "-5"},
		{nil, ""},
	} {
		if got := SerialKey(tc.in); got != tc.want {
			t.Errorf("SerialKey(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseStatusListStrict: what the schema forbids is refused, with the entry named.
func TestParseStatusListStrict(t *testing.T) {
	ok := `{"entries": {"2c8cdddfd5e03bfc": {"status": "REVOKED", "expires": "2020-11-13", "reason": "KEY_COMPROMISE", "comment": "Key stored on unsecure system"}, "c8966fcb2fbb0d7a": {"status": "SUSPENDED", "reason": "SOFTWARE_FLAW"}}}`
	l, err := ParseStatusList([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := l.Lookup(big.NewInt(0x2c8cdddfd5e03bfc))
	if !e.Expires.Equal(time.Date(2020, 11, 13, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("expires %v", e.Expires)
	}
	if l, err := ParseStatusList([]byte(`{"entries": {}}`)); err != nil || l.Len() != 0 {
		t.Fatalf("empty list: %v", err)
	}
	for _, tc := range []struct{ name, in, detail string }{
		{"empty", ``, "EOF"},
		{"not an object", `[]`, ""},
		{"no entries", `{}`, "no \"entries\""},
		{"null entries", `{"entries": null}`, "no \"entries\""},
		{"another member", `{"entries": {}, "version": 2}`, "version"},
		{"trailing data", `{"entries": {}} {}`, "after the JSON"},
		{"uppercase serial", `{"entries": {"ABC": {"status": "REVOKED"}}}`, `"ABC"`},
		{"leading zero", `{"entries": {"0abc": {"status": "REVOKED"}}}`, `"0abc"`},
		{"empty serial", `{"entries": {"": {"status": "REVOKED"}}}`, `entry ""`},
		{"not hex", `{"entries": {"xyz": {"status": "REVOKED"}}}`, `"xyz"`},
		{"no status", `{"entries": {"abc": {"reason": "KEY_COMPROMISE"}}}`, "no status"},
		{"null entry", `{"entries": {"abc": null}}`, "no status"},
		{"unknown status", `{"entries": {"abc": {"status": "VALID"}}}`, "VALID"},
		{"lowercase status", `{"entries": {"abc": {"status": "revoked"}}}`, "revoked"},
		{"unknown reason", `{"entries": {"abc": {"status": "REVOKED", "reason": "LOST"}}}`, "LOST"},
		{"bad date", `{"entries": {"abc": {"status": "REVOKED", "expires": "2020-13-01"}}}`, "2020-13-01"},
		{"date with time", `{"entries": {"abc": {"status": "REVOKED", "expires": "2020-11-13T00:00:00Z"}}}`, "expires"},
		{"long comment", `{"entries": {"abc": {"status": "REVOKED", "comment": "` + strings.Repeat("é", 141) + `"}}}`, "141 characters"},
		{"unknown entry member", `{"entries": {"abc": {"status": "REVOKED", "since": "2020"}}}`, "since"},
		{"status a number", `{"entries": {"abc": {"status": 1}}}`, ""},
		{"serial twice", `{"entries": {"abc": {"status": "REVOKED"}, "abc": {"status": "SUSPENDED"}}}`, `"abc" twice`},
		{"member twice in an entry", `{"entries": {"abc": {"status": "REVOKED", "status": "SUSPENDED"}}}`, `"status" twice`},
		{"entries twice", `{"entries": {}, "entries": {}}`, `"entries" twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStatusList([]byte(tc.in))
			if !errors.Is(err, ErrStatusList) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("%v; want ErrStatusList with %q", err, tc.detail)
			}
		})
	}
	// A comment of exactly 140 characters is fine.
	if _, err := ParseStatusList([]byte(`{"entries": {"abc": {"status": "REVOKED", "comment": "` + strings.Repeat("é", 140) + `"}}}`)); err != nil {
		t.Fatal(err)
	}
}
