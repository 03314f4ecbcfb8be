package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/store"
)

// queueRecords writes a device key, its epoch and a store holding its genesis and n
// days, as a daemon that was offline for n days would have left them.
func queueRecords(t *testing.T, dataDir, keyDir string, n int) {
	t.Helper()
	seed := sha256.Sum256([]byte("sync crash test device"))
	os.MkdirAll(keyDir, 0o700)
	if err := os.WriteFile(filepath.Join(keyDir, "device.key"), seed[:], 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(keyDir, "epoch"), []byte("1\n"), 0o600)
	signer, _ := proof.NewKeySigner(seed[:])
	s, err := store.Open(store.Options{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.SetConsent(true); err != nil {
		t.Fatal(err)
	}
	id := signer.PublicKey().DeviceID()
	g := &proof.Record{DeviceID: id, Epoch: 1, Seq: 1, MintedAt: 1790000000,
		Body: &proof.Genesis{PublicKey: signer.PublicKey(), Reason: proof.ReasonFirstStart}}
	b, err := g.Sign(signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mint(b, nil); err != nil {
		t.Fatal(err)
	}
	prev, date := proof.HashRecord(b), proof.Date(20200101)
	for i := range n {
		r := &proof.Record{DeviceID: id, Epoch: 1, Seq: uint64(i + 2), PrevHash: prev, MintedAt: 1790000000 + int64(i),
			Body: &proof.ActivityDay{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: 600, Unlocks: 3, ScreenOns: 5, ActiveHours: 1 << 9}}
		if b, err = r.Sign(signer); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mint(b, nil); err != nil {
			t.Fatal(err)
		}
		prev, date = proof.HashRecord(b), date.Next()
	}
}

// TestSyncSurvivesKill9 kills the daemon with SIGKILL at random moments while it
// uploads a long queue to a slow server, restarting it each time: in the end the
// server holds every record exactly once and the queue is empty.
func TestSyncSurvivesKill9(t *testing.T) {
	kills, records, maxWait := 100, 2000, 300*time.Millisecond
	if len(testenv.Emulator()) > 0 {
		kills, records, maxWait = 20, 300, 2*time.Second // emulated: slower starts
	}
	seedRand := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seedRand, 1))
	t.Logf("seed %d: %d kills over %d queued records", seedRand, kills, records)

	bus := testenv.StartBus(t)
	col := testenv.StartCollector(t)
	col.SetDelay(func() time.Duration { return time.Duration(10+rand.IntN(40)) * time.Millisecond })
	bin := testenv.Build(t, "amos.example/amosd/cmd/amosd")
	dir := t.TempDir()
	data, persist := filepath.Join(dir, "data"), filepath.Join(dir, "persist")
	queueRecords(t, data, persist, records)
	cfg := map[string]any{
		"data_dir": data, "key_dir": persist, "server_url": col.URL, "ca_file": col.CAFile,
		"bus": bus.Address, "sources": []string{}, "consent_default": false, "log": "stderr",
		"sync": map[string]any{"batch_records": 8, "initial_backoff": "1s", "max_backoff": "2s", "timeout": "10s"},
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "amosd.json")
	os.WriteFile(cfgPath, b, 0o644)

	for i := range kills {
		d := startDaemon(t, bin, cfgPath)
		time.Sleep(time.Duration(rng.Int64N(int64(maxWait)))) // a random moment: the point of the test
		d.stop(syscall.SIGKILL)
		if i%20 == 0 {
			requests, stored := col.Counts()
			t.Logf("after %d kills: %d requests, %d records on the server", i+1, requests, stored)
		}
	}
	// Once more without a kill: a flush drains whatever is left.
	d := startDaemon(t, bin, cfgPath)
	d.waitLog("connected as")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := testenv.Command(ctx, bin, "--config", cfgPath, "flush").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "queued:   0") {
		t.Fatalf("flush: %v\n%s", err, out)
	}
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
	requests, stored := col.Counts()
	t.Logf("%d kills, %d requests: the server holds %d records", kills, requests, stored)
	if stored != records+1 {
		t.Fatalf("the server holds %d records, want %d", stored, records+1)
	}
	if twice := col.AcceptedTwice(); len(twice) > 0 {
		t.Fatalf("accepted twice: %v", twice)
	}
	s, err := store.OpenReadOnly(data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cnt, _ := s.Counts(); cnt.Queued != 0 || cnt.DeadLetters != 0 {
		t.Fatalf("store after the drain: %+v", cnt)
	}
}
