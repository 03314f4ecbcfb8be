package collector

import (
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// Status is the status of one record's result (docs/protocol.md).
type Status string

// Statuses of docs/protocol.md.
const (
	StatusAccepted  Status = "accepted"
	StatusDuplicate Status = "duplicate"
	StatusRetry     Status = "retry"
	StatusRejected  Status = "rejected"
)

// Reason says why a record was not accepted (docs/protocol.md). Empty for accepted and
// duplicate records.
type Reason string

// Reasons of docs/protocol.md.
const (
	ReasonBadFormat     Reason = "bad_format"
	ReasonBadSignature  Reason = "bad_signature"
	ReasonUnknownDevice Reason = "unknown_device"
	ReasonChainFork     Reason = "chain_fork"
	ReasonFutureDate    Reason = "future_date"
	ReasonBadCert       Reason = "bad_cert"
	ReasonUnknownMaker  Reason = "unknown_maker"
	ReasonStale         Reason = "stale"
	ReasonChainGap      Reason = "chain_gap"
)

// Result is the verdict on one record, in the JSON form of docs/protocol.md.
type Result struct {
	Epoch  uint32 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	Status Status `json:"status"`
	Reason Reason `json:"reason,omitempty"`
	// DeviceID is the record's device_id, zero if the bytes are too short to hold one.
	DeviceID proof.DeviceID `json:"-"`
	// Detail explains a verdict other than accepted, for logs and `verify`.
	Detail string `json:"-"`
}

// String renders the verdict as "status" or "status reason: detail".
func (r Result) String() string {
	s := string(r.Status)
	if r.Reason != "" {
		s += " " + string(r.Reason)
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s
}

// Receipt is the 200 answer to a batch (docs/protocol.md).
type Receipt struct {
	ServerTime int64    `json:"server_time"`
	Results    []Result `json:"results"`
}

// verdictReasons maps the verdicts the ledger stores with linked records to their
// rejection reasons; see the package documentation.
var verdictReasons = map[ledger.Verdict]Reason{
	ledger.VerdictBadCert:      ReasonBadCert,
	ledger.VerdictUnknownMaker: ReasonUnknownMaker,
	ledger.VerdictFutureDate:   ReasonFutureDate,
	ledger.VerdictStale:        ReasonStale,
}

// reasonOf returns the rejection reason of a stored verdict, "" for accepted.
func reasonOf(v ledger.Verdict) Reason { return verdictReasons[v] }

// resultOf returns the Result a linked record gets: accepted or rejected for its reason.
func resultOf(v ledger.Verdict) (Status, Reason) {
	if v == ledger.VerdictAccepted {
		return StatusAccepted, ""
	}
	return StatusRejected, reasonOf(v)
}
