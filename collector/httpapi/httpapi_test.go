package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/attest"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

const goldenDir = "../../testdata/proof"

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key(t testing.TB, label string) *proof.KeySigner { return collectortest.Key(t, "httpapi "+label) }

// newDevice returns a handset, certified by maker when it is not nil.
func newDevice(t testing.TB, label string, maker *proof.KeySigner, makerID string) *collectortest.Device {
	d := collectortest.NewDevice(t, "httpapi "+label)
	if maker != nil {
		d.Cert = collectortest.Certify(t, maker, makerID, d.Key.PublicKey(), label, time.Unix(1780000000, 0))
	}
	return d
}

func batch(t testing.TB, records ...[]byte) []byte { return collectortest.Batch(t, records...) }

// rig is a collector behind the Handler on a real TLS server with a test CA.
type rig struct {
	t      *testing.T
	coll   *collector.Collector
	srv    *httptest.Server
	client *http.Client
	clock  *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var tokens = map[string]string{"konka": "konka-secret", "tcl": "tcl-secret", "payer": "payer-secret"}

func newRig(t *testing.T, l ledger.Ledger, makers collector.Registry, mutate func(*Options)) *rig {
	t.Helper()
	if l == nil {
		l = ledger.NewMem()
	}
	ck := &clock{t: time.Date(2026, time.November, 5, 4, 0, 0, 0, time.UTC)}
	c, err := collector.New(l, collector.Options{Makers: makers, Now: ck.now})
	if err != nil {
		t.Fatal(err)
	}
	payer := sha256.Sum256([]byte(tokens["payer"]))
	o := Options{Collector: c, PayerToken: &payer, MaxInflight: 4, DeviceBatchesPerMinute: 30, Now: ck.now,
		MakerTokens: map[string][32]byte{}, Logf: t.Logf}
	for id := range makers {
		o.MakerTokens[id] = sha256.Sum256([]byte(tokens[id]))
	}
	if mutate != nil {
		mutate(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	pki := collectortest.New(t)
	cert, err := tls.X509KeyPair(pki.CertPEM, pki.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}
	t.Cleanup(client.CloseIdleConnections)
	return &rig{t: t, coll: c, srv: srv, client: client, clock: ck}
}

// post sends a batch and returns the status, the headers and the body.
func (r *rig) post(body []byte, contentType string) (int, http.Header, []byte) {
	r.t.Helper()
	req, err := http.NewRequest("POST", r.srv.URL+"/v1/records", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return r.do(req)
}

func (r *rig) do(req *http.Request) (int, http.Header, []byte) {
	r.t.Helper()
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (r *rig) get(path, token string) (int, http.Header, []byte) {
	r.t.Helper()
	req, err := http.NewRequest("GET", r.srv.URL+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return r.do(req)
}

// receipt posts a batch that must be answered 200 and returns the verdicts.
func (r *rig) receipt(records ...[]byte) []string {
	r.t.Helper()
	status, _, body := r.post(batch(r.t, records...), proof.BatchContentType)
	if status != http.StatusOK {
		r.t.Fatalf("status %d: %s", status, body)
	}
	var rc collector.Receipt
	if err := json.Unmarshal(body, &rc); err != nil {
		r.t.Fatal(err)
	}
	if len(rc.Results) != len(records) {
		r.t.Fatalf("%d results for %d records", len(rc.Results), len(records))
	}
	out := make([]string, len(rc.Results))
	for i, res := range rc.Results {
		out[i] = strings.TrimSpace(string(res.Status) + " " + string(res.Reason))
	}
	return out
}

func goldenRegistry(t testing.TB) collector.Registry {
	maker, err := proof.NewKeySigner(readGolden(t, "maker.seed"))
	if err != nil {
		t.Fatal(err)
	}
	return collector.Registry{"amos-golden": maker.PublicKey()}
}

func TestRecordsGolden(t *testing.T) {
	r := newRig(t, nil, goldenRegistry(t), nil)
	status, hdr, body := r.post(readGolden(t, "chain31.batch"), proof.BatchContentType)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %s: %s", status, hdr.Get("Content-Type"), body)
	}
	// The exact JSON of docs/protocol.md: reason omitted when empty, server_time first.
	want := `{"server_time":` + fmt.Sprint(r.clock.now().Unix()) + `,"results":[{"epoch":1,"seq":1,"status":"accepted"},{"epoch":1,"seq":2,"status":"accepted"}`
	if !strings.HasPrefix(string(body), want) {
		t.Errorf("body %s\nwant prefix %s", body, want)
	}
	// The replay: all duplicates.
	status, _, body = r.post(readGolden(t, "chain31.batch"), proof.BatchContentType)
	if status != http.StatusOK || strings.Count(string(body), `"status":"duplicate"`) != 32 {
		t.Errorf("replay: %d %s", status, body)
	}
	// A rejected record carries its reason.
	status, _, body = r.post(batch(t, readGolden(t, "invalid/record-bad-signature.bin")), proof.BatchContentType+"; charset=binary")
	if status != http.StatusOK || !strings.Contains(string(body), `{"epoch":1,"seq":2,"status":"rejected","reason":"bad_signature"}`) {
		t.Errorf("bad signature: %d %s", status, body)
	}
}

func TestRecordsBatchErrors(t *testing.T) {
	r := newRig(t, nil, goldenRegistry(t), nil)
	chain := readGolden(t, "chain31.batch")
	tests := []struct {
		name   string
		body   []byte
		ctype  string
		status int
	}{
		{"no content type", chain, "", http.StatusUnsupportedMediaType},
		{"json", chain, "application/json", http.StatusUnsupportedMediaType},
		{"empty", nil, proof.BatchContentType, http.StatusBadRequest},
		{"64 KiB + 1", make([]byte, proof.MaxBatchBytes+1), proof.BatchContentType, http.StatusRequestEntityTooLarge},
	}
	// The batch vectors of testdata/proof/invalid, with the status expected.json gives.
	var expected struct {
		Vectors []struct {
			File       string `json:"file"`
			RefusedBy  string `json:"refused_by"`
			HTTPStatus int    `json:"http_status"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(readGolden(t, "invalid/expected.json"), &expected); err != nil {
		t.Fatal(err)
	}
	vectors := 0
	for _, v := range expected.Vectors {
		if v.RefusedBy == "batch" {
			tests = append(tests, struct {
				name   string
				body   []byte
				ctype  string
				status int
			}{v.File, readGolden(t, "invalid/"+v.File), proof.BatchContentType, v.HTTPStatus})
			vectors++
		}
	}
	if vectors < 6 {
		t.Errorf("only %d batch vectors in expected.json", vectors)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := r.post(tc.body, tc.ctype)
			if status != tc.status || !strings.Contains(string(body), `"error"`) {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
		})
	}
	// A body without Content-Length beyond the limit is cut off while it is read.
	t.Run("chunked too large", func(t *testing.T) {
		req, _ := http.NewRequest("POST", r.srv.URL+"/v1/records", io.MultiReader(bytes.NewReader(chain), bytes.NewReader(make([]byte, 1<<20))))
		req.Header.Set("Content-Type", proof.BatchContentType)
		req.ContentLength = -1
		if status, _, body := r.do(req); status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d: %s", status, body)
		}
	})
	t.Run("GET records", func(t *testing.T) {
		if status, _, _ := r.get("/v1/records", ""); status != http.StatusMethodNotAllowed {
			t.Errorf("status %d", status)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		if status, _, _ := r.get("/v2/records", ""); status != http.StatusNotFound {
			t.Errorf("status %d", status)
		}
	})
}

// blockingLedger holds every Update until released, so that a test can keep batches
// in flight without sleeping.
type blockingLedger struct {
	*ledger.Mem
	entered chan struct{}
	release chan struct{}
}

func (b *blockingLedger) Update(fn func(ledger.Tx) error) error {
	b.entered <- struct{}{}
	<-b.release
	return b.Mem.Update(fn)
}

func TestInflightLimit(t *testing.T) {
	bl := &blockingLedger{Mem: ledger.NewMem(), entered: make(chan struct{}, 8), release: make(chan struct{})}
	r := newRig(t, bl, nil, func(o *Options) { o.MaxInflight = 1 })
	first := newDevice(t, "inflight", nil, "")
	g := first.Genesis()
	var held []string
	var wg sync.WaitGroup
	wg.Go(func() { held = r.receipt(g) })
	<-bl.entered // the only slot is taken: its batch is inside the ledger
	d := newDevice(t, "second", nil, "")
	status, hdr, body := r.post(batch(t, d.Genesis()), proof.BatchContentType)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "5" {
		t.Errorf("second batch: %d Retry-After %q: %s", status, hdr.Get("Retry-After"), body)
	}
	// Reads are not limited by the slots.
	if status, _, _ := r.get("/healthz", ""); status != http.StatusOK {
		t.Errorf("healthz while busy: %d", status)
	}
	close(bl.release)
	wg.Wait()
	if len(held) != 1 || held[0] != "accepted" {
		t.Errorf("held batch: %v", held)
	}
	if got := r.receipt(d.Genesis()); got[0] != "accepted" {
		t.Errorf("after release: %v", got)
	}
}

func TestDeviceRateLimit(t *testing.T) {
	r := newRig(t, nil, nil, func(o *Options) { o.DeviceBatchesPerMinute = 2 })
	d := newDevice(t, "chatty", nil, "")
	g := d.Genesis()
	day1 := d.Active(proof.NewDate(2026, time.October, 1))
	r.receipt(g)
	r.receipt(g)
	status, hdr, _ := r.post(batch(t, day1), proof.BatchContentType)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") != "30" {
		t.Fatalf("third batch in a minute: %d Retry-After %q", status, hdr.Get("Retry-After"))
	}
	// Another device is not affected.
	other := newDevice(t, "quiet", nil, "")
	if got := r.receipt(other.Genesis()); got[0] != "accepted" {
		t.Errorf("other device: %v", got)
	}
	r.clock.add(30 * time.Second)
	if got := r.receipt(day1); got[0] != "accepted" {
		t.Errorf("after 30 s: %v", got)
	}
	// Batches whose first record is not the device's own do not spend its tokens.
	r.clock.add(time.Minute)
	forged := append([]byte(nil), d.Active(proof.NewDate(2026, time.October, 2))...)
	forged[len(forged)-1] ^= 1
	for range 5 {
		if got := r.receipt(forged); got[0] != "rejected bad_signature" {
			t.Fatalf("forged: %v", got)
		}
	}
	if got := r.receipt(g); got[0] != "duplicate" {
		t.Errorf("after forged batches: %v", got)
	}
}

func TestRateLimiterSweep(t *testing.T) {
	ck := &clock{t: time.Unix(1790000000, 0)}
	l := newRateLimiter(3, ck.now)
	for i := range 100 {
		if ok, _ := l.take(proof.DeviceID{byte(i)}); !ok {
			t.Fatal("refused a first batch")
		}
	}
	ck.add(2 * time.Minute)
	l.take(proof.DeviceID{0xff})
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets kept after every one refilled", len(l.buckets))
	}
}

func TestClaimsAndDevicesAccess(t *testing.T) {
	konka, tcl := key(t, "maker konka"), key(t, "maker tcl")
	makers := collector.Registry{"konka": konka.PublicKey(), "tcl": tcl.PublicKey()}
	r := newRig(t, nil, makers, nil)
	kd := newDevice(t, "k", konka, "konka")
	td := newDevice(t, "t", tcl, "tcl")
	for i, d := range []*collectortest.Device{kd, td} {
		recs := [][]byte{d.Genesis()}
		for day := 1; day <= 12; day++ {
			recs = append(recs, d.Day(proof.NewDate(2026, time.October, day), uint32(900+100*i), uint16(3+i))) // not clones of each other
		}
		r.receipt(recs...)
	}
	// The payer registers both handsets as sold; a maker may not.
	sold := fmt.Sprintf("serial_tag,maker_id,sold_at,channel\n%x,konka,2026-09-30,taobao\n%x,tcl,2026-10-01,carrier\n",
		sha256.Sum256([]byte("k")), sha256.Sum256([]byte("t")))
	for _, tc := range []struct {
		name, token, contentType, body string
		status                         int
		want                           string
	}{
		{"maker", "konka-secret", "text/csv", sold, 403, "only the payer"},
		{"no token", "", "text/csv", sold, 401, "bearer token"},
		{"wrong type", "payer-secret", "text/plain", sold, 415, "text/csv or application/json"},
		{"bad row", "payer-secret", "text/csv", sold + "00,konka,2026-10-01,taobao\n", 400, "line 4"},
		{"unknown maker", "payer-secret", "application/json", `[{"serial_tag":"` + strings.Repeat("ab", 32) + `","maker_id":"ghost","sold_at":"2026-10-01","channel":"x"}]`, 400, "not a registered maker"},
		{"payer", "payer-secret", "text/csv", sold, 200, `{"added":2,"unchanged":0}`},
		{"again", "payer-secret", "text/csv", sold, 200, `{"added":0,"unchanged":2}`},
	} {
		req, _ := http.NewRequest("POST", r.srv.URL+"/v1/registry", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.contentType)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if status, _, body := r.do(req); status != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("registry %s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.want)
		}
	}
	decide := func(token, id, body string) (int, []byte) {
		req, _ := http.NewRequest("POST", r.srv.URL+"/v1/held/"+id, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		status, _, b := r.do(req)
		return status, b
	}
	if status, body := decide("konka-secret", kd.ID().String(), `{"month":"2026-10","decision":"release","by":"me","why":"mine"}`); status != 403 {
		t.Errorf("a maker's decision: %d %s", status, body)
	}
	if status, body := decide("payer-secret", kd.ID().String(), `{"month":"2026-10","decision":"release","by":"li","why":"x"}`); status != 409 || !strings.Contains(string(body), "not held") {
		t.Errorf("a decision on a paid device: %d %s", status, body)
	}
	if status, body := decide("payer-secret", kd.ID().String(), `{"month":"2026-10","decision":"maybe","by":"li","why":"x"}`); status != 400 {
		t.Errorf("a decision that is neither: %d %s", status, body)
	}
	if status, body := decide("payer-secret", kd.ID().String(), `{"month":"2026-09","decision":"deny","by":"li","why":"x"}`); status != 409 || !strings.Contains(string(body), "closed") {
		t.Errorf("a decision on a closed month: %d %s", status, body)
	}
	tests := []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"no token", "/v1/claims?month=2026-10", "", 401, `"error"`},
		{"wrong token", "/v1/claims?month=2026-10", "guess", 401, `"error"`},
		{"konka", "/v1/claims?month=2026-10", "konka-secret", 200, `"status":"provisional","closes_at":1794326400,"computed_at":1793851200,"rows":[{"maker_id":"konka","eligible_devices":1,"amount_cny":1,"paid":1,"held":0,`},
		{"konka only", "/v1/claims?month=2026-10", "konka-secret", 200, `"unregistered":0,"attested":0,"held_reasons":{},"refused_reasons":{},"distribution":{"maker_id":"konka","devices":1,"active_days_distance":0,"unlocks_distance":1,"threshold":0.25,"flagged":false}}]}`},
		{"tcl", "/v1/claims?month=2026-10", "tcl-secret", 200, `"rows":[{"maker_id":"tcl","eligible_devices":1,"amount_cny":1,`},
		{"payer", "/v1/claims?month=2026-10", "payer-secret", 200, `"flagged":false}},{"maker_id":"tcl","eligible_devices":1`},
		{"payer csv", "/v1/claims?month=2026-10&format=csv", "payer-secret", 200, "maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at\nkonka,1,1,1,0,0,0,0,provisional,\ntcl,1,1,1,0,0,0,0,provisional,\n"},
		{"konka csv", "/v1/claims?month=2026-10&format=csv", "konka-secret", 200, "maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at\nkonka,1,1,1,0,0,0,0,provisional,\n"},
		{"other month", "/v1/claims?month=2026-09", "konka-secret", 200, `{"month":"2026-09","status":"closed","closes_at":1791648000,"closed_at":1791648000,`},
		{"devices konka", "/v1/claims/devices?month=2026-10", "konka-secret", 200, `{"month":"2026-10","status":"provisional","devices":[{"device_id":"` + kd.ID().String() + `","maker_id":"konka","serial_tag":"`},
		{"devices payer paid", "/v1/claims/devices?month=2026-10&outcome=paid", "payer-secret", 200, `"active_days":12,"outcome":"paid"},{"device_id":"` + td.ID().String()},
		{"devices held", "/v1/claims/devices?month=2026-10&outcome=held", "tcl-secret", 200, `"devices":[]}`},
		{"devices csv", "/v1/claims/devices?month=2026-10&format=csv", "tcl-secret", 200, "month,device_id,maker_id,serial_tag,active_days,outcome,reasons,signals,decision,decided_by,decided_at\n2026-10," + td.ID().String() + ",tcl,"},
		{"devices bad outcome", "/v1/claims/devices?month=2026-10&outcome=lost", "tcl-secret", 400, "want paid, held"},
		{"decisions maker", "/v1/decisions?month=2026-10", "tcl-secret", 403, "only the payer"},
		{"decisions payer", "/v1/decisions?month=2026-10", "payer-secret", 200, `{"month":"2026-10","decisions":[]}`},
		{"no month", "/v1/claims", "konka-secret", 400, "malformed month"},
		{"bad month", "/v1/claims?month=2026-13", "konka-secret", 400, "malformed month"},
		{"bad format", "/v1/claims?month=2026-10&format=xml", "konka-secret", 400, "want json or csv"},
		{"own device", "/v1/devices/" + kd.ID().String(), "konka-secret", 200, `"maker_id":"konka"`},
		{"other maker's device", "/v1/devices/" + td.ID().String(), "konka-secret", 404, "no device"},
		{"payer sees any", "/v1/devices/" + td.ID().String(), "payer-secret", 200, `"active_days":12`},
		{"unknown device", "/v1/devices/" + proof.DeviceID{7}.String(), "payer-secret", 404, "no device"},
		{"bad device id", "/v1/devices/xyz", "payer-secret", 400, "64 hex digits"},
		{"device without token", "/v1/devices/" + kd.ID().String(), "", 401, `"error"`},
		{"healthz", "/healthz", "", 200, "ok\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := r.get(tc.path, tc.token)
			if status != tc.status || !strings.Contains(string(body), tc.body) {
				t.Errorf("status %d, want %d; body %s, want it to contain %s", status, tc.status, body, tc.body)
			}
			if status == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// The scheme is case-insensitive; a token in another header field is not a token.
	req, _ := http.NewRequest("GET", r.srv.URL+"/v1/claims?month=2026-10", nil)
	req.Header.Set("Authorization", "bearer konka-secret")
	if status, _, _ := r.do(req); status != 200 {
		t.Errorf("lowercase bearer: %d", status)
	}
	req.Header.Set("Authorization", "Basic konka-secret")
	if status, _, _ := r.do(req); status != 401 {
		t.Errorf("basic: %d", status)
	}
}

func TestTLSMinimumVersion(t *testing.T) {
	r := newRig(t, nil, nil, nil)
	tr := r.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.MinVersion = tls.VersionTLS10
	tr.TLSClientConfig.MaxVersion = tls.VersionTLS11
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if resp, err := c.Get(r.srv.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client got an answer")
	}
	// And a client that does not trust the test CA is refused.
	c = &http.Client{Timeout: 30 * time.Second}
	if resp, err := c.Get(r.srv.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA got an answer")
	}
}

func TestLoadTLS(t *testing.T) {
	pki := collectortest.New(t)
	c, err := LoadTLS(pki.CertFile, pki.KeyFile)
	if err != nil || c.MinVersion != tls.VersionTLS12 || len(c.Certificates) != 1 {
		t.Errorf("%+v %v", c, err)
	}
	if _, err := LoadTLS(pki.KeyFile, pki.CertFile); err == nil || !strings.Contains(err.Error(), pki.KeyFile) {
		t.Errorf("swapped files: %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	c, _ := collector.New(ledger.NewMem(), collector.Options{})
	for _, o := range []Options{{}, {Collector: c, DeviceBatchesPerMinute: 1}, {Collector: c, MaxInflight: 1},
		{Collector: c, MaxInflight: 1, DeviceBatchesPerMinute: 1, AddressRequestsPerSecond: -1},
		{Collector: c, MaxInflight: 1, DeviceBatchesPerMinute: 1, AddressRequestsPerSecond: 1, MaxAddresses: 1},
		{Collector: c, MaxInflight: 1, DeviceBatchesPerMinute: 1, AddressRequestsPerSecond: 1, AddressBurst: 1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// FuzzRecordsHandler throws arbitrary bodies at POST /v1/records: never a panic, and
// either a batch-level refusal when the framing is bad, or 200 with exactly one result
// per record.
func FuzzRecordsHandler(f *testing.F) {
	f.Add(readGolden(f, "chain31.batch"))
	f.Add(readGolden(f, "invalid/batch-zero-length.bin"))
	f.Add(batch(f, readGolden(f, "genesis.bin"), readGolden(f, "activity-20261001.bin")))
	f.Add([]byte{0, 3, 'A', 'M', 'R'})
	c, err := collector.New(ledger.NewMem(), collector.Options{Makers: goldenRegistry(f),
		Now: func() time.Time { return time.Date(2026, time.November, 5, 4, 0, 0, 0, time.UTC) }})
	if err != nil {
		f.Fatal(err)
	}
	h, err := New(Options{Collector: c, MaxInflight: 1, DeviceBatchesPerMinute: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/records", bytes.NewReader(body))
		req.Header.Set("Content-Type", proof.BatchContentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		records, derr := proof.DecodeBatch(body)
		if derr != nil {
			if w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("bad batch (%v): status %d", derr, w.Code)
			}
			return
		}
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var rc collector.Receipt
		if err := json.Unmarshal(w.Body.Bytes(), &rc); err != nil {
			t.Fatal(err)
		}
		if len(rc.Results) != len(records) {
			t.Fatalf("%d results for %d records", len(rc.Results), len(records))
		}
	})
}

// FuzzAuthorization throws arbitrary Authorization headers at GET /v1/claims: never a
// panic, and only "Bearer TOKEN" (any case, surrounding spaces) of a configured token
// gets an answer.
func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer konka-secret", "bearer payer-secret", "Bearer ", "Basic konka-secret", "", "Bearer  tcl-secret ", "konka-secret"} {
		f.Add(s)
	}
	c, err := collector.New(ledger.NewMem(), collector.Options{Makers: collector.Registry{"konka": proof.Ed25519Key([32]byte{1}), "tcl": proof.Ed25519Key([32]byte{2})}})
	if err != nil {
		f.Fatal(err)
	}
	payer := sha256.Sum256([]byte(tokens["payer"]))
	h, err := New(Options{Collector: c, MaxInflight: 1, DeviceBatchesPerMinute: 1, PayerToken: &payer,
		MakerTokens: map[string][32]byte{"konka": sha256.Sum256([]byte(tokens["konka"])), "tcl": sha256.Sum256([]byte(tokens["tcl"]))}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, auth string) {
		req := httptest.NewRequest("GET", "/v1/claims?month=2026-10", nil)
		req.Header["Authorization"] = []string{auth}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		scheme, token, _ := strings.Cut(auth, " ")
		token = strings.TrimSpace(token)
		known := token == tokens["konka"] || token == tokens["tcl"] || token == tokens["payer"]
		want := http.StatusUnauthorized
		if strings.EqualFold(scheme, "Bearer") && known {
			want = http.StatusOK
		}
		if w.Code != want {
			t.Fatalf("Authorization %q: status %d, want %d", auth, w.Code, want)
		}
	})
}

// TestMetrics: GET /metrics exports the attestation status list's age and staleness:
// −1 before the first load, the age after it, stale once older than its MaxAge; and
// neither without a list.
func TestMetrics(t *testing.T) {
	plain := newRig(t, nil, nil, nil)
	for name := range plain.scrape() {
		if strings.HasPrefix(name, "amos_attestation_") {
			t.Errorf("without a list: %s", name)
		}
	}
	file := filepath.Join(t.TempDir(), "status.json")
	if err := os.WriteFile(file, []byte(`{"entries":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var src *attest.Source
	r := newRig(t, nil, nil, func(o *Options) {
		var err error
		src, err = attest.NewSource(file, attest.SourceOptions{Now: o.Now, MaxAge: 48 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		o.Status = src
	})
	for _, step := range []struct {
		load       bool
		advance    time.Duration
		age, stale float64
	}{
		{false, 0, -1, 1},
		{true, 90 * time.Minute, 5400, 0},
		{false, 47 * time.Hour, 174600, 1},
	} {
		if step.load {
			if err := src.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		r.clock.add(step.advance)
		checkMetrics(t, r.scrape(), []metricWant{
			{"amos_attestation_status_age_seconds", nil, step.age},
			{"amos_attestation_status_stale", nil, step.stale},
		})
	}
}

// TestSlowBodiesHoldNoSlot: clients that send a POST /v1/records header and then drip
// (here: stall) the body hold connections, never the in-flight slots; a real upload
// made meanwhile is answered 200 and accepted (before, every slot was taken before the
// body was read and real uploads got 503).
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	r := newRig(t, nil, nil, func(o *Options) { o.MaxInflight = 2 })
	cfg := r.client.Transport.(*http.Transport).TLSClientConfig
	for i := range 8 {
		c, err := tls.Dial("tcp", r.srv.Listener.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n%c", proof.BatchContentType, byte(i))
	}
	d := newDevice(t, "patient", nil, "")
	if got := r.receipt(d.Genesis()); len(got) != 1 || got[0] != "accepted" {
		t.Errorf("an upload beside 8 stalled bodies: %v", got)
	}
}

// TestLimitListener: at most max connections are accepted at once; the next is
// accepted once one closes; Close ends a waiting Accept.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 2)
	accepted := make(chan net.Conn, 4)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two are open")
	case <-time.After(200 * time.Millisecond): // nothing to await: showing an Accept that does not return
	}
	first.Close()
	select {
	case third := <-accepted:
		third.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	second.Close()
	ln.Close()
	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}
