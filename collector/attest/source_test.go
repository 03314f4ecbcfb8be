package attest

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

const (
	listA = `{"entries": {"abc": {"status": "REVOKED"}}}`
	listB = `{"entries": {"def": {"status": "SUSPENDED"}}}`
)

func listed(l *StatusList, serial int64) bool {
	_, ok := l.Lookup(big.NewInt(serial))
	return ok
}

// TestSourceFile: a file source loads, keeps its last good list when the file breaks,
// and its age and staleness follow the clock: never loaded is stale; older than MaxAge
// is stale.
func TestSourceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	clock := &fakeClock{t: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	s, err := NewSource(path, SourceOptions{Now: clock.now, MaxAge: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clock.now()
	if l, at := s.Current(); l != nil || !at.IsZero() || s.Age(t0) != NeverLoaded || !s.Stale(t0) {
		t.Fatal("a source that never loaded is not stale")
	}
	if err := s.Refresh(context.Background()); err == nil || !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(listA), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(context.Background()); err != nil || s.LastError() != nil {
		t.Fatal(err)
	}
	if l, at := s.Current(); !listed(l, 0xabc) || !at.Equal(t0) {
		t.Fatalf("current: %v %v", l, at)
	}
	clock.set(t0.Add(47 * time.Hour))
	if err := os.WriteFile(path, []byte(`{"entries": {"ABC": {}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(context.Background()); !errors.Is(err, ErrStatusList) || s.LastError() == nil {
		t.Fatalf("bad list: %v", err)
	}
	now := t0.Add(47 * time.Hour)
	if l, _ := s.Current(); !listed(l, 0xabc) || s.Age(now) != 47*time.Hour || s.Stale(now) {
		t.Fatal("a failed load lost the last good list, or the age is wrong")
	}
	if late := t0.Add(48*time.Hour + time.Second); !s.Stale(late) {
		t.Fatal("not stale after MaxAge")
	}
	if s.MaxAge() != 48*time.Hour || s.Location() != path {
		t.Fatal("accessors")
	}
}

// TestSourceHTTPS: an https source loads through its client; HTTP errors and oversized
// lists are failures; plain http and other schemes are refused up front.
func TestSourceHTTPS(t *testing.T) {
	var mu sync.Mutex
	body, code := listA, http.StatusOK
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(code)
		w.Write([]byte(body))
	}))
	defer srv.Close()
	set := func(b string, c int) { mu.Lock(); body, code = b, c; mu.Unlock() }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := NewSource(srv.URL+"/attestation/status", SourceOptions{Client: srv.Client(), MaxBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	set(listB, http.StatusOK)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Current(); !listed(l, 0xdef) || listed(l, 0xabc) {
		t.Fatal("the new list did not replace the old")
	}
	set("oops", http.StatusServiceUnavailable)
	if err := s.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v", err)
	}
	set(`{"entries": {}}`+strings.Repeat(" ", 300), http.StatusOK)
	if err := s.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "over 200 bytes") {
		t.Fatalf("oversized: %v", err)
	}
	if l, _ := s.Current(); !listed(l, 0xdef) {
		t.Fatal("failures lost the list")
	}
	for _, bad := range []string{"", "http://example.com/status", "ftp://example.com/x", "https://"} {
		if _, err := NewSource(bad, SourceOptions{}); !errors.Is(err, ErrSource) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestSourceRun: Run loads at once, then at each tick of its timer, reports each load to
// OnLoad, and returns when its context ends; Start's channel closes then.
func TestSourceRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	if err := os.WriteFile(path, []byte(listA), 0o644); err != nil {
		t.Fatal(err)
	}
	ticks := make(chan time.Time)
	loads := make(chan error, 10)
	var asked []time.Duration
	s, err := NewSource(path, SourceOptions{
		Interval: 2 * time.Hour,
		After:    func(d time.Duration) <-chan time.Time { asked = append(asked, d); return ticks },
		OnLoad:   func(err error) { loads <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := s.Start(ctx)
	timeout := time.After(30 * time.Second)
	wait := func() error {
		select {
		case err := <-loads:
			return err
		case <-timeout:
			t.Fatal("no load")
		}
		return nil
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(listB), 0o644); err != nil {
		t.Fatal(err)
	}
	ticks <- time.Time{}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Current(); !listed(l, 0xdef) {
		t.Fatal("the tick did not reload")
	}
	cancel()
	select {
	case <-done:
	case <-timeout:
		t.Fatal("Run did not return")
	}
	if len(asked) < 2 || asked[0] != 2*time.Hour {
		t.Fatalf("timer asked for %v", asked)
	}
}
