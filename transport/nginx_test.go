package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync/atomic"
	"testing"
	"time"

	amoscollector "amos.example/amosd/collector"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/httpapi"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/internal/benchline"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/nginxtest"
)

// nginxNow is the collector's pinned clock behind nginx: no test here depends on today.
var nginxNow = time.Date(2028, time.March, 1, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))

// plainCollector serves the reference collector (bbolt ledger, collector/httpapi with
// amos-collector's server settings) over plain HTTP on loopback, as nginx's upstream,
// and returns its address, the maker key it trusts and a count of requests it served.
func plainCollector(t testing.TB, now func() time.Time) (addr string, maker *proof.KeySigner) {
	t.Helper()
	maker = collectortest.Key(t, "nginx maker")
	l, err := ledger.OpenBolt(t.TempDir(), ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c, err := amoscollector.New(l, amoscollector.Options{Makers: amoscollector.Registry{"konka": maker.PublicKey()}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Options{Collector: c, MaxInflight: 64, DeviceBatchesPerMinute: 1000, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(h, nil, log.New(io.Discard, "", 0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, srv, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), maker
}

// deviceRecords returns a certified device's genesis and its n-1 following days, ending
// the day before nginxNow.
func deviceRecords(t testing.TB, maker *proof.KeySigner, label string, n int) [][]byte {
	t.Helper()
	return recordsUntil(t, maker, label, n, nginxNow)
}

// recordsUntil is deviceRecords with the day after the last one.
func recordsUntil(t testing.TB, maker *proof.KeySigner, label string, n int, end time.Time) [][]byte {
	t.Helper()
	d := collectortest.NewDevice(t, label)
	d.Cert = collectortest.Certify(t, maker, "konka", d.Key.PublicKey(), label, end.Add(-400*24*time.Hour))
	recs := [][]byte{d.Genesis()}
	for day := proof.DateOf(end.Add(-time.Duration(n-1)*24*time.Hour), 480); len(recs) < n; day = day.Next() {
		recs = append(recs, d.Active(day))
	}
	return recs
}

// behindNginx starts a collector, nginx in front of it with o, and a client of the
// handset's configuration for https://records.amos.example dialled to nginx.
func behindNginx(t testing.TB, o nginxtest.Options, cfg Config, now func() time.Time) (*Client, *proof.KeySigner, *nginxtest.Server) {
	t.Helper()
	nginxtest.Require(t)
	pki := newPKI(t)
	up, maker := plainCollector(t, now)
	o.Upstream, o.CertFile, o.KeyFile = up, pki.CertFile, pki.KeyFile
	ng := nginxtest.Start(t, o)
	cfg.ServerURL, cfg.CAFile = "https://records.amos.example", pki.CAFile
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	c, err := newClient(cfg, options{dialTo: ng.Addr})
	if err != nil {
		t.Fatal(err)
	}
	return c, maker, ng
}

func uploadAll(t testing.TB, c *Client, recs [][]byte) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.Upload(ctx, recs)
	if err != nil || len(res.Acked) != len(recs) {
		t.Fatalf("upload of %d: %v; %d acknowledged, dead %v, kept %v", len(recs), err, len(res.Acked), res.Dead, res.Kept)
	}
	return res
}

// TestBehindNginx puts the real client through Debian's nginx, in the configurations a
// payer may run, in front of the real collector.
func TestBehindNginx(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    nginxtest.Options
		cfg  Config
		// run uploads and returns the requests it made, which nginx must have logged.
		run   func(t *testing.T, c *Client, maker *proof.KeySigner) int
		check func(t *testing.T, reqs []nginxtest.Request) // nginx's access log, if set
	}{
		{name: "recommended", run: func(t *testing.T, c *Client, maker *proof.KeySigner) int {
			return uploadAll(t, c, deviceRecords(t, maker, "plain", 30)).Requests
		}},
		{name: "unbuffered", o: nginxtest.Options{Location: []string{"proxy_request_buffering off;", "proxy_buffering off;"}},
			run: func(t *testing.T, c *Client, maker *proof.KeySigner) int {
				return uploadAll(t, c, deviceRecords(t, maker, "unbuffered", 30)).Requests
			}},
		{name: "maintenance", o: nginxtest.Options{Location: []string{"return 503;", "add_header Retry-After 120 always;"}},
			run: func(t *testing.T, c *Client, maker *proof.KeySigner) int {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := c.Upload(ctx, deviceRecords(t, maker, "maintenance", 5))
				var ra *RetryAfterError
				if !errors.As(err, &ra) || ra.StatusCode != 503 || ra.After != 120*time.Second {
					t.Fatalf("got %v (%#v), want a RetryAfterError of 503 and 120 s", err, ra)
				}
				if res.Settled() != 0 || len(res.Kept) != 0 {
					t.Fatalf("settled %d, kept %d during maintenance, want none", res.Settled(), len(res.Kept))
				}
				return 1
			},
			check: func(t *testing.T, reqs []nginxtest.Request) {
				if reqs[0].Status != 503 {
					t.Errorf("nginx answered %d, want 503", reqs[0].Status)
				}
			}},
		{name: "short keep-alive", o: nginxtest.Options{KeepAlive: "1s", Server: []string{"keepalive_requests 2;"}},
			cfg: Config{BatchRecords: 2},
			run: func(t *testing.T, c *Client, maker *proof.KeySigner) int {
				recs := deviceRecords(t, maker, "keepalive", 24)
				n := 0
				for i := 0; i < len(recs); i += 8 {
					// 4 requests of 2 records each: nginx closes the connection after
					// every second one (Connection: close), the client goes on on a new one.
					res := uploadAll(t, c, recs[i:i+8])
					if res.Requests != 4 {
						t.Fatalf("%d requests, want 4", res.Requests)
					}
					n += res.Requests
					if i == 8 {
						// The one deliberate sleep: longer than nginx's keepalive_timeout
						// of 1 s, so that a connection kept across it would be stale
						// (Upload closes its idle ones: the next starts afresh).
						time.Sleep(1500 * time.Millisecond)
					}
				}
				return n
			},
			check: func(t *testing.T, reqs []nginxtest.Request) {
				second := 0
				for _, r := range reqs {
					if r.OnConn > 2 {
						t.Errorf("request %d on one connection, nginx allows 2", r.OnConn)
					}
					if r.OnConn == 2 {
						second++
					}
				}
				if second != len(reqs)/2 {
					t.Errorf("%d of %d requests went on a kept connection, want every second one", second, len(reqs))
				}
			}},
		{name: "gzip", o: nginxtest.Options{Server: []string{"gzip on;", "gzip_types application/json;", "gzip_min_length 0;"}},
			run: func(t *testing.T, c *Client, maker *proof.KeySigner) int {
				// The client sends no Accept-Encoding, so nginx leaves the answer in
				// identity; one in another coding would fail the upload (client.go).
				return uploadAll(t, c, deviceRecords(t, maker, "gzip", 30)).Requests
			},
			check: func(t *testing.T, reqs []nginxtest.Request) {
				for _, r := range reqs {
					if r.Encoding != "" {
						t.Errorf("nginx answered in %q, want identity", r.Encoding)
					}
				}
			}},
		{name: "http2 offered", o: nginxtest.Options{HTTP2: true},
			run: func(t *testing.T, c *Client, maker *proof.KeySigner) int {
				// No ALPN from the client: nginx speaks HTTP/1.1 to it.
				// Every variant checks that nginx logged HTTP/1.1.
				return uploadAll(t, c, deviceRecords(t, maker, "http2", 30)).Requests
			}},
		{name: "16 KiB body limit", o: nginxtest.Options{MaxBody: "16k"},
			run: func(t *testing.T, c *Client, maker *proof.KeySigner) int {
				var recs [][]byte // 4 devices' 30 records: about 24 KB in one batch
				for d := range 4 {
					recs = append(recs, deviceRecords(t, maker, fmt.Sprintf("413 %d", d), 30)...)
				}
				res := uploadAll(t, c, recs)
				if res.Requests < 3 {
					t.Fatalf("%d requests, want the 413 and at least two halves", res.Requests)
				}
				return res.Requests
			},
			check: func(t *testing.T, reqs []nginxtest.Request) {
				if reqs[0].Status != 413 {
					t.Errorf("nginx answered the whole batch %d, want 413", reqs[0].Status)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, maker, ng := behindNginx(t, tc.o, tc.cfg, func() time.Time { return nginxNow })
			n := tc.run(t, c, maker)
			reqs := ng.WaitRequests(t, n)
			for _, r := range reqs {
				if r.Protocol != "HTTP/1.1" || r.TLS == "-" {
					t.Errorf("nginx logged %+v, want HTTP/1.1 over TLS", r)
				}
			}
			if tc.check != nil {
				tc.check(t, reqs)
			}
			if t.Failed() {
				t.Logf("nginx error log:\n%s", ng.ErrorLog())
			}
		})
	}
}

// TestWireBudgetBehindNginx: 31 daily syncs of one record through nginx with the
// recommended TLS settings stay within the wire budget (README.md's budget table),
// counted by the client (TCP payload both ways).
// nginxMonth runs 31 daily syncs of one record through nginx configured by o, and
// returns the client's wire bytes and how many TLS handshakes nginx logged as resumed.
func nginxMonth(t testing.TB, o nginxtest.Options) (bytes int64, resumed int) {
	// The collector's clock moves a day per sync: each record arrives the day after
	// its own, as a phone's daily sync sends it.
	var day atomic.Int64
	start := nginxNow.Add(-31 * 24 * time.Hour)
	c, maker, ng := behindNginx(t, o, Config{}, func() time.Time { return start.Add(time.Duration(day.Load()) * 24 * time.Hour) })
	recs := recordsUntil(t, maker, fmt.Sprintf("month %v", o.Defaults), 31, start.Add(31*24*time.Hour))
	for i := range recs {
		day.Store(int64(i + 1))
		uploadAll(t, c, recs[i:i+1])
	}
	for _, r := range ng.WaitRequests(t, len(recs)) {
		if r.Reused {
			resumed++
		}
	}
	return c.WireBytes(), resumed
}

func TestWireBudgetBehindNginx(t *testing.T) {
	rec, resumed := nginxMonth(t, nginxtest.Options{})
	def, defResumed := nginxMonth(t, nginxtest.Options{Defaults: true})
	t.Logf("31 daily syncs through nginx: %d bytes with the recommended TLS settings (%d a day, %d of 31 handshakes resumed), %d with nginx's defaults (%d resumed); budget %d",
		rec, rec/31, resumed, def, defResumed, wireBudget)
	if resumed != 30 {
		t.Errorf("%d of 31 handshakes resumed with the recommended settings, want 30", resumed)
	}
	if rec > wireBudget {
		t.Errorf("%d bytes on the wire for 31 daily syncs through nginx, budget %d", rec, wireBudget)
	}
}

// BenchmarkBudgetWireMonthNginx reports the wire bytes of a month of daily syncs through
// nginx with docs/operations.md's configuration, and with nginx's TLS defaults, as lines
// for tools/benchreport.
func BenchmarkBudgetWireMonthNginx(b *testing.B) {
	for range b.N {
		rec, resumed := nginxMonth(b, nginxtest.Options{})
		def, _ := nginxMonth(b, nginxtest.Options{Defaults: true})
		b.ReportMetric(float64(rec), "wire-bytes/month")
		benchline.Print("wire_month_nginx", float64(rec), "bytes", fmt.Sprintf(
			"31 daily syncs of one record through Debian's nginx with docs/operations.md's configuration (session tickets off, a shared session cache, server_tokens off) in front of the real collector, counted by the client; %d of 31 handshakes resumed; %d with nginx's TLS defaults",
			resumed, def))
	}
}
