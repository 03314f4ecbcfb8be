package store

import (
	"errors"
	"testing"
)

func TestLowerDateFloor(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	if err := s.LowerDateFloor(20261001); err != nil {
		t.Fatalf("without a head: %v", err)
	}
	c := newChain(t, "floor")
	mustMint(t, s, c.genesis(), nil)
	c.date = 20291201 // minted on a clock three years ahead
	mustMint(t, s, c.day(), nil)
	mustMint(t, s, c.day(), nil)
	if err := s.LowerDateFloor(20300101); err != nil { // not after: nothing changes
		t.Fatal(err)
	}
	if h, _, _ := s.Head(); h.LastDate != 20291202 {
		t.Fatalf("LastDate %s, want 2029-12-02 kept", h.LastDate)
	}
	// In the same epoch a date before the floor is still refused.
	c.date = 20261202
	if _, err := s.Mint(c.day(), nil); !errors.Is(err, ErrChain) {
		t.Fatalf("2026-12-02 under a floor of 2029-12-02: %v, want ErrChain", err)
	}
	if err := s.LowerDateFloor(20261202); err != nil {
		t.Fatal(err)
	}
	h, _, _ := s.Head()
	if h.LastDate != 20261202 {
		t.Fatalf("LastDate %s, want 2026-12-02", h.LastDate)
	}
	// The next epoch continues after the lowered floor, never on it.
	c.resume(h)
	mustMint(t, s, c.genesis(), nil)
	c.date = 20261202
	if _, err := s.Mint(c.day(), nil); !errors.Is(err, ErrChain) {
		t.Fatalf("the floor's own date: %v, want ErrChain", err)
	}
	h, _, _ = s.Head()
	c.resume(h) // the refused record did not link
	c.date = 20261203
	if res := mustMint(t, s, c.day(), nil); res.Head.LastDate != 20261203 {
		t.Fatalf("LastDate %s after minting 2026-12-03", res.Head.LastDate)
	}
}
