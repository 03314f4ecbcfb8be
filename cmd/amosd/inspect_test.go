package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// inspectStore writes, in a temporary data_dir, a store that replaced a corrupt one
// and holds a tally; mint adds its records (signed from a fixed seed) in order.
func inspectStore(t *testing.T, days int) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), bytes.Repeat([]byte("not a store "), 3000), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(store.Options{Dir: dir, Now: func() time.Time { return time.Unix(1795400000, 0) }})
	if err != nil || s.Recovered() == nil {
		t.Fatalf("open over a corrupt file: %v, recovered %v", err, s.Recovered())
	}
	defer s.Close()
	seed := sha256.Sum256([]byte("inspect cli test"))
	signer, err := proof.NewKeySigner(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	var prev proof.Hash
	date := proof.Date(20261001)
	for seq := uint64(1); seq <= uint64(days)+1; seq++ {
		r := &proof.Record{DeviceID: signer.PublicKey().DeviceID(), Epoch: 1, Seq: seq, PrevHash: prev,
			MintedAt: date.Start(480).Unix(), Body: &proof.Genesis{PublicKey: signer.PublicKey(), Reason: proof.ReasonFirstStart}}
		if seq > 1 {
			r.Body = &proof.ActivityDay{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: 60, Unlocks: 1, ScreenOns: 2, ActiveHours: 1}
			date = date.Next()
		}
		b, err := r.Sign(signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mint(b, nil); err != nil {
			t.Fatal(err)
		}
		prev = proof.HashRecord(b)
	}
	tally := store.Tally{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: 754, Unlocks: 3, ScreenOns: 4, ActiveHours: 0x700,
		SavedAt: 1795500000, SavedUptimeMS: 99000, State: 3}
	copy(tally.SavedBootID[:], []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff})
	if err := s.SaveTally(tally); err != nil {
		t.Fatal(err)
	}
	return dir
}

func inspectCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"inspect"}, args...), &out, &errb, func(string) string { return "" }); code != exitOK {
		t.Fatalf("inspect %v: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

// TestInspectJSONNames: `amosd inspect --json` names every key in snake_case as `amosd
// status --json` does, the tally and last_recovery included, and gives the boot id
// as hex.
func TestInspectJSONNames(t *testing.T) {
	dir := inspectStore(t, 1)
	var rep map[string]any
	if err := json.Unmarshal([]byte(inspectCmd(t, "--data", dir, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !snake.MatchString(k) {
					t.Errorf("%s: key %q is not snake_case", where, k)
				}
				walk(where+"."+k, e)
			}
		case []any:
			for _, e := range v {
				walk(where+"[]", e)
			}
		}
	}
	walk("inspect", rep)
	for _, tc := range []struct {
		object string
		keys   []string
	}{
		{"tally", []string{"active_hours", "date", "flags", "interactive_seconds", "saved_at", "saved_boot_id", "saved_uptime_ms", "screen_ons", "state", "unlocks", "utc_offset_minutes"}},
		{"last_recovery", []string{"at", "cause", "corrupt_path", "salvaged"}},
		{"chain_head", []string{"device_id", "epoch", "hash", "last_date", "seq"}},
	} {
		obj, _ := rep[tc.object].(map[string]any)
		var keys []string
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, tc.keys) {
			t.Errorf("%s keys %v, want %v", tc.object, keys, tc.keys)
		}
	}
	tally, _ := rep["tally"].(map[string]any)
	if got, want := tally["saved_boot_id"], hex.EncodeToString([]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff}); got != want {
		t.Errorf("saved_boot_id %v, want the hex string %s", got, want)
	}
	if got := tally["date"]; got != float64(20261002) {
		t.Errorf("tally date %v, want the number 20261002 (as status's today_date)", got)
	}
	rec, _ := rep["last_recovery"].(map[string]any)
	if rec["corrupt_path"] != filepath.Join(dir, store.FileName+".corrupt-1795400000") || rec["at"] != float64(1795400000) {
		t.Errorf("last_recovery %v", rec)
	}
}

// TestInspectTextDates: the text form says "none" for a date not minted yet, never
// "0000-00-00".
func TestInspectTextDates(t *testing.T) {
	for _, tc := range []struct {
		name string
		days int
		want string
	}{
		{"genesis only", 0, "epoch 1 seq 1, last date none\n"},
		{"one day", 1, "epoch 1 seq 2, last date 2026-10-01\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := inspectCmd(t, "--data", inspectStore(t, tc.days))
			if !strings.Contains(out, tc.want) || strings.Contains(out, "0000-00-00") {
				t.Errorf("inspect:\n%s\nwant %q, and no 0000-00-00", out, tc.want)
			}
		})
	}
}
