package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/store"
)

// TestFullDiskKeepsCounting: a phone whose data partition another app filled (a real
// tmpfs, full to the last byte) and whose server is unreachable: every day is still
// minted and counted, the store making room by counted evictions of the oldest queued
// records (it used to fail every mint with ENOSPC from then on, and count nothing).
func TestFullDiskKeepsCounting(t *testing.T) {
	disk := testenv.SmallDisk(t, 192<<10)
	r := newRig(t, morning, power, func(c *config.Config) { c.DataDir = filepath.Join(disk, "data") })
	var evicted store.Evictions
	r.start()
	r.waitMinted() // the genesis
	fillDisk(t, disk)
	day := proof.Date(20261124)
	for i := 0; i < 60; i++ {
		r.at("09:00:00")
		r.use(time.Minute)
		r.at("00:00:00")
		rec := r.waitMinted()
		if a, ok := rec.Activity(); !ok || a.Date != day || a.InteractiveSeconds != 30 {
			t.Fatalf("day %d on the full disk: %+v, want %s, 30 s", i, rec.Body, day)
		}
		day = day.Next()
	}
	st, err := r.a.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.TodayDate != uint32(day) || st.LastSeq != 61 {
		t.Fatalf("after 60 days on the full disk: today %d, last seq %d; want %s, 61", st.TodayDate, st.LastSeq, day)
	}
	r.stop()
	s, err := store.OpenReadOnly(r.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cnt, err := s.Counts()
	if err != nil {
		t.Fatal(err)
	}
	evicted.Queued = cnt.EvictedQueued
	if uint64(cnt.Queued)+evicted.Queued != 61 || evicted.Queued == 0 {
		t.Fatalf("%d queued + %d evicted, want 61 records with some evicted to make room", cnt.Queued, evicted.Queued)
	}
	t.Logf("full %d KiB disk: 60 days minted, %d queued, %d evicted (counted)", 192, cnt.Queued, evicted.Queued)
}

// fillDisk writes a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		if _, err := f.Write(make([]byte, 4096)); errors.Is(err, syscall.ENOSPC) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
	}
}
