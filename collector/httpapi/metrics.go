package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/attest"
)

// Outcomes of a POST /v1/records request: the outcome label of
// amos_collector_uploads_total (docs/operations.md).
const (
	outcomeStored          = "stored"                 // 200
	outcomeAddressLimited  = "address_limited"        // 429, limits.address_requests_per_second
	outcomeUnsupportedType = "unsupported_media_type" // 415
	outcomeTooLarge        = "too_large"              // 413
	outcomeBadBatch        = "bad_batch"              // 400
	outcomeDeviceLimited   = "device_limited"         // 429, limits.device_batches_per_minute
	outcomeBusy            = "busy"                   // 503
	outcomeLedgerError     = "ledger_error"           // 500
)

var uploadOutcomes = []string{outcomeStored, outcomeAddressLimited, outcomeUnsupportedType, outcomeTooLarge,
	outcomeBadBatch, outcomeDeviceLimited, outcomeBusy, outcomeLedgerError}

// Operations whose ledger errors amos_collector_ledger_errors_total counts: each is
// answered 500 (503 for the health check).
const (
	opIngest    = "ingest"
	opClaims    = "claims"
	opDevice    = "device"
	opRegistry  = "registry"
	opDecide    = "decide"
	opDecisions = "decisions"
	opHealth    = "health"
)

var ledgerOps = []string{opIngest, opClaims, opDevice, opRegistry, opDecide, opDecisions, opHealth}

// recordVerdicts are the (status, reason) pairs of docs/protocol.md 10.1: the label
// values of amos_collector_records_total, all exported from the start. A pair the
// collector might add later is counted under reason "other".
var recordVerdicts = []verdict{
	{collector.StatusAccepted, ""},
	{collector.StatusDuplicate, ""},
	{collector.StatusRetry, collector.ReasonChainGap},
	{collector.StatusRetry, collector.ReasonUncertifiedLimit},
	{collector.StatusRejected, collector.ReasonBadFormat},
	{collector.StatusRejected, collector.ReasonBadSignature},
	{collector.StatusRejected, collector.ReasonUnknownDevice},
	{collector.StatusRejected, collector.ReasonChainFork},
	{collector.StatusRejected, collector.ReasonFutureDate},
	{collector.StatusRejected, collector.ReasonBadCert},
	{collector.StatusRejected, collector.ReasonUnknownMaker},
	{collector.StatusRejected, collector.ReasonStale},
	{collector.StatusRejected, collector.ReasonLate},
	{collector.StatusRejected, collector.ReasonImplausible},
}

// verdict is a record's status and reason.
type verdict struct {
	status collector.Status
	reason collector.Reason
}

// metrics are one Handler's Prometheus metrics, in a registry of its own: two
// Handlers in one process (tests, amos-fleetsim) never share a series.
type metrics struct {
	reg       *prometheus.Registry
	records   map[verdict]prometheus.Counter
	recordVec *prometheus.CounterVec
	uploads   *prometheus.CounterVec
	batch     prometheus.Histogram
	inflight  prometheus.Gauge
	ledger    *prometheus.CounterVec
	claims    prometheus.Histogram
	evictions prometheus.Counter
}

// newMetrics registers the Handler's metrics: status (nil for none) gives the
// attestation status list's age at now; addrs (nil when the per-address limit is off)
// the size of the address table.
func newMetrics(status *attest.Source, now func() time.Time, addrs *addrLimiter) (*metrics, error) {
	m := &metrics{
		reg:     prometheus.NewRegistry(),
		records: map[verdict]prometheus.Counter{},
		recordVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amos_collector_records_total",
			Help: "Records judged by POST /v1/records, by verdict (accepted, duplicate, retry, rejected) and reason (empty for accepted and duplicate).",
		}, []string{"verdict", "reason"}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amos_collector_uploads_total",
			Help: "POST /v1/records requests answered, by outcome.",
		}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "amos_collector_batch_duration_seconds",
			Help:    "Seconds a batch held an in-flight slot: verifying, storing and committing it durably (answered 200 or 500).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "amos_collector_inflight_batches",
			Help: "Batches holding one of limits.max_inflight_batches slots now.",
		}),
		ledger: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amos_collector_ledger_errors_total",
			Help: "Requests answered 500 (503 for the health check) because the ledger failed, by operation.",
		}, []string{"op"}),
		claims: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "amos_collector_claims_duration_seconds",
			Help:    "Seconds to compute a month's claim for GET /v1/claims and GET /v1/claims/devices.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
	}
	cs := []prometheus.Collector{m.recordVec, m.uploads, m.batch, m.inflight, m.ledger, m.claims,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	for _, v := range recordVerdicts {
		m.records[v] = m.recordVec.WithLabelValues(string(v.status), string(v.reason))
	}
	for _, o := range uploadOutcomes {
		m.uploads.WithLabelValues(o)
	}
	for _, op := range ledgerOps {
		m.ledger.WithLabelValues(op)
	}
	if addrs != nil {
		m.evictions = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amos_collector_address_evictions_total",
			Help: "Addresses forgotten by the per-address limit while still limited, to keep its table within limits.max_addresses.",
		})
		addrs.evicted = m.evictions.Inc
		cs = append(cs, m.evictions, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "amos_collector_addresses",
			Help: "Addresses (IPv4 addresses, IPv6 /64 prefixes) the per-address limit tracks now.",
		}, func() float64 { return float64(addrs.len()) }))
	}
	if status != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "amos_attestation_status_age_seconds",
			Help: "Seconds since the attestation status list was last loaded (-1: never).",
		}, func() float64 {
			if age := status.Age(now()); age != attest.NeverLoaded {
				return age.Seconds()
			}
			return -1
		}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "amos_attestation_status_stale",
			Help: "1 when the status list is older than attestation.status_max_age_hours, or was never loaded.",
		}, func() float64 {
			if status.Stale(now()) {
				return 1
			}
			return 0
		}))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: registering a metric: %w", err)
		}
	}
	return m, nil
}

// handler serves the registry in the Prometheus text format (or what the scraper
// negotiates); a metric that fails to collect is logged and left out.
func (m *metrics) handler(logf func(string, ...any)) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: promLogger(logf), ErrorHandling: promhttp.ContinueOnError})
}

type promLogger func(string, ...any)

func (l promLogger) Println(v ...any) { l("amos-collector: GET /metrics: %s", fmt.Sprint(v...)) }

// receipt counts a batch's verdicts.
func (m *metrics) receipt(rc *collector.Receipt) {
	for _, r := range rc.Results {
		c, ok := m.records[verdict{r.Status, r.Reason}]
		if !ok {
			status := "other"
			switch r.Status {
			case collector.StatusAccepted, collector.StatusDuplicate, collector.StatusRetry, collector.StatusRejected:
				status = string(r.Status)
			}
			c = m.recordVec.WithLabelValues(status, "other")
		}
		c.Inc()
	}
}

func (m *metrics) upload(outcome string) { m.uploads.WithLabelValues(outcome).Inc() }

func (m *metrics) ledgerError(op string) { m.ledger.WithLabelValues(op).Inc() }
