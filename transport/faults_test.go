package transport

import (
	"amos.example/amosd/rigs/testenv"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// proxied starts a TLS collector and a fault proxy in front of it, and a client of the
// proxy with the given timeout.
func proxied(t *testing.T, timeout time.Duration) (*testServer, *proxy, *Client) {
	t.Helper()
	s := startTLS(t, true)
	p := startProxy(t, s.Listener.Addr().String())
	c := s.client(t, "https://"+p.addr(), func(cfg *Config) { cfg.Timeout = timeout })
	return s, p, c
}

// recover checks that, once the network is good again, one more Upload settles every
// record and the server holds each exactly once.
func recoverAll(t *testing.T, s *testServer, p *proxy, c *Client, recs [][]byte, ids []RecordID) *Result {
	t.Helper()
	p.set(passThrough, 0)
	res := mustUpload(t, c, recs)
	checkSettled(t, ids, res.Acked, res.Dead)
	if got := s.col.storedIDs(); !slices.Equal(got, ids) {
		t.Errorf("the server stored %d records, want the %d once each", len(got), len(ids))
	}
	return res
}

func TestProxyPassThrough(t *testing.T) {
	s, p, c := proxied(t, testTimeout)
	recs, ids := makeRecords(t, 10)
	res := recoverAll(t, s, p, c, recs, ids)
	if res.Requests != 1 {
		t.Errorf("%d requests", res.Requests)
	}
}

// TestResetMidRequest resets the connection after 8 KB of a 20 KB request: the server
// never gets the whole batch, the client gets a transient error, and the next Upload
// settles everything, as accepted (not duplicate).
func TestResetMidRequest(t *testing.T) {
	s, p, c := proxied(t, testTimeout)
	recs, ids := makeRecords(t, 100)
	p.set(resetRequest, 8<<10)
	res, err := upload(t, c, recs)
	testenv.WantErr(t, err, ErrTransient)
	if errors.Is(err, ErrTLS) || res.Requests != 1 || res.Settled() != 0 {
		t.Fatalf("error %v, result %+v", err, res)
	}
	if n, st := s.col.counts(); n != 0 || st != 0 {
		t.Fatalf("server: %d complete requests, %d stored; want 0", n, st)
	}
	res = recoverAll(t, s, p, c, recs, ids)
	if res.Requests != 1 {
		t.Errorf("%d requests to recover", res.Requests)
	}
}

// TestResponseCutMidBody lets the server store a batch and answer, then cuts the answer
// off in the middle of its body: nothing is settled, and the next Upload acks every
// record as a duplicate.
func TestResponseCutMidBody(t *testing.T) {
	s, p, c := proxied(t, testTimeout)
	recs, ids := makeRecords(t, 200) // an answer of about 10 KB
	p.set(cutResponse, 6000)         // the handshake is about 1.5 KB
	res, err := upload(t, c, recs)
	testenv.WantErr(t, err, ErrTransient)
	if !strings.Contains(err.Error(), "reading the answer") {
		t.Errorf("error %q: not cut in the body", err)
	}
	if res.Requests != 1 || res.Settled() != 0 || res.ServerTime != 0 {
		t.Fatalf("result %+v", res)
	}
	if n, st := s.col.counts(); n != 1 || st != 200 {
		t.Fatalf("server: %d requests, %d stored; want 1, 200", n, st)
	}
	recoverAll(t, s, p, c, recs, ids)
	if n, _ := s.col.counts(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

// TestStalledConnection: the proxy accepts and never answers; the client gives up after
// its timeout.
func TestStalledConnection(t *testing.T) {
	const timeout = 500 * time.Millisecond
	s, p, c := proxied(t, timeout)
	recs, ids := makeRecords(t, 3)
	p.set(stallAll, 0)
	start := time.Now()
	res, err := upload(t, c, recs)
	elapsed := time.Since(start)
	testenv.WantErr(t, err, ErrTransient)
	select {
	case <-p.accepted:
	default:
		t.Fatal("the proxy accepted no connection")
	}
	if elapsed < timeout || elapsed > timeout+testTimeout {
		t.Errorf("gave up after %v, timeout %v", elapsed, timeout)
	}
	if res.Requests != 1 || res.Settled() != 0 {
		t.Fatalf("result %+v", res)
	}
	recoverAll(t, s, p, c, recs, ids)
}

// TestStalledServer: the server reads the request and never answers; the client gives
// up after its timeout, with the deadline as the cause.
func TestStalledServer(t *testing.T) {
	const timeout = 500 * time.Millisecond
	s := startTLS(t, true)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	s.col.set(func(col *collector) {
		col.before = func(w http.ResponseWriter, r *http.Request, _ []RecordID) bool {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return true
		}
	})
	c := s.client(t, "", func(cfg *Config) { cfg.Timeout = timeout })
	recs, _ := makeRecords(t, 3)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := c.Upload(context.Background(), recs)
		done <- err
	}()
	select {
	case <-s.col.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no request")
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Upload did not give up")
	}
	// Transient, whichever way the race between the client's deadline and the stalled
	// handler's return ends (under emulation the handler can answer an empty 200
	// first, which is a protocol error, also transient).
	testenv.WantErr(t, err, ErrTransient)
	if d := time.Since(start); d > timeout+testTimeout {
		t.Errorf("gave up after %v, timeout %v", d, timeout)
	}
}

// TestCallerDeadline: the caller's context ends an Upload that waits on a stalled server.
func TestCallerDeadline(t *testing.T) {
	_, p, c := proxied(t, time.Minute)
	p.set(stallAll, 0)
	recs, _ := makeRecords(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-p.accepted
		cancel()
	}()
	res, err := c.Upload(ctx, recs)
	testenv.WantErr(t, err, ErrTransient, context.Canceled)
	if res.Requests != 1 {
		t.Errorf("%d requests", res.Requests)
	}
}

// TestConnectionRefused: nothing listens.
func TestConnectionRefused(t *testing.T) {
	s := startTLS(t, true)
	p := startProxy(t, "127.0.0.1:1")
	c := s.client(t, "https://"+p.addr())
	recs, _ := makeRecords(t, 1)
	_, err := upload(t, c, recs)
	testenv.WantErr(t, err, ErrTransient)
	if errors.Is(err, ErrTLS) {
		t.Errorf("a network failure classified as TLS: %v", err)
	}
}
