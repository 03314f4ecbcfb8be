package attestpolicy

import (
	"errors"
	"testing"
	"time"

	"amos.example/amosd/collector/attest"
)

var errKind = errors.New("configuration error")

// TestMakerConfig: a maker's keys become its policy; the first bad one is named under
// the maker's entry and wraps the caller's sentinel.
func TestMakerConfig(t *testing.T) {
	m := MakerConfig{Attestation: "required", BootKeys: []string{"00112233445566778899aabbccddeeff"}, MinOSPatchLevel: 202601,
		SerialTagKey: "00112233445566778899aabbccddeeff"}
	p, err := m.Parse("makers[0]", errKind)
	if err != nil || p.Mode != Required || len(p.BootKeys) != 1 || p.MinPatchLevel != 202601 || len(p.SerialTagKey) != 16 {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := (&MakerConfig{}).Parse("makers[0]", errKind); err != nil || p.Mode != Off {
		t.Errorf("empty: %+v %v", p, err)
	}
	for _, tc := range []struct {
		m   MakerConfig
		key string
	}{
		{MakerConfig{Attestation: "always"}, "makers[1].attestation"},
		{MakerConfig{BootKeys: []string{"00ff"}}, "makers[1].boot_keys[0]"},
		{MakerConfig{MinOSPatchLevel: 202613}, "makers[1].min_os_patch_level"},
		{MakerConfig{SerialTagKey: "zz"}, "makers[1].serial_tag_key"},
	} {
		if _, err := tc.m.Parse("makers[1]", errKind); err == nil || err.Key != tc.key || !errors.Is(err, errKind) {
			t.Errorf("%+v: %v, want key %s", tc.m, err, tc.key)
		}
	}
}

// TestConfigValidate: the defaults are valid; a bad key is named under attestation.
func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(errKind); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.StatusList = "http://example.com/status"
	if err := c.Validate(errKind); err == nil || err.Key != "attestation.status_list" || !errors.Is(err, errKind) {
		t.Errorf("http status list: %v", err)
	}
}

// TestPolicyModes: a maker absent from the policy is off; without a status list nothing
// is revoked or stale.
func TestPolicyModes(t *testing.T) {
	p := New(&attest.Roots{}, map[string]Maker{"a": {Mode: Preferred}}, nil)
	if p.Mode("a") != Preferred || p.Mode("b") != Off {
		t.Errorf("modes %s %s", p.Mode("a"), p.Mode("b"))
	}
	if _, revoked := p.Revoked([]string{"1"}); revoked || p.StatusStale(time.Time{}) || p.StatusVersion() != 0 {
		t.Error("a status list without one")
	}
}
