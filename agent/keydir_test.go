package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/agent/identity"
	"amos.example/amosd/proof"
)

// TestDamagedEpochFileIsRebuilt: key_dir/epoch holding something that is not an epoch
// no longer stops the daemon: the epoch is rebuilt from the store's head as a new
// epoch (never a reused one), and the file is written again.
func TestDamagedEpochFileIsRebuilt(t *testing.T) {
	hoursSince2020 := uint32(morning.Sub(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) / time.Hour)
	for _, tc := range []struct {
		name      string
		content   string
		wipeStore bool // the store is gone too: no head to rebuild from
		want      uint32
	}{
		{"letters", "abc", false, 2},
		{"empty", "", false, 2},
		{"zero", "0\n", false, 2},
		{"binary", "\x00\xff\x17", false, 2},
		{"no store either", "abc", true, hoursSince2020 + 1}, // and then the wiped store's new epoch
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, morning, power, nil)
			r.start()
			r.waitMinted() // the genesis of epoch 1
			r.stop()
			path := filepath.Join(r.cfg.KeyDir, identity.EpochFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := identity.ReadEpoch(r.cfg.KeyDir); !errors.Is(err, identity.ErrEpochDamaged) || !strings.Contains(err.Error(), path) {
				t.Fatalf("ReadEpoch of %q: %v, want ErrEpochDamaged naming %s", tc.content, err, path)
			}
			if tc.wipeStore {
				if err := os.RemoveAll(r.cfg.DataDir); err != nil {
					t.Fatal(err)
				}
			}
			r.start()
			g := r.waitMinted()
			gen, ok := g.Genesis()
			if !ok || g.Epoch != tc.want || gen.Reason != proof.ReasonStoreRecreated {
				t.Fatalf("after the damaged epoch file: epoch %d %+v, want the genesis of epoch %d, reason store recreated", g.Epoch, g.Body, tc.want)
			}
			if e, ok, err := identity.ReadEpoch(r.cfg.KeyDir); err != nil || !ok || e != tc.want {
				t.Fatalf("epoch file after the start: %d %v %v, want %d", e, ok, err, tc.want)
			}
		})
	}
}

// TestLostKeyIsNeverReplacedUnderACertificate: a device key that is empty, short or
// missing while a certificate is present stops the daemon with a message that names
// the file and says what the factory must do; no key is generated.
func TestLostKeyIsNeverReplacedUnderACertificate(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  *string // nil: no device.key
		want string
	}{
		{"empty key", ptr(""), "0 bytes, want a raw 32-byte Ed25519 seed"},
		{"short key", ptr("0123456789"), "10 bytes, want a raw 32-byte Ed25519 seed"},
		{"long key", ptr(strings.Repeat("k", 40)), "40 bytes"},
		{"missing key, certificate present", nil, "missing, but"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			keyPath, certPath := filepath.Join(dir, identity.KeyFile), filepath.Join(dir, identity.CertFile)
			if err := os.WriteFile(certPath, []byte("a certificate of the lost key"), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.key != nil {
				if err := os.WriteFile(keyPath, []byte(*tc.key), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := identity.Load(dir)
			if !errors.Is(err, identity.ErrIdentity) {
				t.Fatalf("Load: %v, want ErrIdentity", err)
			}
			for _, s := range []string{keyPath, tc.want, "the factory must provision this handset again", "amos-collector maker certify"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "EOF") {
				t.Errorf("error %q says EOF", err)
			}
			if tc.key == nil {
				if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a key was generated under the old key's certificate (%v)", err)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
