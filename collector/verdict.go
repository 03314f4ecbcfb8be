package collector

import (
	"fmt"
	"time"

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
	ReasonLate          Reason = "late"
	ReasonImplausible   Reason = "implausible_mint"
	// ReasonUncertifiedLimit (retry): a new device whose genesis no registered maker
	// certified, beyond the budget of limits.uncertified_devices_per_hour.
	ReasonUncertifiedLimit Reason = "uncertified_limit"
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
	ledger.VerdictLate:         ReasonLate,
	ledger.VerdictImplausible:  ReasonImplausible,
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

// Mint plausibility (docs/protocol.md 10.6): how far after the server's clock a
// minted_at or a certificate's issued_at may be.
const (
	// MintSkew is the tolerance for a record minted with a confirmed clock.
	MintSkew = time.Hour
	// UnconfirmedMintSkew is the tolerance for a record flagged clock_unconfirmed:
	// a phone that never had the time from the server may be a time zone off.
	UnconfirmedMintSkew = 24 * time.Hour
)

// mintVerdict checks a record's minted_at (and a genesis certificate's issued_at)
// against the server's clock and its date: v and detail are returned unchanged when
// they pass.
func (a *applier) mintVerdict(p *prepared, v ledger.Verdict, detail string) (ledger.Verdict, string) {
	skew := MintSkew
	if p.rec.Flags&proof.FlagClockUnconfirmed != 0 {
		skew = UnconfirmedMintSkew
	}
	limit := a.now.Add(skew).Unix()
	if p.rec.MintedAt > limit {
		return ledger.VerdictImplausible, fmt.Sprintf("minted_at %d is more than %s after the server's time %d", p.rec.MintedAt, skew, a.now.Unix())
	}
	if g := p.genesis; g != nil {
		if g.Cert != nil && g.Cert.IssuedAt > a.now.Add(MintSkew).Unix() {
			return ledger.VerdictBadCert, fmt.Sprintf("certificate issued_at %d is more than %s after the server's time %d", g.Cert.IssuedAt, MintSkew, a.now.Unix())
		}
		return v, detail
	}
	end := p.activity.Date.Next().Start(int(p.activity.UTCOffsetMinutes)).Unix()
	if p.rec.MintedAt < end && p.rec.Flags&proof.FlagClockJumped == 0 {
		return ledger.VerdictImplausible, fmt.Sprintf("minted_at %d is before the end of its date %s (%d)", p.rec.MintedAt, p.activity.Date, end)
	}
	return v, detail
}
