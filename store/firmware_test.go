package store_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"amos.example/amosd/agent"
	"amos.example/amosd/agent/clock"
	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// copyFixture copies a fixture's data_dir and key_dir into a temporary directory, with
// the modes of a handset (git keeps none of them), and returns their paths.
func copyFixture(t *testing.T, src string) (dataDir, keyDir string) {
	t.Helper()
	dst := t.TempDir()
	for _, sub := range []string{"data_dir", "key_dir"} {
		if err := os.Mkdir(filepath.Join(dst, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join(src, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(src, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, sub, e.Name()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(dst, "data_dir"), filepath.Join(dst, "key_dir")
}

// fixedClock is the agent's clock at a fixed instant: the agent is only created here,
// never run, so timers and alarms are not needed.
type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time                     { return c.now }
func (c fixedClock) Boottime() time.Duration            { return time.Hour }
func (c fixedClock) BootID() [16]byte                   { return [16]byte{0xf1, 0x4e} }
func (c fixedClock) NewTimer(time.Duration) clock.Timer { panic("fixedClock: no timers") }
func (c fixedClock) NewWallAlarm() (clock.WallAlarm, error) {
	return nil, errors.New("fixedClock: no wall alarm")
}

// startAgent creates the daemon's agent on dataDir and keyDir, as `amosd run` does
// before it starts its loop: identity, store, the epoch decision, the tally restored.
func startAgent(t *testing.T, dataDir, keyDir string, now time.Time) (*agent.Agent, error) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.KeyDir = dataDir, keyDir
	debuggable := false
	return agent.New(agent.Options{Config: &cfg, Clock: fixedClock{now}, Debuggable: &debuggable, Logf: t.Logf})
}

func fixtures(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(fixturesDir, "v*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no firmware fixture in %s (%v)", fixturesDir, err)
	}
	return dirs
}

func loadFixture(t *testing.T, dir string) fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want fixture
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("%s/expected.json: %v", dir, err)
	}
	return want
}

// TestFirmwareFixtures: a handset updated over the air keeps its data_dir and key_dir.
// This build opens what every released build wrote: no recovery, no new epoch, and
// nothing lost (queue, dead-letter, consent, tally, sync state, counters, head, last
// recovery all as written).
func TestFirmwareFixtures(t *testing.T) {
	for _, dir := range fixtures(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want := loadFixture(t, dir)
			if want.FormatVersion > store.FormatVersion {
				t.Fatalf("fixture of format %d, this build knows %d", want.FormatVersion, store.FormatVersion)
			}
			dataDir, keyDir := copyFixture(t, dir)
			s, err := store.Open(store.Options{Dir: dataDir, Logf: t.Logf})
			if err != nil {
				t.Fatalf("open the store of %s: %v", want.WrittenBy, err)
			}
			if s.Recovered() != nil || s.Created() {
				t.Fatalf("recovered %+v, created %v", s.Recovered(), s.Created())
			}
			got := read(t, s)
			s.Close()
			got.FormatVersion, got.WrittenBy, got.Epoch = want.FormatVersion, want.WrittenBy, want.Epoch
			if !equalJSON(t, got, want) {
				return
			}
			// The daemon decides the epoch: the one the key_dir and the head agree on.
			now := proof.Date(want.Tally.Date).Start(int(want.Tally.UTCOffsetMinutes)).Add(10 * time.Hour)
			a, err := startAgent(t, dataDir, keyDir, now)
			if err != nil {
				t.Fatalf("the agent refuses the fixture: %v", err)
			}
			id := a.Identity()
			a.Close()
			epoch, ok, err := identity.ReadEpoch(keyDir)
			if err != nil || !ok || epoch != want.Epoch || epoch != want.Head.Epoch {
				t.Fatalf("epoch file %d (%v, %v) after start, was %d with the head in epoch %d: a new epoch", epoch, ok, err, want.Epoch, want.Head.Epoch)
			}
			if id.Generated || id.DeviceID.String() != want.DeviceID || id.Cert == nil {
				t.Fatalf("identity: generated %v, device_id %s (want %s), certificate %v %s", id.Generated, id.DeviceID, want.DeviceID, id.Cert != nil, id.CertProblem)
			}
			s, err = store.Open(store.Options{Dir: dataDir, Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got = read(t, s)
			got.FormatVersion, got.WrittenBy, got.Epoch = want.FormatVersion, want.WrittenBy, want.Epoch
			equalJSON(t, got, want)
		})
	}
}

// TestFirmwareDowngrade: a store written by a newer build (here the newest fixture
// with its format version raised) is refused by this one with ErrNewerFormat, naming
// the file and both versions; the daemon does not start on it, starts no epoch, and
// nothing is moved aside or changed.
func TestFirmwareDowngrade(t *testing.T) {
	dirs := fixtures(t)
	dataDir, keyDir := copyFixture(t, dirs[len(dirs)-1])
	path := filepath.Join(dataDir, store.FileName)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	newer := store.FormatVersion + 1
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte{0, 0, 0, 0, 0, 0, 0, byte(newer)})
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	epochBefore, _ := os.ReadFile(filepath.Join(keyDir, identity.EpochFile))

	_, err = store.Open(store.Options{Dir: dataDir, Logf: t.Logf})
	t.Logf("store.Open: %v", err)
	if !errors.Is(err, store.ErrNewerFormat) || errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("open a newer store: %v, want ErrNewerFormat", err)
	}
	for _, want := range []string{path, "format version 2", "formats 1 to 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if _, err := startAgent(t, dataDir, keyDir, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)); !errors.Is(err, store.ErrNewerFormat) {
		t.Fatalf("the agent on a newer store: %v, want ErrNewerFormat", err)
	}
	after, _ := os.ReadFile(path)
	epochAfter, _ := os.ReadFile(filepath.Join(keyDir, identity.EpochFile))
	moved, _ := filepath.Glob(path + ".corrupt-*")
	if !bytes.Equal(before, after) || !bytes.Equal(epochBefore, epochAfter) || len(moved) > 0 {
		t.Fatalf("store changed %v, epoch file %q -> %q, moved aside %v", !bytes.Equal(before, after), epochBefore, epochAfter, moved)
	}
}
