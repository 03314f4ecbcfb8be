package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// scrape gets /metrics from the rig's server and parses it as Prometheus parses it.
func (r *rig) scrape() map[string]*dto.MetricFamily {
	r.t.Helper()
	status, hdr, body := r.get("/metrics", "")
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		r.t.Fatalf("GET /metrics: %d %s: %s", status, hdr.Get("Content-Type"), body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		r.t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// sample returns the value of the series of name with exactly labels (name=value
// pairs): a counter's or gauge's value, a histogram's sample count. ok is false when
// there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		want := map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			want[k] = v
		}
		for k, v := range got {
			if want[k] != v {
				continue next
			}
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		case dto.MetricType_UNTYPED:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// metricWant is one series a scrape must hold with exactly this value.
type metricWant struct {
	name   string
	labels []string
	value  float64
}

func checkMetrics(t *testing.T, fams map[string]*dto.MetricFamily, wants []metricWant) {
	t.Helper()
	for _, w := range wants {
		got, ok := sample(fams, w.name, w.labels...)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
}

// TestMetricsCountUploads: real batches over a real TLS connection, and /metrics
// counts exactly what the receipts said, per verdict and reason; one upload outcome per
// request; one batch latency sample per batch that reached the ledger; no batch in
// flight afterwards; one claims latency sample per claim computed (none for a refused
// token); every fixed label value present from the start; the Go and process
// collectors present; no device_id or address in any label.
func TestMetricsCountUploads(t *testing.T) {
	r := newRig(t, nil, nil, nil)
	fresh := r.scrape()
	checkMetrics(t, fresh, []metricWant{
		{"amos_collector_records_total", []string{"verdict=rejected", "reason=chain_fork"}, 0},
		{"amos_collector_records_total", []string{"verdict=accepted", "reason="}, 0},
		{"amos_collector_uploads_total", []string{"outcome=busy"}, 0},
		{"amos_collector_ledger_errors_total", []string{"op=ingest"}, 0},
		{"amos_collector_batch_duration_seconds", nil, 0},
		{"amos_collector_claims_duration_seconds", nil, 0},
		{"amos_collector_inflight_batches", nil, 0},
	})
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fresh[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if _, ok := fresh["amos_collector_addresses"]; ok {
		t.Error("amos_collector_addresses without a per-address limit")
	}

	a, b, c := newDevice(t, "metrics a", nil, ""), newDevice(t, "metrics b", nil, ""), newDevice(t, "metrics c", nil, "")
	gA := a.Genesis()
	forge := func(rec []byte) []byte { rec[len(rec)-1] ^= 1; return rec }
	c.Genesis() // never sent: c's days are of an unknown device
	// Records are minted in the order of the table (Go evaluates the calls left to
	// right), so each device's seq follows.
	tests := []struct {
		name    string
		records [][]byte
		want    []string
	}{
		{"a's chain", [][]byte{gA, a.Active(proof.NewDate(2026, time.October, 1)), a.Active(proof.NewDate(2026, time.October, 2)), a.Active(proof.NewDate(2026, time.October, 3))},
			[]string{"accepted", "accepted", "accepted", "accepted"}},
		{"replay and forgery", [][]byte{gA, forge(a.Active(proof.NewDate(2026, time.October, 4)))}, []string{"duplicate", "rejected bad_signature"}},
		{"future date", [][]byte{b.Genesis(), b.Active(proof.NewDate(2026, time.December, 1))}, []string{"accepted", "rejected future_date"}},
		{"unknown device", [][]byte{c.Active(proof.NewDate(2026, time.October, 1))}, []string{"rejected unknown_device"}},
		{"gap", [][]byte{a.Active(proof.NewDate(2026, time.October, 10))}, []string{"retry chain_gap"}}, // seq 6 after head 4
	}
	for _, tc := range tests {
		if got := r.receipt(tc.records...); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Fatalf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if status, _, _ := r.post(batch(t, gA), "application/json"); status != http.StatusUnsupportedMediaType {
		t.Errorf("wrong type: %d", status)
	}
	if status, _, _ := r.post([]byte{0, 0}, proof.BatchContentType); status != http.StatusBadRequest {
		t.Errorf("zero length: %d", status)
	}
	for _, path := range []string{"/v1/claims?month=2026-10", "/v1/claims/devices?month=2026-10", "/v1/claims?month=2026-11"} {
		if status, _, body := r.get(path, tokens["payer"]); status != http.StatusOK {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
	if status, _, _ := r.get("/v1/claims?month=2026-10", "guess"); status != http.StatusUnauthorized {
		t.Errorf("unknown token: %d", status)
	}

	fams := r.scrape()
	checkMetrics(t, fams, []metricWant{
		{"amos_collector_records_total", []string{"verdict=accepted", "reason="}, 5},
		{"amos_collector_records_total", []string{"verdict=duplicate", "reason="}, 1},
		{"amos_collector_records_total", []string{"verdict=rejected", "reason=bad_signature"}, 1},
		{"amos_collector_records_total", []string{"verdict=rejected", "reason=future_date"}, 1},
		{"amos_collector_records_total", []string{"verdict=rejected", "reason=unknown_device"}, 1},
		{"amos_collector_records_total", []string{"verdict=retry", "reason=chain_gap"}, 1},
		{"amos_collector_records_total", []string{"verdict=rejected", "reason=chain_fork"}, 0},
		{"amos_collector_uploads_total", []string{"outcome=stored"}, 5},
		{"amos_collector_uploads_total", []string{"outcome=unsupported_media_type"}, 1},
		{"amos_collector_uploads_total", []string{"outcome=bad_batch"}, 1},
		{"amos_collector_uploads_total", []string{"outcome=ledger_error"}, 0},
		{"amos_collector_batch_duration_seconds", nil, 5},
		{"amos_collector_inflight_batches", nil, 0},
		{"amos_collector_claims_duration_seconds", nil, 3},
		{"amos_collector_ledger_errors_total", []string{"op=claims"}, 0},
	})
	if n := len(fams["amos_collector_records_total"].GetMetric()); n != len(recordVerdicts) {
		t.Errorf("%d records_total series, want the %d fixed ones", n, len(recordVerdicts))
	}
	// Bounded labels: nothing of a device or a client ever becomes a label value.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v := lp.GetValue(); len(v) > 32 || strings.Contains(v, "127.0.0.1") {
					t.Errorf("%s has label %s=%q", name, lp.GetName(), v)
				}
			}
		}
	}
}

// TestMetricsInflight: while a batch is inside the ledger the in-flight gauge is 1,
// and back to 0 once it is answered.
func TestMetricsInflight(t *testing.T) {
	bl := &blockingLedger{Mem: ledger.NewMem(), entered: make(chan struct{}, 8), release: make(chan struct{})}
	r := newRig(t, bl, nil, nil)
	d := newDevice(t, "metrics inflight", nil, "")
	var wg sync.WaitGroup
	var got []string
	wg.Go(func() { got = r.receipt(d.Genesis()) })
	<-bl.entered
	checkMetrics(t, r.scrape(), []metricWant{{"amos_collector_inflight_batches", nil, 1}, {"amos_collector_batch_duration_seconds", nil, 0}})
	close(bl.release)
	wg.Wait()
	if len(got) != 1 || got[0] != "accepted" {
		t.Errorf("held batch: %v", got)
	}
	checkMetrics(t, r.scrape(), []metricWant{{"amos_collector_inflight_batches", nil, 0}, {"amos_collector_batch_duration_seconds", nil, 1},
		{"amos_collector_uploads_total", []string{"outcome=stored"}, 1}})
}

// failingLedger fails every transaction while fail is set.
type failingLedger struct {
	*ledger.Mem
	fail atomic.Bool
}

var errDiskFull = errors.New("disk full")

func (f *failingLedger) View(fn func(ledger.Tx) error) error {
	if f.fail.Load() {
		return errDiskFull
	}
	return f.Mem.View(fn)
}

func (f *failingLedger) Update(fn func(ledger.Tx) error) error {
	if f.fail.Load() {
		return errDiskFull
	}
	return f.Mem.Update(fn)
}

// TestMetricsLedgerErrors: each request the ledger fails is counted once under its
// operation; a failed batch is timed, counts no record, and leaves no batch in flight.
func TestMetricsLedgerErrors(t *testing.T) {
	fl := &failingLedger{Mem: ledger.NewMem()}
	r := newRig(t, fl, nil, nil)
	fl.fail.Store(true)
	d := newDevice(t, "metrics ledger", nil, "")
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"POST", "/v1/records", http.StatusInternalServerError},
		{"GET", "/v1/claims?month=2026-10", http.StatusInternalServerError},
		{"GET", "/v1/claims/devices?month=2026-10", http.StatusInternalServerError},
		{"GET", "/v1/devices/" + d.ID().String(), http.StatusInternalServerError},
		{"GET", "/v1/decisions?month=2026-10", http.StatusInternalServerError},
		{"GET", "/healthz", http.StatusServiceUnavailable},
	} {
		var status int
		var body []byte
		if tc.method == "POST" {
			status, _, body = r.post(batch(t, d.Genesis()), proof.BatchContentType)
		} else {
			status, _, body = r.get(tc.path, tokens["payer"])
		}
		if status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, body, tc.status)
		}
	}
	fl.fail.Store(false)
	checkMetrics(t, r.scrape(), []metricWant{
		{"amos_collector_ledger_errors_total", []string{"op=ingest"}, 1},
		{"amos_collector_ledger_errors_total", []string{"op=claims"}, 2},
		{"amos_collector_ledger_errors_total", []string{"op=device"}, 1},
		{"amos_collector_ledger_errors_total", []string{"op=decisions"}, 1},
		{"amos_collector_ledger_errors_total", []string{"op=health"}, 1},
		{"amos_collector_ledger_errors_total", []string{"op=registry"}, 0},
		{"amos_collector_uploads_total", []string{"outcome=ledger_error"}, 1},
		{"amos_collector_uploads_total", []string{"outcome=stored"}, 0},
		{"amos_collector_records_total", []string{"verdict=accepted", "reason="}, 0},
		{"amos_collector_batch_duration_seconds", nil, 1},
		{"amos_collector_claims_duration_seconds", nil, 2},
		{"amos_collector_inflight_batches", nil, 0},
	})
}

// TestMetricsPerHandler: two Handlers in one process have registries of their own.
func TestMetricsPerHandler(t *testing.T) {
	one, two := newRig(t, nil, nil, nil), newRig(t, nil, nil, nil)
	one.receipt(newDevice(t, "metrics one", nil, "").Genesis())
	checkMetrics(t, one.scrape(), []metricWant{{"amos_collector_uploads_total", []string{"outcome=stored"}, 1}})
	checkMetrics(t, two.scrape(), []metricWant{{"amos_collector_uploads_total", []string{"outcome=stored"}, 0}})
}

// TestMetricsReceiptOther: a verdict outside the fixed set (a reason a later collector
// might add) is counted under reason "other", never under a label of its own.
func TestMetricsReceiptOther(t *testing.T) {
	c, err := collector.New(ledger.NewMem(), collector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Collector: c, MaxInflight: 1, DeviceBatchesPerMinute: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.m.receipt(&collector.Receipt{Results: []collector.Result{
		{Status: collector.StatusRejected, Reason: "made_up"}, {Status: "odd", Reason: "x"}, {Status: collector.StatusAccepted},
	}})
	fams, err := h.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	checkMetrics(t, byName, []metricWant{
		{"amos_collector_records_total", []string{"verdict=rejected", "reason=other"}, 1},
		{"amos_collector_records_total", []string{"verdict=other", "reason=other"}, 1},
		{"amos_collector_records_total", []string{"verdict=accepted", "reason="}, 1},
	})
}
