package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	amoscollector "amos.example/amosd/collector"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/httpapi"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/internal/benchline"
	"amos.example/amosd/proof"
)

// realCollector serves the reference collector (collector.Collector on a durable bbolt
// ledger behind collector/httpapi, with the server settings of amos-collector) over TLS
// on loopback, and returns its URL, the CA file to pin and the maker key it trusts.
func realCollector(b *testing.B, now func() time.Time) (url, caFile string, maker *proof.KeySigner) {
	b.Helper()
	maker = collectortest.Key(b, "bench maker")
	l, err := ledger.OpenBolt(b.TempDir(), ledger.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	c, err := amoscollector.New(l, amoscollector.Options{Makers: amoscollector.Registry{"konka": maker.PublicKey()}, Now: now})
	if err != nil {
		b.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Options{Collector: c, MaxInflight: 64, DeviceBatchesPerMinute: 30, Now: now})
	if err != nil {
		b.Fatal(err)
	}
	pki := collectortest.New(b)
	cert, err := tls.X509KeyPair(pki.CertPEM, pki.KeyPEM)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := httpapi.NewServer(h, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, log.New(io.Discard, "", 0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpapi.Serve(ctx, srv, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	caFile = filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.CAPEM, 0o644); err != nil {
		b.Fatal(err)
	}
	return "https://" + ln.Addr().String(), caFile, maker
}

// yearOfRecords returns a certified device's genesis and its 364 days up to the day
// before now (UTC+08:00): the 365 records a phone offline for a year has queued.
func yearOfRecords(b *testing.B, maker *proof.KeySigner, label string, now time.Time) [][]byte {
	b.Helper()
	d := collectortest.NewDevice(b, label)
	d.Cert = collectortest.Certify(b, maker, "konka", d.Key.PublicKey(), label, now.Add(-400*24*time.Hour))
	recs := [][]byte{d.Genesis()}
	day := proof.DateOf(now.Add(-364*24*time.Hour), 480)
	for ; len(recs) < 365; day = day.Next() {
		recs = append(recs, d.Active(day))
	}
	return recs
}

// BenchmarkBudgetYearDrain: a year of queued records (365) uploaded to the reference
// collector on loopback, over TLS, verified and stored durably (README.md's budget table: at most 2
// requests, under 1 s). Each iteration is a new device and a new client.
func BenchmarkBudgetYearDrain(b *testing.B) {
	// The collector's clock is pinned: a year that ends on 2028-02-29 (a leap day).
	now := time.Date(2028, time.March, 1, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))
	url, caFile, maker := realCollector(b, func() time.Time { return now })
	for i := range b.N {
		recs := yearOfRecords(b, maker, fmt.Sprintf("year drain %d", i), now)
		c, err := New(Config{ServerURL: url, CAFile: caFile})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		res, err := c.Upload(context.Background(), recs)
		elapsed := time.Since(start)
		if err != nil || len(res.Acked) != len(recs) {
			b.Fatalf("upload: %v; %d of %d acknowledged, dead %v", err, len(res.Acked), len(recs), res.Dead)
		}
		b.ReportMetric(float64(res.Requests), "requests")
		note := fmt.Sprintf("365 records (a genesis and 364 days) to collector/httpapi with a bbolt ledger, TLS on loopback, %d wire bytes, all accepted", res.WireBytes)
		benchline.Print("year_drain_requests", float64(res.Requests), "requests", note)
		benchline.Print("year_drain_seconds", elapsed.Seconds(), "s", note)
	}
}
