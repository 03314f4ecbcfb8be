package console

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
)

// The tokens of the rig; the tests check that none is ever echoed.
var tokens = map[string]string{"konka": "konka-secret-7f3a", "tcl": "tcl-secret-91bc", "payer": "payer-secret-c0de"}

// october is the month the rig's devices report; its clock is in the November after,
// before October closes.
var october = collector.Month{Year: 2026, Month: time.October}

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

// rig is a real collector on a memory ledger behind the console, on an httptest
// server: konka has two paid devices, one with too few days and one not registered
// as sold; tcl one paid device and a farm of four identical ones, held.
type rig struct {
	t     *testing.T
	coll  *collector.Collector
	srv   *httptest.Server
	clock *clock
	devs  map[string]*collectortest.Device
	logs  *strings.Builder
}

func newRig(t *testing.T, useTLS bool) *rig {
	t.Helper()
	ck := &clock{t: time.Date(2026, time.November, 5, 4, 0, 0, 0, time.UTC)}
	konka, tcl := collectortest.Key(t, "console maker konka"), collectortest.Key(t, "console maker tcl")
	makers := collector.Registry{"konka": konka.PublicKey(), "tcl": tcl.PublicKey()}
	c, err := collector.New(ledger.NewMem(), collector.Options{Makers: makers, Now: ck.now, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, coll: c, clock: ck, devs: map[string]*collectortest.Device{}, logs: &strings.Builder{}}
	var logMu sync.Mutex
	type plan struct {
		label, maker string
		days         int
		farm, sold   bool
	}
	plans := []plan{
		{"k1", "konka", 20, false, true}, {"k2", "konka", 14, false, true}, {"k3", "konka", 4, false, true}, {"k4", "konka", 15, false, false},
		{"t1", "tcl", 12, false, true}, {"f0", "tcl", 31, true, true}, {"f1", "tcl", 31, true, true}, {"f2", "tcl", 31, true, true}, {"f3", "tcl", 31, true, true},
	}
	var rows []sales.Row
	for i, p := range plans {
		key := map[string]*proof.KeySigner{"konka": konka, "tcl": tcl}[p.maker]
		d := collectortest.NewDevice(t, "console "+p.label)
		d.Cert = collectortest.Certify(t, key, p.maker, d.Key.PublicKey(), p.label, time.Unix(1780000000, 0))
		recs := [][]byte{d.Genesis()}
		for day := 1; day <= p.days; day++ {
			date := proof.NewDate(2026, time.October, day)
			if p.farm {
				recs = append(recs, d.Day(date, 1800, 5))
			} else {
				recs = append(recs, d.Day(date, uint32(700+37*i+day), uint16(2+i%3)))
			}
		}
		rc, err := c.Ingest(recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range rc.Results {
			if res.Status != collector.StatusAccepted {
				t.Fatalf("device %s: %+v", p.label, res)
			}
		}
		if p.sold {
			rows = append(rows, sales.Row{Line: i + 2, Sale: sales.Sale{SerialTag: sha256.Sum256([]byte(p.label)), MakerID: p.maker,
				SoldAt: proof.NewDate(2026, time.September, 1), Channel: "taobao"}})
		}
		r.devs[p.label] = d
	}
	if _, err := c.ImportSales("rig", rows); err != nil {
		t.Fatal(err)
	}
	payer := sha256.Sum256([]byte(tokens["payer"]))
	o := Options{Collector: c, PayerToken: &payer, Now: ck.now, MakerTokens: map[string][32]byte{},
		Logf: func(f string, a ...any) { logMu.Lock(); fmt.Fprintf(r.logs, f+"\n", a...); logMu.Unlock() }}
	for id := range makers {
		o.MakerTokens[id] = sha256.Sum256([]byte(tokens[id]))
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if useTLS {
		pki := collectortest.New(t)
		cert, err := tls.X509KeyPair(pki.CertPEM, pki.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		r.srv = httptest.NewUnstartedServer(h)
		r.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		r.srv.StartTLS()
	} else {
		r.srv = httptest.NewServer(h)
	}
	t.Cleanup(r.srv.Close)
	return r
}

// client is a browser without JavaScript: a cookie jar, redirects not followed.
type client struct {
	r    *rig
	http *http.Client
}

func (r *rig) client() *client {
	jar, _ := cookiejar.New(nil)
	hc := new(http.Client)
	*hc = *r.srv.Client()
	hc.Jar, hc.Timeout = jar, 20*time.Second
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{r: r, http: hc}
}

func (c *client) do(method, path string, form url.Values, header map[string]string) (int, http.Header, string) {
	c.r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.r.srv.URL+path, body)
	if err != nil {
		c.r.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.r.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (c *client) get(path string) (int, string) {
	status, _, body := c.do("GET", path, nil, nil)
	return status, body
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of the first form of a page.
func (c *client) csrf(path string) string {
	c.r.t.Helper()
	status, body := c.get(path)
	m := csrfField.FindStringSubmatch(body)
	if status != 200 || m == nil {
		c.r.t.Fatalf("GET %s: %d, no CSRF field in %s", path, status, body)
	}
	return m[1]
}

// signIn signs in with who's token and returns the session's CSRF token.
func (c *client) signIn(who string) string {
	c.r.t.Helper()
	return c.signInWith(who, tokens[who])
}

// signInWith signs in as who (a maker_id, or "payer") with token and returns the
// session's CSRF token.
func (c *client) signInWith(who, token string) string {
	c.r.t.Helper()
	tok := c.csrf("/console/signin")
	status, hdr, _ := c.do("POST", "/console/signin", url.Values{"csrf": {tok}, "token": {token}}, nil)
	if status != http.StatusSeeOther || hdr.Get("Location") != "/console/" {
		c.r.t.Fatalf("sign-in as %s: %d %v", who, status, hdr)
	}
	page := "/console/claims?month=2026-10"
	if who == "payer" {
		page = "/console/payer?month=2026-10"
	}
	return c.csrf(page)
}
