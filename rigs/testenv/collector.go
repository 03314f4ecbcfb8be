package testenv

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// Collector is a small server side of the sync protocol (docs/protocol.md) over TLS, for the
// daemon's tests: it keeps each device chain in memory, answers accepted, duplicate
// or retry (chain_gap), counts requests, and fails on demand. The reference server is
// amos-collector; this one lets a test decide every answer.
type Collector struct {
	URL    string // https://127.0.0.1:port
	CAFile string // the PEM the client pins

	srv      *httptest.Server
	mu       sync.Mutex
	records  map[string][]byte // device/epoch/seq → record
	heads    map[string]uint64 // device/epoch → seq
	accepted map[string]int    // device/epoch/seq → times answered "accepted"
	requests int
	fail     func(n int) (status int, retryAfter string)
	now      func() int64
	delay    func() time.Duration
	verdict  func(rec *proof.Record) (status, reason string)
}

// SetVerdict decides the answer to each record before the chain does; "" lets the
// chain decide. A refused record is not stored.
func (c *Collector) SetVerdict(f func(rec *proof.Record) (status, reason string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.verdict = f
}

// StartCollector starts a Collector that stops with the test.
func StartCollector(t testing.TB) *Collector {
	t.Helper()
	c := &Collector{records: map[string][]byte{}, heads: map[string]uint64{}, accepted: map[string]int{},
		now: func() int64 { return time.Now().Unix() }}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	c.URL = c.srv.URL
	c.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw})
	if err := os.WriteFile(c.CAFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// SetFail makes request n answer status (with Retry-After if not ""), or answer
// normally when it returns 0. nil answers everything normally.
func (c *Collector) SetFail(f func(n int) (status int, retryAfter string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = f
}

// SetNow sets the server_time source.
func (c *Collector) SetNow(now func() int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// SetDelay delays every answer (outside the lock), to leave room for a kill.
func (c *Collector) SetDelay(d func() time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delay = d
}

// Counts returns the requests served and the records stored.
func (c *Collector) Counts() (requests, records int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, len(c.records)
}

// AcceptedTwice returns the records answered "accepted" more than once: must be none.
func (c *Collector) AcceptedTwice() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, n := range c.accepted {
		if n > 1 {
			out = append(out, k)
		}
	}
	return out
}

type result struct {
	Epoch  uint32 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	delay := c.delay
	c.mu.Unlock()
	if delay != nil {
		time.Sleep(delay()) // a slow server, so that a kill lands mid-request
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, proof.MaxBatchBytes+1))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	if c.fail != nil {
		if status, ra := c.fail(c.requests); status != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			w.WriteHeader(status)
			return
		}
	}
	recs, derr := proof.DecodeBatch(body)
	if err != nil || derr != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	out := struct {
		ServerTime int64    `json:"server_time"`
		Results    []result `json:"results"`
	}{ServerTime: c.now()}
	for _, b := range recs {
		rec, err := proof.Decode(b)
		if err != nil {
			out.Results = append(out.Results, result{Status: "rejected", Reason: "bad_format"})
			continue
		}
		chain := fmt.Sprintf("%s/%d", rec.DeviceID, rec.Epoch)
		key := chain + "/" + strconv.FormatUint(rec.Seq, 10)
		res := result{Epoch: rec.Epoch, Seq: rec.Seq}
		if c.verdict != nil {
			if status, reason := c.verdict(rec); status != "" {
				res.Status, res.Reason = status, reason
				out.Results = append(out.Results, res)
				continue
			}
		}
		switch {
		case c.records[key] != nil:
			res.Status = "duplicate"
		case rec.Seq == c.heads[chain]+1:
			c.records[key], c.heads[chain] = append([]byte(nil), b...), rec.Seq
			c.accepted[key]++
			res.Status = "accepted"
		default:
			res.Status, res.Reason = "retry", "chain_gap"
		}
		out.Results = append(out.Results, res)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
