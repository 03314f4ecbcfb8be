package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"amos.example/amosd/agent/identity"
	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// This file writes and reads the firmware fixtures with nothing but what every build of
// store format 1 has, so that it runs in the tree of a released build too
// (testdata/firmware/README.md); firmware_test.go holds the tests of this build.

// The firmware fixtures (docs/store-and-epochs.md section 9): testdata/firmware/v<N>/
// holds a data_dir and a key_dir as the build of store format N left them on a
// handset, and expected.json, what that build wrote into them.
const (
	fixturesDir = "../testdata/firmware"
	// fixtureEnv names the directory TestWriteFirmwareFixture writes a fixture into,
	// buildEnv the build that writes it (expected.json's written_by).
	fixtureEnv = "AMOSD_FIRMWARE_FIXTURE"
	buildEnv   = "AMOSD_FIRMWARE_BUILD"
)

// fixture is expected.json.
type fixture struct {
	FormatVersion uint64          `json:"format_version"` // meta/schema of the store
	WrittenBy     string          `json:"written_by"`
	DeviceID      string          `json:"device_id"`
	Epoch         uint32          `json:"epoch_file"`
	Head          fixtureHead     `json:"chain_head"`
	Consent       bool            `json:"consent"`
	Tally         fixtureTally    `json:"tally"`
	Sync          fixtureSync     `json:"sync"`
	Queue         []fixtureEntry  `json:"queue"`
	Dead          []fixtureEntry  `json:"dead_letter"`
	EvictedQueued uint64          `json:"evicted_queued"`
	EvictedDead   uint64          `json:"evicted_dead_letter"`
	Recovery      fixtureRecovery `json:"last_recovery"`
}

type fixtureRecovery struct {
	At          int64  `json:"at"`
	CorruptPath string `json:"corrupt_path"`
	Cause       string `json:"cause"`
	Salvaged    uint64 `json:"salvaged"`
}

type fixtureHead struct {
	Epoch    uint32 `json:"epoch"`
	Seq      uint64 `json:"seq"`
	Hash     string `json:"hash"`
	LastDate uint32 `json:"last_date"`
	MintedAt int64  `json:"minted_at"`
}

type fixtureTally struct {
	Date               uint32 `json:"date"`
	UTCOffsetMinutes   int16  `json:"utc_offset_minutes"`
	InteractiveSeconds uint32 `json:"interactive_seconds"`
	Unlocks            uint16 `json:"unlocks"`
	ScreenOns          uint16 `json:"screen_ons"`
	ActiveHours        uint32 `json:"active_hours"`
	Flags              uint16 `json:"flags"`
	SavedAt            int64  `json:"saved_at"`
	SavedBootID        string `json:"saved_boot_id"`
	SavedUptimeMS      uint64 `json:"saved_uptime_ms"`
	State              uint8  `json:"state"`
}

type fixtureSync struct {
	LastAttempt     int64  `json:"last_attempt"`
	LastSuccess     int64  `json:"last_success"`
	LastResult      string `json:"last_result"`
	BackoffInterval int64  `json:"backoff_interval_ns"`
	NextRetry       int64  `json:"next_retry"`
	ServerTime      int64  `json:"server_time"`
	ServerUptimeMS  uint64 `json:"server_uptime_ms"`
	ServerBootID    string `json:"server_boot_id"`
}

type fixtureEntry struct {
	Epoch  uint32 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	Hash   string `json:"hash"`             // record hash (sha256 of the wire bytes)
	Reason string `json:"reason,omitempty"` // dead-letter only
	At     int64  `json:"at,omitempty"`     // dead-letter only
}

func tallyOf(t store.Tally) fixtureTally {
	return fixtureTally{uint32(t.Date), t.UTCOffsetMinutes, t.InteractiveSeconds, t.Unlocks, t.ScreenOns, t.ActiveHours,
		uint16(t.Flags), t.SavedAt, hex.EncodeToString(t.SavedBootID[:]), t.SavedUptimeMS, t.State}
}

func syncOf(s store.SyncState) fixtureSync {
	return fixtureSync{s.LastAttempt, s.LastSuccess, s.LastResult, int64(s.BackoffInterval), s.NextRetry, s.ServerTime,
		s.ServerUptimeMS, hex.EncodeToString(s.ServerBootID[:])}
}

func entryOf(rec []byte) fixtureEntry {
	r, err := proof.Decode(rec)
	if err != nil {
		return fixtureEntry{Hash: "undecodable: " + err.Error()}
	}
	return fixtureEntry{Epoch: r.Epoch, Seq: r.Seq, Hash: proof.HashRecord(rec).String()}
}

// read reads what an open store holds, in the terms of expected.json.
func read(t *testing.T, s *store.Store) fixture {
	t.Helper()
	var got fixture
	h, ok, err := s.Head()
	if err != nil || !ok {
		t.Fatalf("chain head: %v (present %v)", err, ok)
	}
	got.DeviceID = h.DeviceID.String()
	got.Head = fixtureHead{h.Epoch, h.Seq, h.Hash.String(), uint32(h.LastDate), h.MintedAt}
	granted, set, err := s.Consent()
	if err != nil || !set {
		t.Fatalf("consent: %v (set %v)", err, set)
	}
	got.Consent = granted
	tally, ok, err := s.Tally()
	if err != nil || !ok {
		t.Fatalf("tally: %v (present %v)", err, ok)
	}
	got.Tally = tallyOf(tally)
	sync, err := s.Sync()
	if err != nil {
		t.Fatal(err)
	}
	got.Sync = syncOf(sync)
	items, err := s.Peek(1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		got.Queue = append(got.Queue, entryOf(it.Record))
	}
	dead, err := s.DeadLetters(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead {
		e := entryOf(d.Record)
		e.Reason, e.At = d.Reason, d.At
		got.Dead = append(got.Dead, e)
	}
	cnt, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	got.EvictedQueued, got.EvictedDead = cnt.EvictedQueued, cnt.EvictedDead
	r, ok, err := s.LastRecovery()
	if err != nil || !ok {
		t.Fatalf("last recovery: %v (present %v)", err, ok)
	}
	got.Recovery = fixtureRecovery{r.At, r.CorruptPath, r.Cause, r.Salvaged}
	return got
}

// formatVersion reads the format version a closed store records (meta/schema).
func formatVersion(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("meta")); b != nil {
			v = append(v, b.Get([]byte("schema"))...)
		}
		return nil
	})
	if len(v) != 8 {
		t.Fatalf("%s: meta/schema %x", path, v)
	}
	return binary.BigEndian.Uint64(v)
}

func equalJSON(t *testing.T, got, want fixture) bool {
	t.Helper()
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	if !bytes.Equal(g, w) {
		t.Errorf("the store holds\n%s\nwant (expected.json)\n%s", g, w)
		return false
	}
	return true
}

// TestWriteFirmwareFixture writes the fixture of the build it runs in, when asked
// (testdata/firmware/README.md):
//
//	AMOSD_FIRMWARE_FIXTURE=DIR AMOSD_FIRMWARE_BUILD='amosd commit …' go test ./store -run TestWriteFirmwareFixture
//
// Everything comes from fixed seeds and times, so that the same build writes the same
// bytes. It refuses a directory that exists: a released format's fixture is written
// once, by the released build, and never again.
func TestWriteFirmwareFixture(t *testing.T) {
	out, build := os.Getenv(fixtureEnv), os.Getenv(buildEnv)
	if out == "" || build == "" {
		t.Skipf("set %s=DIR and %s=BUILD to write the fixture of this build into DIR", fixtureEnv, buildEnv)
	}
	out, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists (%v): a fixture is written once, into a new directory", out, err)
	}
	if err := os.MkdirAll(filepath.Join(out, "key_dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Relative paths, so that the recovery written in the store names data_dir/..., not
	// wherever the generator ran.
	t.Chdir(out)
	want := writeFixture(t, "data_dir", "key_dir")
	want.WrittenBy = build
	want.FormatVersion = formatVersion(t, filepath.Join("data_dir", store.FileName))
	// What was written reads back as written, by this build and its agent.
	s, err := store.Open(store.Options{Dir: "data_dir"})
	if err != nil {
		t.Fatal(err)
	}
	got := read(t, s)
	s.Close()
	got.FormatVersion, got.WrittenBy, got.Epoch = want.FormatVersion, want.WrittenBy, want.Epoch
	if !equalJSON(t, got, want) {
		t.FailNow()
	}
	b, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("expected.json", append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}

// writeFixture plays a handset's life into dataDir and keyDir and returns what it wrote:
// a key_dir from the factory (key, certificate) and an earlier epoch 1; a store found
// corrupt at a start and recreated (last_recovery), epoch 2 with its genesis; days
// minted, uploaded, some refused (dead-letter), the store at its bound evicting
// dead-letter records and then the oldest queued ones; then the day's tally and the
// sync state.
func writeFixture(t *testing.T, dataDir, keyDir string) fixture {
	maker := signer(t, "maker")
	device := signer(t, "device")
	seed := sha256.Sum256([]byte("amosd firmware fixture device"))
	if err := os.WriteFile(filepath.Join(keyDir, identity.KeyFile), seed[:], 0o600); err != nil {
		t.Fatal(err)
	}
	cert := &proof.Certificate{DevicePublicKey: device.PublicKey(), SerialTag: sha256.Sum256([]byte("amosd firmware fixture serial")),
		MakerID: "konka", Model: "K1 firmware fixture", IssuedAt: time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC).Unix()}
	certBytes, err := cert.Sign(maker)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyDir, identity.CertFile), certBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteEpoch(keyDir, 1); err != nil {
		t.Fatal(err)
	}
	id, err := identity.Load(keyDir)
	if err != nil || id.Generated || id.Cert == nil || id.DeviceID != device.PublicKey().DeviceID() {
		t.Fatalf("identity.Load of the fixture's key_dir: %v (%+v)", err, id)
	}

	now := time.Date(2026, 6, 1, 7, 30, 0, 0, time.UTC)
	clockNow := func() time.Time { return now }
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, store.FileName), bytes.Repeat([]byte("power cut "), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(store.Options{Dir: dataDir, MaxBytes: 64 << 10, Now: clockNow, Logf: t.Logf})
	if err != nil || s.Recovered() == nil {
		t.Fatalf("open over a corrupt store: %v (recovered %v)", err, s.Recovered())
	}
	defer s.Close()
	if err := os.Remove(s.Recovered().CorruptPath); err != nil { // not a store: no use in a fixture
		t.Fatal(err)
	}
	if _, err := s.SetConsent(true); err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteEpoch(keyDir, 2); err != nil {
		t.Fatal(err)
	}
	c := &fixtureChain{t: t, signer: device, epoch: 2, date: 20260601}
	tally := func() *store.Tally {
		return &store.Tally{Date: c.date, UTCOffsetMinutes: 480, Flags: proof.FlagTallyLost}
	}
	mint := func(rec []byte) {
		if _, err := s.Mint(rec, tally()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(24 * time.Hour)
	}
	mint(c.genesis(cert))
	for range 20 {
		mint(c.day())
	}
	settle := func(acked, dead int, reasons ...string) {
		items, err := s.Peek(acked+dead, 1<<20)
		if err != nil || len(items) != acked+dead {
			t.Fatalf("peek %d: %d, %v", acked+dead, len(items), err)
		}
		st := store.Settlement{Sync: &store.SyncState{LastAttempt: now.Unix(), LastSuccess: now.Unix(), LastResult: "200: accepted"}}
		for i, it := range items {
			if i < acked {
				st.Acked = append(st.Acked, it.ID)
			} else {
				st.Dead = append(st.Dead, store.Refusal{ID: it.ID, Reason: reasons[i-acked]})
			}
		}
		if _, err := s.Settle(st); err != nil {
			t.Fatal(err)
		}
	}
	// Refusals that do not break the chain: the epoch goes on.
	settle(15, 2, "stale", "future_date")
	// Up to the bound, and past it until it evicted both kinds of record.
	for cnt := (store.Counts{}); cnt.EvictedDead == 0 || cnt.EvictedQueued == 0; {
		if c.seq > 1000 {
			t.Fatalf("1000 records and no eviction of both kinds: %+v", cnt)
		}
		mint(c.day())
		var err error
		if cnt, err = s.Counts(); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		mint(c.day())
	}
	settle(10, 1, "stale")
	for range 3 {
		mint(c.day())
	}
	open := store.Tally{Date: c.date, UTCOffsetMinutes: 480, InteractiveSeconds: 1234, Unlocks: 7, ScreenOns: 11, ActiveHours: 0x000F80,
		Flags: proof.FlagTallyLost, SavedAt: now.Add(5 * time.Hour).Unix(), SavedUptimeMS: 18_000_000, State: 0x0b}
	bootID := sha256.Sum256([]byte("amosd firmware fixture boot"))
	copy(open.SavedBootID[:], bootID[:16])
	if err := s.SaveTally(open); err != nil {
		t.Fatal(err)
	}
	sync := store.SyncState{LastAttempt: now.Add(time.Hour).Unix(), LastSuccess: now.Add(-23 * time.Hour).Unix(), LastResult: "503: retry after 600 s",
		BackoffInterval: 10 * time.Minute, NextRetry: now.Add(time.Hour + 10*time.Minute).Unix(), ServerTime: now.Add(-23 * time.Hour).Unix(),
		ServerUptimeMS: 3_600_000, ServerBootID: open.SavedBootID}
	if err := s.SaveSync(sync); err != nil {
		t.Fatal(err)
	}
	cnt, err := s.Counts()
	if err != nil || cnt.EvictedDead == 0 || cnt.EvictedQueued == 0 || cnt.DeadLetters == 0 {
		t.Fatalf("the fixture must hold evictions of both kinds and a dead-letter: %+v, %v", cnt, err)
	}
	r := s.Recovered()
	want := fixture{DeviceID: device.PublicKey().DeviceID().String(), Epoch: 2,
		Head:    fixtureHead{Epoch: 2, Seq: c.seq, Hash: c.prev.String(), LastDate: uint32(dayBefore(c.date)), MintedAt: c.mintedAt},
		Consent: true, Tally: tallyOf(open), Sync: syncOf(sync), Recovery: fixtureRecovery{r.At, r.CorruptPath, r.Cause, r.Salvaged},
		EvictedQueued: cnt.EvictedQueued, EvictedDead: cnt.EvictedDead}
	for _, rec := range c.records[len(c.records)-cnt.Queued:] {
		want.Queue = append(want.Queue, entryOf(rec))
	}
	want.Dead = c.dead(t, s)
	return want
}

// dayBefore is the date before d.
func dayBefore(d proof.Date) proof.Date {
	t := d.Start(0).Add(-24 * time.Hour)
	return proof.NewDate(t.Year(), t.Month(), t.Day())
}

func signer(t *testing.T, label string) *proof.KeySigner {
	seed := sha256.Sum256([]byte("amosd firmware fixture " + label))
	s, err := proof.NewKeySigner(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fixtureChain signs the fixture's records and keeps them.
type fixtureChain struct {
	t        *testing.T
	signer   *proof.KeySigner
	epoch    uint32
	seq      uint64
	prev     proof.Hash
	date     proof.Date
	mintedAt int64
	records  [][]byte
}

func (c *fixtureChain) sign(body proof.Body, mintedAt int64) []byte {
	r := &proof.Record{DeviceID: c.signer.PublicKey().DeviceID(), Epoch: c.epoch, Seq: c.seq + 1, PrevHash: c.prev,
		MintedAt: mintedAt, UptimeMS: 60_000 * (c.seq + 1), Body: body}
	copy(r.BootID[:], "fixture boot id!")
	b, err := r.Sign(c.signer)
	if err != nil {
		c.t.Fatal(err)
	}
	c.seq, c.prev, c.mintedAt = r.Seq, proof.HashRecord(b), mintedAt
	c.records = append(c.records, b)
	return b
}

func (c *fixtureChain) genesis(cert *proof.Certificate) []byte {
	return c.sign(&proof.Genesis{PublicKey: c.signer.PublicKey(), Cert: cert, Reason: proof.ReasonStoreRecreated}, c.date.Start(480).Unix())
}

func (c *fixtureChain) day() []byte {
	d := c.date
	c.date = d.Next()
	n := uint32(c.seq)
	return c.sign(&proof.ActivityDay{Date: d, UTCOffsetMinutes: 480, InteractiveSeconds: 600 + 37*n%3000, Unlocks: uint16(3 + n%20),
		ScreenOns: uint16(5 + n%30), ActiveHours: 0x00FF00 >> (n % 8)}, c.date.Start(480).Unix()+int64(n%600))
}

// dead lists the dead-letter records as the store reports them, checked against the
// records signed.
func (c *fixtureChain) dead(t *testing.T, s *store.Store) []fixtureEntry {
	dead, err := s.DeadLetters(100)
	if err != nil {
		t.Fatal(err)
	}
	var out []fixtureEntry
	for _, d := range dead {
		e := entryOf(d.Record)
		if e.Seq == 0 || e.Seq > uint64(len(c.records)) || !bytes.Equal(c.records[e.Seq-1], d.Record) {
			t.Fatalf("dead-letter record %+v is not one signed", e)
		}
		e.Reason, e.At = d.Reason, d.At
		out = append(out, e)
	}
	return out
}
