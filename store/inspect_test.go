package store

import (
	"strings"
	"testing"
)

// TestInspect: a store with a genesis acknowledged, three days queued, one of them then
// dead-lettered, and consent granted, read back whole by Inspect.
func TestInspect(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	rep, err := s.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Head != nil || rep.Tally != nil || len(rep.Queue) != 0 || len(rep.Dead) != 0 || rep.Consent != "not set (consent_default applies)" {
		t.Fatalf("an empty store: %+v", rep)
	}
	c := newChain(t, "inspect")
	mustMint(t, s, c.genesis(), nil)
	var last MintResult
	for range 3 {
		last = mustMint(t, s, c.day(), nil)
	}
	items, err := s.Peek(10, 1<<20)
	if err != nil || len(items) != 4 {
		t.Fatalf("peek: %d items, %v", len(items), err)
	}
	if _, err := s.Settle(Settlement{Acked: []RecordID{items[0].ID}, Dead: []Refusal{{ID: items[1].ID, Reason: "bad_signature"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetConsent(true); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Path != s.Path() || rep.FileBytes == 0 || rep.MaxBytes == 0 || rep.Consent != "granted" {
		t.Errorf("inspection: %+v", rep)
	}
	if h := rep.Head; h == nil || h.Epoch != 1 || h.Seq != 4 || h.DeviceID != c.signer.PublicKey().DeviceID().String() {
		t.Errorf("head: %+v (minted %+v)", h, last)
	}
	if len(rep.Queue) != 2 || len(rep.Raw) != 2 || rep.Queue[0].Seq != 3 || !strings.HasPrefix(rep.Queue[0].What, "day 2026-10-02:") {
		t.Errorf("queue: %+v", rep.Queue)
	}
	if len(rep.Dead) != 1 || rep.Dead[0].Seq != 2 || rep.Dead[0].Reason != "bad_signature" || rep.Dead[0].At == 0 {
		t.Errorf("dead-letter: %+v", rep.Dead)
	}
	if e, q, what := describe([]byte("not a record")); e != 0 || q != 0 || !strings.HasPrefix(what, "undecodable: ") {
		t.Errorf("describe: %d %d %q", e, q, what)
	}
}
