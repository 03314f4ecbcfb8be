package transport

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amos.example/amosd/internal/devpki"
	"amos.example/amosd/proof"
)

// testTimeout is the client timeout of the tests: short, so that every failure is quick.
const testTimeout = 2 * time.Second

// testServerTime is the server_time the test collector answers.
const testServerTime = 1795500000

// ---- PKI ----

// newPKI makes a CA for one test and a server certificate it signed for 127.0.0.1,
// records.test, records.amos.example and records.amos.test.
func newPKI(t testing.TB) *devpki.PKI {
	t.Helper()
	now := time.Now()
	p, err := devpki.New(t.TempDir(), devpki.Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		CAName: "amos test CA " + t.Name(), ServerName: "records.test",
		DNSNames: []string{"records.test", "records.amos.example", "records.amos.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- records ----

// makeRecords returns n signed activity records of one device, epoch 1, seq 2..n+1, one
// per day from 2026-01-01, chained by prev_hash: 199 bytes each.
func makeRecords(t testing.TB, n int) ([][]byte, []RecordID) {
	t.Helper()
	seed := sha256.Sum256([]byte("amosd transport test device"))
	dev, err := proof.NewKeySigner(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	var prev proof.Hash // the genesis is not part of the tests' queues
	recs := make([][]byte, n)
	ids := make([]RecordID, n)
	date := proof.NewDate(2026, time.January, 1)
	for i := range n {
		r := &proof.Record{
			DeviceID: dev.PublicKey().DeviceID(),
			Epoch:    1,
			Seq:      uint64(i + 2),
			PrevHash: prev,
			MintedAt: date.Next().Start(480).Unix() + 5,
			UptimeMS: 86_400_000 * uint64(i+1),
			Body: &proof.ActivityDay{
				Date:               date,
				UTCOffsetMinutes:   480,
				InteractiveSeconds: uint32(600 + i%3000),
				Unlocks:            uint16(1 + i%9),
				ScreenOns:          uint16(2 + i%13),
				ActiveHours:        0x0FF000,
			},
		}
		b, err := r.Sign(dev)
		if err != nil {
			t.Fatal(err)
		}
		recs[i], ids[i] = b, RecordID{1, uint64(i + 2)}
		prev = proof.HashRecord(b)
		date = date.Next()
	}
	return recs, ids
}

// ---- the test collector ----

type srvResult struct {
	Epoch  uint32 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

type srvResponse struct {
	ServerTime int64       `json:"server_time"`
	Results    []srvResult `json:"results"`
}

// collector is the server side of docs/protocol.md for the tests: it decodes batches with proof,
// stores each record once (a record it has is a duplicate), and answers results.
// Scenario hooks change what it answers. All fields are guarded by mu.
type collector struct {
	mu       sync.Mutex
	stored   map[RecordID][]byte
	order    []RecordID // stored, in arrival order
	requests int        // POSTs to /v1/records whose body was read completely
	resumed  []bool     // tls.ConnectionState.DidResume of each of those requests

	// before, when set, sees the decoded batch first; if it answers (returns true),
	// nothing is stored.
	before func(w http.ResponseWriter, r *http.Request, ids []RecordID) bool
	// verdict, when set, overrides the status of a record (status "", reason "" = normal).
	verdict func(id RecordID) (status, reason string)
	// after, when set, writes the answer itself from the encoded JSON and the response.
	after func(w http.ResponseWriter, resp *srvResponse)

	got chan struct{} // receives (without blocking) when a request arrives
}

func newCollector() *collector {
	return &collector{stored: map[RecordID][]byte{}, got: make(chan struct{}, 1)}
}

func (c *collector) set(f func(c *collector)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != RecordsPath || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	select {
	case c.got <- struct{}{}:
	default:
	}
	if r.Header.Get("Content-Type") != proof.BatchContentType {
		http.Error(w, "wrong content type", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, proof.MaxBatchBytes))
	if err != nil {
		return // the client or the network broke the request
	}
	c.mu.Lock()
	c.requests++
	c.resumed = append(c.resumed, r.TLS != nil && r.TLS.DidResume)
	before, verdict, after := c.before, c.verdict, c.after
	c.mu.Unlock()

	recs, err := proof.DecodeBatch(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ids := make([]RecordID, len(recs))
	for i, rec := range recs {
		d, err := proof.Decode(rec)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ids[i] = RecordID{d.Epoch, d.Seq}
	}
	if before != nil && before(w, r, ids) {
		return
	}
	resp := &srvResponse{ServerTime: testServerTime, Results: make([]srvResult, len(ids))}
	c.mu.Lock()
	for i, id := range ids {
		res := srvResult{Epoch: id.Epoch, Seq: id.Seq}
		if verdict != nil {
			res.Status, res.Reason = verdict(id)
		}
		if res.Status == "" {
			switch have, ok := c.stored[id]; {
			case !ok:
				c.stored[id] = recs[i]
				c.order = append(c.order, id)
				res.Status = StatusAccepted
			case string(have) == string(recs[i]):
				res.Status = StatusDuplicate
			default:
				res.Status, res.Reason = StatusRejected, "chain_fork"
			}
		}
		resp.Results[i] = res
	}
	c.mu.Unlock()
	if after != nil {
		after(w, resp)
		return
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// counts returns the number of complete requests and of stored records.
func (c *collector) counts() (requests, stored int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, len(c.order)
}

// storedIDs returns the stored records in arrival order.
func (c *collector) storedIDs() []RecordID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]RecordID(nil), c.order...)
}

// ---- servers ----

// countingListener counts the bytes read and written on its connections: the TCP
// payload, TLS records included.
type countingListener struct {
	net.Listener
	n        atomic.Int64 // bytes read and written
	accepted atomic.Int64 // connections
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return &countingConn{Conn: c, n: &l.n}, nil
}

// testServer is a TLS test server running a collector.
type testServer struct {
	*httptest.Server
	col   *collector
	pki   *devpki.PKI
	count *countingListener
}

// startTLS starts a collector behind TLS with a fresh CA; keepAlive false makes the
// server close every connection after one request.
func startTLS(t testing.TB, keepAlive bool) *testServer {
	t.Helper()
	col := newCollector()
	p := newPKI(t)
	srv := httptest.NewUnstartedServer(col)
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.Server}}
	srv.Config.SetKeepAlivesEnabled(keepAlive)
	srv.Config.ErrorLog = discardLog()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, col: col, pki: p, count: cl}
}

// client returns a Client of the server's CA for url (the server's if "").
func (s *testServer) client(t testing.TB, url string, mod ...func(*Config)) *Client {
	t.Helper()
	if url == "" {
		url = s.URL
	}
	cfg := Config{ServerURL: url, CAFile: s.pki.CAFile, Timeout: testTimeout}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// ---- the fault injector ----

type proxyMode int32

const (
	passThrough  proxyMode = iota
	resetRequest           // reset both sides after limit bytes from the client
	cutResponse            // close both sides after limit bytes from the server
	stallAll               // accept, then forward nothing
)

// proxy is a TCP proxy on 127.0.0.1 between the client and a server that injects
// network faults into the connections it accepts after a mode is set.
type proxy struct {
	ln       net.Listener
	target   string
	mode     atomic.Int32
	limit    atomic.Int64
	accepted chan struct{} // receives (without blocking) on every accepted connection

	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, accepted: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) set(m proxyMode, limit int64) {
	p.limit.Store(limit)
	p.mode.Store(int32(m))
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *proxy) serve(client net.Conn) {
	p.track(client)
	select {
	case p.accepted <- struct{}{}:
	default:
	}
	mode, limit := proxyMode(p.mode.Load()), p.limit.Load()
	if mode == stallAll {
		io.Copy(io.Discard, client) // until the client gives up or the test ends
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(server)
	abort := func() { // RST on both sides
		for _, c := range []net.Conn{client, server} {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}
	up, down := int64(-1), int64(-1)
	switch mode {
	case resetRequest:
		up = limit
	case cutResponse:
		down = limit
	}
	go func() {
		if copyN(server, client, up) {
			abort()
			return
		}
		server.(*net.TCPConn).CloseWrite()
	}()
	if copyN(client, server, down) {
		client.Close() // FIN: the client sees the answer end early
		server.Close()
		return
	}
	client.(*net.TCPConn).CloseWrite()
}

// copyN copies src to dst until EOF, or until limit bytes (if limit >= 0), and reports
// whether it stopped at the limit.
func copyN(dst io.Writer, src io.Reader, limit int64) bool {
	if limit < 0 {
		io.Copy(dst, src)
		return false
	}
	n, _ := io.CopyN(dst, src, limit)
	return n == limit
}

// ---- small helpers ----

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

func upload(t testing.TB, c *Client, recs [][]byte) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Upload(ctx, recs)
	if res == nil {
		t.Fatalf("Upload returned a nil Result (error %v)", err)
	}
	return res, err
}

func mustUpload(t testing.TB, c *Client, recs [][]byte) *Result {
	t.Helper()
	res, err := upload(t, c, recs)
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	return res
}
