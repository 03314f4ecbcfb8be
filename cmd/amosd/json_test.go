package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"amos.example/amosd/agent/selftest"
	"amos.example/amosd/internal/inspect"
)

// encodingJSON is what the command line printed with encoding/json before amosd dropped
// it (README.md's budget table binary budget).
func encodingJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func printed(t *testing.T, v any) string {
	t.Helper()
	var out, errs strings.Builder
	if code := writeJSON(&cliEnv{stdout: &out, stderr: &errs}, v); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	return out.String()
}

// TestJSONOutputsUnchanged: the --json outputs are byte for byte those of encoding/json.
func TestJSONOutputsUnchanged(t *testing.T) {
	tally := &inspect.Tally{Date: 20261127, UTCOffsetMinutes: -90, InteractiveSeconds: 3600, Unlocks: 3, ScreenOns: 9,
		ActiveHours: 0xFF0, Flags: 2, SavedAt: 1795500000, SavedBootID: "ab000000000000000000000000000001", SavedUptimeMS: 123456, State: 5}
	for _, rep := range []*inspect.Report{
		{Path: "/data/amos/amosd.db", FileBytes: 32768, MaxBytes: 8 << 20, Consent: "not set (consent_default applies)",
			Queue: []inspect.Record{}, Dead: []inspect.Record{}},
		{Path: "/d/<x>&\"y\"", FileBytes: 1, MaxBytes: 2, Consent: "granted",
			Head:          &inspect.Head{DeviceID: "f823", Epoch: 2, Seq: 9, Hash: "00ff", LastDate: 20261126},
			Tally:         tally,
			Queue:         []inspect.Record{{Epoch: 2, Seq: 8, What: "day 2026-11-25: 10 s"}, {Epoch: 2, Seq: 9, What: "genesis (reason 2, maker konka)"}},
			Dead:          []inspect.Record{{Epoch: 1, Seq: 3, What: "x", Reason: "bad_signature", At: 1795500000}},
			EvictedQueued: 4, EvictedDead: 5,
			Recovery: &inspect.Recovery{At: 1795400000, CorruptPath: "/data/amos/amosd.db.corrupt-1795400000", Cause: "tx check: page 3\tbad", Salvaged: 7}},
	} {
		if got, want := printed(t, inspectJSON(rep)), encodingJSON(t, rep); got != want {
			t.Errorf("inspect --json:\n got %s\nwant %s", got, want)
		}
	}
	checks := []selftest.Check{{Name: "config", OK: true, Detail: "/system/etc/amosd.json"},
		{Name: "certificate", Detail: "missing <here>", Fix: "write it & retry"},
		{Name: "source logind", OK: true, Warn: true, Detail: "nobody owns it", Fix: "remove it"}}
	for _, failed := range []bool{true, false} {
		got := printed(t, map[string]any{"ok": !failed, "checks": checksJSON(checks)})
		if want := encodingJSON(t, map[string]any{"ok": !failed, "checks": checks}); got != want {
			t.Errorf("selftest --json:\n got %s\nwant %s", got, want)
		}
	}
	// status --json: the values godbus gives for the Status variants of docs/dbus-api.md.
	st := map[string]any{"version": "v0.4.0", "device_id": "f823", "epoch": uint32(1), "last_seq": uint64(1), "queued": uint32(1),
		"consent": true, "today_date": uint32(20261127), "last_sync_unix": int64(0), "sources": []string{}, "x": []string{"a", "b"},
		"store_bytes": uint64(32768), "n": int32(-1), "b": uint8(7), "q": uint16(9), "i": int16(-2)}
	if got, want := printed(t, st), encodingJSON(t, st); got != want {
		t.Errorf("status --json:\n got %s\nwant %s", got, want)
	}
	// identity --json
	id := map[string]any{"device_id": "f823", "public_key": "abcd", "generated": false, "certificate": "valid",
		"maker_id": "konka", "model": "K1", "serial_tag": "0a0b", "issued_at": int64(1795500000)}
	if got, want := printed(t, id), encodingJSON(t, id); got != want {
		t.Errorf("identity --json:\n got %s\nwant %s", got, want)
	}
}

// TestStatusRecoveryLine: `amosd status` prints last_recovery on one line with the
// time, the cause, where the file went, and the epochs and consent once decided.
func TestStatusRecoveryLine(t *testing.T) {
	rec := map[string]any{"at": int64(1795400000), "cause": "tx check: page 3 bad", "corrupt_path": "/data/amos/amosd.db.corrupt-1795400000", "salvaged": uint64(7)}
	want := "2026-11-23T02:13:20Z: tx check: page 3 bad (moved to /data/amos/amosd.db.corrupt-1795400000, 7 queued records salvaged)"
	if got := humanValue("last_recovery", rec); got != want {
		t.Errorf("before the daemon decided:\n got %s\nwant %s", got, want)
	}
	rec["old_epoch"], rec["new_epoch"], rec["consent"] = uint32(1), uint32(2), "key_dir"
	if got := humanValue("last_recovery", rec); got != want+"; epoch 1 -> 2, consent from key_dir" {
		t.Errorf("with the outcome: %s", got)
	}
}
