package attest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Defaults of SourceOptions.
const (
	// DefaultRefresh is how often a Source reloads its list. Google's list is served
	// with a Cache-Control max-age of about an hour.
	DefaultRefresh = time.Hour
	// DefaultMaxAge is the stale rule: a list whose last successful load is older than
	// this (or that never loaded) is stale, and Verify refuses with ReasonStatusStale
	// while the policy says so (Policy.StatusStale). 48 hours ride out a day of outage
	// at the list's host without accepting chains whose keys may have leaked since.
	DefaultMaxAge = 48 * time.Hour
	// DefaultMaxBytes bounds the size of a list read.
	DefaultMaxBytes = 16 << 20
	// NeverLoaded is what Age answers before the first successful load.
	NeverLoaded time.Duration = -1
)

// ErrSource: a Source's location is unusable or a load failed.
var ErrSource = errors.New("attest: status list source")

// SourceOptions tune a Source; zero values take the defaults named.
type SourceOptions struct {
	Client   *http.Client     // for https locations; nil: a client with a 30 s timeout
	Interval time.Duration    // between loads: DefaultRefresh
	MaxAge   time.Duration    // the stale rule: DefaultMaxAge
	MaxBytes int64            // DefaultMaxBytes
	Now      func() time.Time // the clock of load times: time.Now
	// After is the timer of Run: time.After-like; nil: a real timer. Tests drive Run
	// with their own channel.
	After func(time.Duration) <-chan time.Time
	// OnLoad, if set, is called after each load attempt with its error (nil on
	// success): for logs and metrics, and for tests to wait on.
	OnLoad func(error)
}

// Source keeps a status list from a file or an https URL, reloading it on a schedule.
// A failed load keeps the last good list; its age keeps growing until it is stale.
// It is safe for concurrent use.
type Source struct {
	location string
	isURL    bool
	o        SourceOptions

	mu       sync.Mutex
	list     *StatusList
	loadedAt time.Time
	lastErr  error
}

// NewSource checks location (an https:// URL, or a file path) and fills the defaults. It
// loads nothing: call Refresh or Start.
func NewSource(location string, o SourceOptions) (*Source, error) {
	s := &Source{location: location, o: o}
	switch {
	case location == "":
		return nil, fmt.Errorf("%w: empty location", ErrSource)
	case strings.Contains(location, "://"):
		u, err := url.Parse(location)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("%w: %q: a URL must be https://HOST/…", ErrSource, location)
		}
		s.isURL = true
	}
	if s.o.Client == nil {
		s.o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.o.Interval <= 0 {
		s.o.Interval = DefaultRefresh
	}
	if s.o.MaxAge <= 0 {
		s.o.MaxAge = DefaultMaxAge
	}
	if s.o.MaxBytes <= 0 {
		s.o.MaxBytes = DefaultMaxBytes
	}
	if s.o.Now == nil {
		s.o.Now = time.Now
	}
	if s.o.After == nil {
		s.o.After = time.After
	}
	return s, nil
}

// Location is the file or URL the list is loaded from.
func (s *Source) Location() string { return s.location }

// MaxAge is the stale rule's bound.
func (s *Source) MaxAge() time.Duration { return s.o.MaxAge }

// Refresh loads the list once. On success it replaces the current list and its load
// time; on failure it keeps both and returns (and remembers) the error.
func (s *Source) Refresh(ctx context.Context) error {
	data, err := s.read(ctx)
	var list *StatusList
	if err == nil {
		list, err = ParseStatusList(data)
	}
	s.mu.Lock()
	if err != nil {
		err = fmt.Errorf("%w: %s: %w", ErrSource, s.location, err)
		s.lastErr = err
	} else {
		s.list, s.loadedAt, s.lastErr = list, s.o.Now(), nil
	}
	s.mu.Unlock()
	if s.o.OnLoad != nil {
		s.o.OnLoad(err)
	}
	return err
}

func (s *Source) read(ctx context.Context) ([]byte, error) {
	if !s.isURL {
		f, err := os.Open(s.location)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f, s.o.MaxBytes)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.location, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return readBounded(resp.Body, s.o.MaxBytes)
}

func readBounded(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("over %d bytes", max)
	}
	return data, nil
}

// Run loads the list now and then every Interval until ctx is done; it returns then.
func (s *Source) Run(ctx context.Context) {
	for {
		_ = s.Refresh(ctx) // remembered in LastError, reported to OnLoad
		select {
		case <-ctx.Done():
			return
		case <-s.o.After(s.o.Interval):
		}
	}
}

// Start runs Run in a goroutine; the returned channel is closed when it has returned
// (after ctx is done).
func (s *Source) Start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	return done
}

// Current is the last list loaded and when (nil and the zero time before any).
func (s *Source) Current() (*StatusList, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list, s.loadedAt
}

// LastError is the error of the last load, nil when it succeeded.
func (s *Source) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Age is now minus the time of the last successful load (the value a collector exports
// as a metric), or NeverLoaded.
func (s *Source) Age(now time.Time) time.Duration {
	_, at := s.Current()
	if at.IsZero() {
		return NeverLoaded
	}
	return now.Sub(at)
}

// Stale is the stale rule: no list was ever loaded, or the last one is older than
// MaxAge. The collector passes it as Policy.StatusStale.
func (s *Source) Stale(now time.Time) bool {
	_, at := s.Current()
	return at.IsZero() || now.Sub(at) > s.o.MaxAge
}
