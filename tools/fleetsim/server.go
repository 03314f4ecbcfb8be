package fleetsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/httpapi"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/internal/devpki"
	"amos.example/amosd/proof"
)

// Clock is the simulated wall clock: the in-process collector's server time and rate
// limit run on it, so that a month passes in minutes.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now returns the simulated time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Set moves the simulated time to t.
func (c *Clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Maker is a maker whose devices the simulation certifies.
type Maker struct {
	ID    string
	Key   *proof.KeySigner // signs the maker certificates
	Token string           // bearer token: its own claim row and devices
}

// NewMaker derives a maker's key from seed and id, and gives it a random token.
func NewMaker(id string, seed uint64) (Maker, error) {
	s := sha256.Sum256(fmt.Appendf(nil, "fleetsim maker %d %s", seed, id))
	k, err := proof.NewKeySigner(s[:])
	if err != nil {
		return Maker{}, err
	}
	return Maker{ID: id, Key: k, Token: randomToken()}, nil
}

// LoadMaker reads a maker key written by `amos-collector maker keygen` (a 32-byte seed).
func LoadMaker(id, keyFile, token string) (Maker, error) {
	seed, err := os.ReadFile(keyFile)
	if err != nil {
		return Maker{}, err
	}
	k, err := proof.NewKeySigner(seed)
	if err != nil {
		return Maker{}, fmt.Errorf("fleetsim: maker key %s: %w", keyFile, err)
	}
	return Maker{ID: id, Key: k, Token: token}, nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TokenHash returns the hex SHA-256 of a bearer token, as the collector's configuration
// holds it.
func TokenHash(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// Server is the amos-collector the simulation talks to over TLS: started in-process on
// loopback (collector + collector/httpapi + a bbolt or PostgreSQL ledger, on a simulated
// Clock), or an external one (amos-collector serve) on the real clock.
type Server struct {
	URL        string // https://127.0.0.1:port
	CAFile     string // the CA the devices pin
	PayerToken string
	Makers     []Maker
	// Clock is the in-process server's clock; nil for an external server.
	Clock *Clock
	// Now is an external server's clock as the simulation assumes it (time.Now when
	// nil): a month that is not over by it cannot be uploaded whole.
	Now func() time.Time
	// Ledger names an in-process server's ledger: its bbolt file, or its PostgreSQL URL
	// without the password (pgledger.Redact).
	Ledger string
	// Collector is an in-process server's collector, for tests that look at it through
	// another front end (the console); nil for an external server.
	Collector *collector.Collector

	http *http.Client
	stop func() error
}

// StartServer starts an in-process collector over TLS in dir (pki/, and ledger/ for
// bbolt) with the makers registered, docs/dbus-api.md's default eligibility and limits,
// on clock; ledgerURL is its ledger: "" for bbolt in dir/ledger, else a postgres://
// URL (collector/ledger/pgledger, as the collector's "ledger" key); att verifies
// attestation chains and gives the makers' modes (nil: none, every maker off).
func StartServer(dir, ledgerURL string, makers []Maker, clock *Clock, att collector.Attestor, logf func(string, ...any)) (*Server, error) {
	pki, err := NewPKI(filepath.Join(dir, "pki"), 30*24*time.Hour)
	if err != nil {
		return nil, err
	}
	l, name, err := openLedger(dir, ledgerURL)
	if err != nil {
		return nil, err
	}
	reg := collector.Registry{}
	tokens := map[string][32]byte{}
	for _, m := range makers {
		reg[m.ID] = m.Key.PublicKey()
		tokens[m.ID] = sha256.Sum256([]byte(m.Token))
	}
	c, err := collector.New(l, collector.Options{Makers: reg, Now: clock.Now, Attestation: att})
	if err != nil {
		l.Close()
		return nil, err
	}
	payer := randomToken()
	payerHash := sha256.Sum256([]byte(payer))
	lim := collector.DefaultLimits()
	if logf == nil {
		logf = func(string, ...any) {}
	}
	h, err := httpapi.New(httpapi.Options{Collector: c, MakerTokens: tokens, PayerToken: &payerHash,
		MaxInflight: lim.MaxInflightBatches, DeviceBatchesPerMinute: lim.DeviceBatchesPerMinute, Now: clock.Now, Logf: logf})
	if err != nil {
		l.Close()
		return nil, err
	}
	tlsConf, err := httpapi.LoadTLS(pki.CertFile, pki.KeyFile)
	if err != nil {
		l.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := httpapi.NewServer(h, tlsConf, log.New(io.Discard, "", 0))
	go func() { done <- httpapi.Serve(ctx, srv, ln) }()
	s := &Server{URL: "https://" + ln.Addr().String(), CAFile: pki.CAFile, PayerToken: payer, Makers: makers,
		Clock: clock, Ledger: name, Collector: c}
	s.stop = func() error {
		cancel()
		err := <-done
		return errors.Join(err, l.Close())
	}
	if err := s.dial(pki.CAFile); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openLedger opens an in-process collector's ledger and names it for messages.
func openLedger(dir, ledgerURL string) (ledger.Ledger, string, error) {
	if ledgerURL != "" {
		l, err := pgledger.Open(ledgerURL, pgledger.Options{})
		if err != nil {
			return nil, "", err // it names the database without the password
		}
		return l, pgledger.Redact(ledgerURL), nil
	}
	l, err := ledger.OpenBolt(filepath.Join(dir, "ledger"), ledger.BoltOptions{})
	if err != nil {
		return nil, "", err
	}
	return l, l.Path(), nil
}

// ExternalServer returns the Server of a running amos-collector at url whose TLS
// certificate chains to caFile, with the makers (their keys and tokens) it registers.
func ExternalServer(url, caFile, payerToken string, makers []Maker, now func() time.Time) (*Server, error) {
	s := &Server{URL: strings.TrimSuffix(url, "/"), CAFile: caFile, PayerToken: payerToken, Makers: makers, Now: now}
	if err := s.dial(caFile); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) dial(caFile string) error {
	pool, err := devpki.LoadPool(caFile)
	if err != nil {
		return err
	}
	s.http = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return nil
}

// ServerNow is the server's time: the simulated clock of an in-process server, the
// assumed clock of an external one.
func (s *Server) ServerNow() time.Time {
	switch {
	case s.Clock != nil:
		return s.Clock.Now()
	case s.Now != nil:
		return s.Now()
	}
	return time.Now()
}

// monthOver refuses a month that is not over by an external server's clock, whose last
// dates it would refuse as future_date; an in-process server's clock is the simulation's.
func (s *Server) monthOver(m collector.Month, offset int) error {
	if s.Clock == nil && !m.Last().Next().Start(offset).Before(s.ServerNow()) {
		return fmt.Errorf("fleetsim: month %s is not over by the collector's clock (%s): it would refuse its last dates as future_date",
			m, s.ServerNow().UTC().Format(time.RFC3339))
	}
	return nil
}

// Close stops an in-process server.
func (s *Server) Close() error {
	if s.http != nil {
		s.http.CloseIdleConnections()
	}
	if s.stop == nil {
		return nil
	}
	stop := s.stop
	s.stop = nil
	return stop()
}

// Maker returns the maker with id.
func (s *Server) Maker(id string) (Maker, bool) {
	for _, m := range s.Makers {
		if m.ID == id {
			return m, true
		}
	}
	return Maker{}, false
}

// get fetches path with a bearer token and decodes the JSON answer into v; it returns
// the raw body too.
func (s *Server) get(path, token string, v any) ([]byte, error) {
	return s.do(http.MethodGet, path, token, "", nil, v)
}

// do sends a request with a bearer token (and a body of contentType, if any) and
// decodes a 200 answer's JSON into v; it returns the raw body too.
func (s *Server) do(method, path, token, contentType string, body []byte, v any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return raw, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(raw)))
	}
	return raw, json.Unmarshal(raw, v)
}

// RegisterSales imports sold handsets into the collector's sales registry: POST
// /v1/registry with the payer's token, a CSV body (sales.Format). The import is all
// or nothing; a handset registered before with the same fields is unchanged.
func (s *Server) RegisterSales(sold []sales.Sale) (collector.ImportResult, error) {
	var b bytes.Buffer
	if err := sales.Format(&b, sold); err != nil {
		return collector.ImportResult{}, err
	}
	var res collector.ImportResult
	if _, err := s.do(http.MethodPost, "/v1/registry", s.PayerToken, "text/csv", b.Bytes(), &res); err != nil {
		return collector.ImportResult{}, err
	}
	return res, nil
}

// ClaimDevices fetches GET /v1/claims/devices?month=M[&outcome=O] with token: what the
// month's claim made of every device key with an accepted day in it (the payer's
// token), or of the token's maker's own; outcome "" for every outcome.
func (s *Server) ClaimDevices(m collector.Month, token string, outcome string) ([]claim.Device, error) {
	path := "/v1/claims/devices?month=" + m.String()
	if outcome != "" {
		path += "&outcome=" + url.QueryEscape(outcome)
	}
	var out struct {
		Month   string         `json:"month"`
		Devices []claim.Device `json:"devices"`
	}
	if _, err := s.get(path, token, &out); err != nil {
		return nil, err
	}
	if out.Month != m.String() {
		return nil, fmt.Errorf("GET %s: the devices of %q", path, out.Month)
	}
	return out.Devices, nil
}

// Decide posts the payer's decision on a device held in month m: POST
// /v1/held/{device_id}, release (pay it despite its signals) or deny, with who
// decides and why. The collector refuses it (409) once the month has closed, or for a
// device the month does not hold.
func (s *Server) Decide(m collector.Month, id proof.DeviceID, release bool, by, why string) error {
	req := map[string]string{"month": m.String(), "decision": "deny", "by": by, "why": why}
	if release {
		req["decision"] = "release"
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var d claim.Decision
	_, err = s.do(http.MethodPost, "/v1/held/"+id.String(), s.PayerToken, "application/json", body, &d)
	return err
}

// MonthOpen refuses a month that a scenario cannot upload whole: one not over by an
// external collector's clock (its last dates would be future_date), or one closed by
// the collector's clock (GET /v1/claims says so; every record would be late). Set an
// in-process collector's clock first: asking for a month's claim at or after its
// close closes it for good.
func (s *Server) MonthOpen(m collector.Month, offset int) error {
	if err := s.monthOver(m, offset); err != nil {
		return err
	}
	c, err := s.Claims(m, s.PayerToken)
	if err != nil {
		return err
	}
	if c.Status == claim.StatusClosed {
		return fmt.Errorf("fleetsim: month %s closed at %s by the collector's clock: its records would all be late",
			m, time.Unix(c.ClosedAt, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// Claims fetches GET /v1/claims?month=M with token (the payer's: every maker's row).
func (s *Server) Claims(m collector.Month, token string) (*collector.Claims, error) {
	var c collector.Claims
	if _, err := s.get("/v1/claims?month="+m.String(), token, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Device fetches GET /v1/devices/{id} with token, decoded and raw.
func (s *Server) Device(id proof.DeviceID, token string) (*collector.DeviceReport, []byte, error) {
	var d collector.DeviceReport
	raw, err := s.get("/v1/devices/"+id.String(), token, &d)
	if err != nil {
		return nil, raw, err
	}
	return &d, raw, nil
}
