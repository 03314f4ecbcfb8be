package selftest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// newStore creates a store in a new data_dir, as a first start does, and closes it.
func newStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(store.Options{Dir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStoreCheck: each outcome of opening the store read-only gives its check; a store
// written by a newer amosd fails with its own fix (not "make data_dir writable", not
// "moved aside") and is left exactly as it is.
func TestStoreCheck(t *testing.T) {
	const newerFix = "a newer amosd wrote this store: install that version or a newer one; this amosd leaves the store untouched"
	tests := []struct {
		name   string
		setup  func(t *testing.T) string // returns data_dir
		ok     bool
		detail []string // fragments; "DIR" stands for data_dir
		fix    string   // a prefix; "" for no fix
	}{
		{name: "no store yet", setup: func(t *testing.T) string { return t.TempDir() },
			ok: true, detail: []string{"no store in DIR yet: created at first start"}},
		{name: "a store", setup: newStore,
			ok: true, detail: []string{filepath.Join("DIR", store.FileName) + ": 0 queued, 0 dead-letter", "(no daemon holds it)"}},
		{name: "held by the daemon", setup: func(t *testing.T) string {
			dir := t.TempDir()
			s, err := store.Open(store.Options{Dir: dir, Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return dir
		}, ok: true, detail: []string{filepath.Join("DIR", store.FileName) + " is held by the running daemon"}},
		{name: "written by a newer amosd", setup: func(t *testing.T) string {
			dir := newStore(t)
			db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, store.FormatVersion+1))
			})
			if err := errors.Join(err, db.Close()); err != nil {
				t.Fatal(err)
			}
			return dir
		}, detail: []string{filepath.Join("DIR", store.FileName), "format version 2 (meta/schema), this amosd reads formats 1 to 1", store.ErrNewerFormat.Error()},
			fix: newerFix},
		{name: "corrupt", setup: func(t *testing.T) string {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, store.FileName), bytes.Repeat([]byte{0xa5}, 8192), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, detail: []string{filepath.Join("DIR", store.FileName), store.ErrCorrupt.Error()},
			fix: "nothing to do: amosd moves it aside and starts a new epoch at its next start"},
		{name: "data_dir is a file", setup: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "data")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, detail: []string{"not a directory"}, fix: "make data_dir DIR writable by amosd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			path := filepath.Join(dir, store.FileName)
			before, _ := os.ReadFile(path)
			c := checkStore(&config.Config{DataDir: dir})
			t.Logf("%+v", c)
			if c.Name != "store" || c.OK != tt.ok || c.Warn {
				t.Errorf("check %q ok %v warn %v, want store ok %v", c.Name, c.OK, c.Warn, tt.ok)
			}
			for _, d := range tt.detail {
				if d = strings.ReplaceAll(d, "DIR", dir); !strings.Contains(c.Detail, d) {
					t.Errorf("detail %q does not say %q", c.Detail, d)
				}
			}
			if fix := strings.ReplaceAll(tt.fix, "DIR", dir); fix == "" && c.Fix != "" || !strings.HasPrefix(c.Fix, fix) {
				t.Errorf("fix %q, want %q", c.Fix, fix)
			}
			after, _ := os.ReadFile(path)
			moved, _ := filepath.Glob(path + ".corrupt-*")
			if !bytes.Equal(before, after) || len(moved) > 0 {
				t.Errorf("selftest changed the store (%v) or moved it aside (%v)", !bytes.Equal(before, after), moved)
			}
		})
	}
}

// TestEpochCheck: with the key and its certificate in place, a valid or absent epoch
// file says nothing, a damaged one is a warning (amosd rebuilds it at its next start)
// and one that cannot be read fails.
func TestEpochCheck(t *testing.T) {
	const rebuildFix = "amosd rebuilds it at its next start (a new epoch); or restore it from a backup"
	tests := []struct {
		name     string
		epoch    func(path string) error // nil: no epoch file
		none     bool                    // no epoch check
		ok, warn bool
		detail   []string // fragments; "PATH" stands for key_dir/epoch
		fix      string
	}{
		{name: "absent", none: true},
		{name: "valid", epoch: writeEpoch("7\n"), none: true},
		{name: "not a number", epoch: writeEpoch("seven\n"), ok: true, warn: true,
			detail: []string{"PATH: ", identity.ErrEpochDamaged.Error(), `"seven\n" is not an epoch`}, fix: rebuildFix},
		{name: "zero", epoch: writeEpoch("0\n"), ok: true, warn: true,
			detail: []string{identity.ErrEpochDamaged.Error(), `"0\n" is not an epoch`}, fix: rebuildFix},
		{name: "empty", epoch: writeEpoch(""), ok: true, warn: true,
			detail: []string{identity.ErrEpochDamaged.Error()}, fix: rebuildFix},
		{name: "unreadable: a directory", epoch: func(p string) error { return os.Mkdir(p, 0o700) },
			detail: []string{"PATH: ", "is a directory"}, fix: "make PATH a file readable by amosd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := keyDir(t)
			path := filepath.Join(dir, identity.EpochFile)
			if tt.epoch != nil {
				if err := tt.epoch(path); err != nil {
					t.Fatal(err)
				}
			}
			checks := checkKey(context.Background(), &config.Config{KeyDir: dir})
			var epoch []Check
			for _, c := range checks {
				if c.Name == "epoch" {
					epoch = append(epoch, c)
				} else if !c.OK || c.Warn {
					t.Errorf("check %+v, want it to pass", c)
				}
			}
			if tt.none {
				if len(epoch) > 0 {
					t.Fatalf("epoch checks %+v, want none", epoch)
				}
				return
			}
			if len(epoch) != 1 {
				t.Fatalf("epoch checks %+v, want one", epoch)
			}
			c := epoch[0]
			t.Logf("%+v", c)
			if c.OK != tt.ok || c.Warn != tt.warn {
				t.Errorf("ok %v warn %v, want ok %v warn %v", c.OK, c.Warn, tt.ok, tt.warn)
			}
			for _, d := range tt.detail {
				if d = strings.ReplaceAll(d, "PATH", path); !strings.Contains(c.Detail, d) {
					t.Errorf("detail %q does not say %q", c.Detail, d)
				}
			}
			if fix := strings.ReplaceAll(tt.fix, "PATH", path); !strings.HasPrefix(c.Fix, fix) {
				t.Errorf("fix %q, want %q", c.Fix, fix)
			}
		})
	}
}

func writeEpoch(content string) func(path string) error {
	return func(path string) error { return os.WriteFile(path, []byte(content), 0o600) }
}

// keyDir makes a key_dir (0700) with a device key and a maker certificate of it.
func keyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	seed := bytes.Repeat([]byte{7}, 32)
	device, err := proof.NewKeySigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	maker, _ := proof.NewKeySigner(make([]byte, 32))
	c := &proof.Certificate{DevicePublicKey: device.PublicKey(), MakerID: "konka", Model: "T1", IssuedAt: 1790000000}
	cert, err := c.Sign(maker)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.WriteFile(filepath.Join(dir, identity.KeyFile), seed, 0o600),
		os.WriteFile(filepath.Join(dir, identity.CertFile), cert, 0o644)); err != nil {
		t.Fatal(err)
	}
	return dir
}
