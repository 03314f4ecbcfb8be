// Package httpapi serves a collector.Collector over HTTPS: the records endpoint of
// docs/protocol.md and the claims, devices, health and metrics endpoints of
// docs/operations.md, with load shedding, per-address and per-device rate limits and
// bearer tokens.
//
// POST /v1/records is first charged to the connection's remote address (an IPv4
// address, or an IPv6 /64): a token bucket of address_burst refilled at
// address_requests_per_second, in a table of at most max_addresses (429 with
// Retry-After when empty). It then holds one of max_inflight_batches slots while it
// verifies and stores a batch (taken once the body is read); with every slot taken it
// answers 503 at once, Retry-After: 5. The body is limited to 64 KiB before it is read
// (413 beyond, or on more than 256 records; 400 on bad framing; 415 without
// Content-Type application/vnd.amos.records).
// A batch is attributed to the device_id of its first record for the rate limit of
// device_batches_per_minute (a token bucket of that size, refilled over a minute; 429
// with Retry-After when empty); the token is given back when that first record turns
// out not to be the device's own (bad_format, bad_signature, unknown_device), so that
// nobody can spend a device's budget without its key.
//
// GET /v1/claims and GET /v1/devices/{id} need "Authorization: Bearer TOKEN"; the
// token's SHA-256 is compared, in constant time, with every maker's and the payer's.
// A maker sees its own claim row and its own devices (another maker's device is 404),
// the payer sees everything; no or an unknown token is 401.
//
// GET /metrics serves the Handler's own Prometheus registry (never the global one):
// records by verdict and reason, uploads by outcome, batch latency, in-flight batches,
// ledger errors, claims latency, the attestation status list's age, Go and process
// metrics.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/attest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// RetryAfterBusy is the Retry-After of a 503 when every in-flight slot is taken.
const RetryAfterBusy = 5 * time.Second

// Options configure a Handler.
type Options struct {
	Collector *collector.Collector
	// MakerTokens maps maker_id to the SHA-256 of its bearer token.
	MakerTokens map[string][32]byte
	// PayerToken is the SHA-256 of the payer's token; nil for none.
	PayerToken *[32]byte
	// MaxInflight bounds the batches being handled at once (max_inflight_batches).
	MaxInflight int
	// DeviceBatchesPerMinute bounds each device's batches (device_batches_per_minute).
	DeviceBatchesPerMinute int
	// AddressRequestsPerSecond refills each remote address's bucket of POST
	// /v1/records requests (address_requests_per_second); 0 turns the per-address
	// limit off.
	AddressRequestsPerSecond int
	// AddressBurst is the size of that bucket (address_burst); at least 1 with the
	// limit on.
	AddressBurst int
	// MaxAddresses bounds the addresses the limit tracks at once (max_addresses); at
	// least 1 with the limit on.
	MaxAddresses int
	// Now is the clock of the rate limits and of the status list's age; time.Now if
	// nil.
	Now func() time.Time
	// Logf receives one line per server-side failure; nil for none.
	Logf func(format string, args ...any)
	// Status is the attestation status list source whose age GET /metrics exports;
	// nil for none.
	Status *attest.Source
}

// FromConfig returns the Options of a validated configuration.
// The caller sets Status.
func FromConfig(cfg *collector.Config, c *collector.Collector, logf func(string, ...any)) Options {
	o := Options{Collector: c, MakerTokens: cfg.TokenHashes(), MaxInflight: cfg.Limits.MaxInflightBatches,
		DeviceBatchesPerMinute: cfg.Limits.DeviceBatchesPerMinute, AddressRequestsPerSecond: cfg.Limits.AddressRequestsPerSecond,
		AddressBurst: cfg.Limits.AddressBurst, MaxAddresses: cfg.Limits.MaxAddresses, Logf: logf}
	if h, ok := cfg.PayerTokenHash(); ok {
		o.PayerToken = &h
	}
	return o
}

// Handler is the collector's HTTP API.
type Handler struct {
	c      *collector.Collector
	makers []makerToken
	payer  *[32]byte
	sem    chan struct{}
	rate   *rateLimiter
	addrs  *addrLimiter // nil: no per-address limit
	logf   func(string, ...any)
	mux    *http.ServeMux
	m      *metrics
}

type makerToken struct {
	id   string
	hash [32]byte
}

// New returns the Handler.
func New(o Options) (*Handler, error) {
	switch {
	case o.Collector == nil:
		return nil, errors.New("httpapi: no collector")
	case o.MaxInflight < 1:
		return nil, fmt.Errorf("httpapi: max in-flight batches %d, want at least 1", o.MaxInflight)
	case o.DeviceBatchesPerMinute < 1:
		return nil, fmt.Errorf("httpapi: device batches per minute %d, want at least 1", o.DeviceBatchesPerMinute)
	case o.AddressRequestsPerSecond < 0:
		return nil, fmt.Errorf("httpapi: address requests per second %d, want 0 (off) or more", o.AddressRequestsPerSecond)
	case o.AddressRequestsPerSecond > 0 && o.AddressBurst < 1:
		return nil, fmt.Errorf("httpapi: address burst %d, want at least 1", o.AddressBurst)
	case o.AddressRequestsPerSecond > 0 && o.MaxAddresses < 1:
		return nil, fmt.Errorf("httpapi: max addresses %d, want at least 1", o.MaxAddresses)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	h := &Handler{c: o.Collector, payer: o.PayerToken, sem: make(chan struct{}, o.MaxInflight),
		rate: newRateLimiter(o.DeviceBatchesPerMinute, o.Now), logf: o.Logf, mux: http.NewServeMux()}
	if o.AddressRequestsPerSecond > 0 {
		h.addrs = newAddrLimiter(o.AddressRequestsPerSecond, o.AddressBurst, o.MaxAddresses, o.Now)
	}
	var err error
	if h.m, err = newMetrics(o.Status, o.Now, h.addrs); err != nil {
		return nil, err
	}
	for id, hash := range o.MakerTokens {
		h.makers = append(h.makers, makerToken{id, hash})
	}
	slices.SortFunc(h.makers, func(a, b makerToken) int { return strings.Compare(a.id, b.id) })
	h.mux.HandleFunc("POST /v1/records", h.records)
	h.mux.HandleFunc("GET /v1/claims", h.claims)
	h.mux.HandleFunc("GET /v1/devices/{id}", h.device)
	h.mux.HandleFunc("GET /v1/claims/devices", h.claimDevices)
	h.mux.HandleFunc("POST /v1/registry", h.registry)
	h.mux.HandleFunc("POST /v1/held/{id}", h.decide)
	h.mux.HandleFunc("GET /v1/decisions", h.decisions)
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.Handle("GET /metrics", h.m.handler(o.Logf))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

func (h *Handler) records(w http.ResponseWriter, r *http.Request) {
	h.m.upload(h.upload(w, r))
}

// upload answers POST /v1/records and returns the outcome it answered.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) string {
	if h.addrs != nil {
		key := addrKey(r.RemoteAddr)
		if ok, wait := h.addrs.take(key); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeError(w, http.StatusTooManyRequests, "address %s: more than %g requests a second (burst %g)", addrString(key), h.addrs.rate, h.addrs.burst)
			return outcomeAddressLimited
		}
	}
	// The in-flight slot is taken only once the whole body has been read (below): a
	// client that sends its body slowly holds a connection, never an upload slot.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != proof.BatchContentType {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type %q, want %s", r.Header.Get("Content-Type"), proof.BatchContentType)
		return outcomeUnsupportedType
	}
	if r.ContentLength > proof.MaxBatchBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "%d bytes, a batch is at most %d", r.ContentLength, proof.MaxBatchBytes)
		return outcomeTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, proof.MaxBatchBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "a batch is at most %d bytes", proof.MaxBatchBytes)
			return outcomeTooLarge
		}
		writeError(w, http.StatusBadRequest, "reading the batch: %v", err)
		return outcomeBadBatch
	}
	records, err := proof.DecodeBatch(body)
	if err != nil {
		if errors.Is(err, proof.ErrBatchTooMany) || errors.Is(err, proof.ErrBatchTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "%v", err)
			return outcomeTooLarge
		}
		writeError(w, http.StatusBadRequest, "%v", err)
		return outcomeBadBatch
	}
	var dev proof.DeviceID
	attributed := len(records[0]) >= 7+proof.HashSize
	if attributed {
		copy(dev[:], records[0][7:])
		if ok, wait := h.rate.take(dev); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeError(w, http.StatusTooManyRequests, "device %s: more than %d batches a minute", dev, h.rate.burst)
			return outcomeDeviceLimited
		}
	}
	select {
	case h.sem <- struct{}{}:
	default:
		if attributed {
			h.rate.refund(dev)
		}
		w.Header().Set("Retry-After", retryAfter(RetryAfterBusy))
		writeError(w, http.StatusServiceUnavailable, "too many batches in flight")
		return outcomeBusy
	}
	rc, err := h.ingest(records)
	if err != nil {
		if attributed {
			h.rate.refund(dev)
		}
		h.m.ledgerError(opIngest)
		h.logf("amos-collector: POST /v1/records: %v", err)
		writeError(w, http.StatusInternalServerError, "the batch could not be stored; retry later")
		return outcomeLedgerError
	}
	if attributed && !authentic(rc.Results[0]) {
		h.rate.refund(dev)
	}
	h.m.receipt(rc)
	writeJSON(w, http.StatusOK, rc)
	return outcomeStored
}

// ingest stores a batch with the in-flight slot the caller took, and gives it back.
func (h *Handler) ingest(records [][]byte) (*collector.Receipt, error) {
	h.m.inflight.Inc()
	start := time.Now()
	defer func() {
		h.m.batch.Observe(time.Since(start).Seconds())
		h.m.inflight.Dec()
		<-h.sem
	}()
	return h.c.Ingest(records)
}

// viewClaim is the shared first step of the claim endpoints: it authenticates, parses
// month and format (json or csv), computes the month's claim and narrows it to what the
// caller may see. It has answered when ok is false.
func (h *Handler) viewClaim(w http.ResponseWriter, r *http.Request) (c *collector.Claims, format string, ok bool) {
	p, ok := h.authenticate(w, r)
	if !ok {
		return nil, "", false
	}
	q := r.URL.Query()
	m, err := collector.ParseMonth(q.Get("month"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return nil, "", false
	}
	format = q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, "format %q, want json or csv", format)
		return nil, "", false
	}
	start := time.Now()
	c, err = h.c.Claims(m)
	h.m.claims.Observe(time.Since(start).Seconds())
	if err != nil {
		h.m.ledgerError(opClaims)
		h.logf("amos-collector: %s %s: %v", r.Method, r.URL.Path, err)
		writeError(w, http.StatusInternalServerError, "claims for %s could not be computed", m)
		return nil, "", false
	}
	if !p.payer {
		c = c.ForMaker(p.maker)
	}
	return c, format, true
}

// authentic reports whether a result proves that the record was signed by the key of
// the device it names.
func authentic(r collector.Result) bool {
	switch r.Reason {
	case collector.ReasonBadFormat, collector.ReasonBadSignature, collector.ReasonUnknownDevice:
		return false
	}
	return true
}

// principal is who a bearer token belongs to: a maker, or the payer.
type principal struct {
	maker string
	payer bool
}

// authenticate checks the bearer token against every maker's and the payer's hash,
// in constant time, always all of them.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (principal, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	sum := sha256.Sum256([]byte(token))
	var p principal
	found := 0
	for _, m := range h.makers {
		if subtle.ConstantTimeCompare(sum[:], m.hash[:]) == 1 {
			p, found = principal{maker: m.id}, 1
		}
	}
	if h.payer != nil && subtle.ConstantTimeCompare(sum[:], h.payer[:]) == 1 {
		p, found = principal{payer: true}, 1
	}
	if found == 0 || !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="amos-collector"`)
		writeError(w, http.StatusUnauthorized, "a maker's or the payer's bearer token is required")
		return principal{}, false
	}
	return p, true
}

func (h *Handler) claims(w http.ResponseWriter, r *http.Request) {
	claims, format, ok := h.viewClaim(w, r)
	if !ok {
		return
	}
	claims = claims.Summary()
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		claims.WriteCSV(w)
		return
	}
	writeJSON(w, http.StatusOK, claims)
}

func (h *Handler) device(w http.ResponseWriter, r *http.Request) {
	p, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	id, err := proof.ParseHash(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "device_id %q: want 64 hex digits", r.PathValue("id"))
		return
	}
	d, err := h.c.Device(id)
	switch {
	case errors.Is(err, collector.ErrNotFound):
		writeError(w, http.StatusNotFound, "no device %s", id)
		return
	case err != nil:
		h.m.ledgerError(opDevice)
		h.logf("amos-collector: GET /v1/devices/%s: %v", id, err)
		writeError(w, http.StatusInternalServerError, "device %s could not be read", id)
		return
	case !p.payer && d.MakerID != p.maker:
		writeError(w, http.StatusNotFound, "no device %s", id) // not this maker's: as if absent
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	if err := h.c.Ledger().View(func(ledger.Tx) error { return nil }); err != nil {
		h.m.ledgerError(opHealth)
		writeError(w, http.StatusServiceUnavailable, "ledger: %v", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// rateLimiter is a token bucket per device: burst tokens, refilled at burst a minute.
type rateLimiter struct {
	mu        sync.Mutex
	burst     int
	perSecond float64
	now       func() time.Time
	buckets   map[proof.DeviceID]*bucket
	swept     time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(perMinute int, now func() time.Time) *rateLimiter {
	return &rateLimiter{burst: perMinute, perSecond: float64(perMinute) / 60, now: now,
		buckets: map[proof.DeviceID]*bucket{}, swept: now()}
}

func (l *rateLimiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.burst), b.tokens+d.Seconds()*l.perSecond)
	}
	b.at = now
}

// take spends one of the device's tokens, or says how long until one is back.
func (l *rateLimiter) take(id proof.DeviceID) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) >= time.Minute { // forget the devices whose bucket is full again
		for k, b := range l.buckets {
			if l.refill(b, now); b.tokens >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[id]
	if b == nil {
		b = &bucket{tokens: float64(l.burst), at: now}
		l.buckets[id] = b
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
}

// refund gives a token back.
func (l *rateLimiter) refund(id proof.DeviceID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[id]; b != nil {
		b.tokens = min(float64(l.burst), b.tokens+1)
	}
}

// LoadTLS returns the server's TLS configuration: the certificate chain and key of the
// configuration's tls_cert and tls_key, TLS 1.2 at least.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("httpapi: tls_cert %s, tls_key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// NewServer returns an http.Server for h with the collector's timeouts and limits;
// tlsConfig nil serves plain http.
func NewServer(h http.Handler, tlsConfig *tls.Config, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute, // claims over a large ledger take a while
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errorLog,
	}
}

// ShutdownTimeout bounds the wait for requests in flight when Serve stops.
const ShutdownTimeout = 30 * time.Second

// Serve serves on ln until ctx is done, then shuts down gracefully: the listener
// closes, requests in flight finish (their batches are committed), idle connections
// close. It returns nil after a shutdown on ctx, or the error that stopped serving.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
