package collector

import (
	"fmt"

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

// verdict is what the ledger stores with a linked record: the result it got.
type verdict uint8

// Stored verdict codes. Only these are ever linked; see the package documentation.
const (
	verdictAccepted     verdict = 0
	verdictBadCert      verdict = 1
	verdictUnknownMaker verdict = 2
	verdictFutureDate   verdict = 3
	verdictStale        verdict = 4
)

var verdictReasons = map[verdict]Reason{
	verdictBadCert:      ReasonBadCert,
	verdictUnknownMaker: ReasonUnknownMaker,
	verdictFutureDate:   ReasonFutureDate,
	verdictStale:        ReasonStale,
}

func (v verdict) valid() bool { return v == verdictAccepted || verdictReasons[v] != "" }

// reason returns the rejection reason, "" for accepted.
func (v verdict) reason() Reason { return verdictReasons[v] }

func (v verdict) String() string {
	if v == verdictAccepted {
		return string(StatusAccepted)
	}
	if r := v.reason(); r != "" {
		return string(r)
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// result returns the Result a linked record gets: accepted or rejected for its reason.
func (v verdict) result() (Status, Reason) {
	if v == verdictAccepted {
		return StatusAccepted, ""
	}
	return StatusRejected, v.reason()
}
