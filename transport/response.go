package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Per-record statuses of a 200 answer (SPEC §5).
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
	StatusRetry     = "retry"
	StatusRejected  = "rejected"
)

// Plausible server_time bounds: 2020-01-01 and 9999-12-31 UTC. A value outside them
// cannot come from a working server and must not feed trusted time.
const (
	minServerTime = 1577836800
	maxServerTime = 253402300799
)

// maxReasonLen bounds a reason: it is stored with the dead letter and shown in status.
const maxReasonLen = 64

// outcome is one decoded result, in request order.
type outcome struct {
	status string // one of the Status constants
	reason string // always set for rejected; for the others, a well-formed reason or ""
}

type wireResponse struct {
	ServerTime *int64        `json:"server_time"`
	Results    *[]wireResult `json:"results"`
}

type wireResult struct {
	Epoch  *uint32 `json:"epoch"`
	Seq    *uint64 `json:"seq"`
	Status *string `json:"status"`
	Reason *string `json:"reason"`
}

// decodeResponse decodes the body of a 200 answer to a request for ids (in request order)
// and checks it against SPEC §5: one JSON object, nothing after it; server_time present
// and plausible; exactly one result per record, in request order, each with the
// (epoch, seq) of its record and a known status; a rejected result has a reason that
// is a short [a-z0-9_] token (it is stored with the dead letter and shown in status). Unknown keys are ignored, so that the collector can
// add fields without breaking phones already sold. Every error matches ErrProtocol.
func decodeResponse(body []byte, ids []RecordID) (serverTime int64, out []outcome, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var w wireResponse
	if err := dec.Decode(&w); err != nil {
		return 0, nil, protocolErr("not a JSON object: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, nil, protocolErr("data after the JSON object")
	}
	switch {
	case w.ServerTime == nil:
		return 0, nil, protocolErr("no server_time")
	case *w.ServerTime < minServerTime || *w.ServerTime > maxServerTime:
		return 0, nil, protocolErr("server_time %d is implausible", *w.ServerTime)
	case w.Results == nil:
		return 0, nil, protocolErr("no results")
	case len(*w.Results) != len(ids):
		return 0, nil, protocolErr("%d results for %d records", len(*w.Results), len(ids))
	}
	out = make([]outcome, len(ids))
	for i, r := range *w.Results {
		switch {
		case r.Epoch == nil || r.Seq == nil || r.Status == nil:
			return 0, nil, protocolErr("result %d: epoch, seq and status are required", i)
		case *r.Epoch != ids[i].Epoch || *r.Seq != ids[i].Seq:
			return 0, nil, protocolErr("result %d is for epoch %d seq %d, the record is %s", i, *r.Epoch, *r.Seq, ids[i])
		}
		o := outcome{status: *r.Status}
		switch o.status {
		case StatusAccepted, StatusDuplicate, StatusRetry:
			// A reason is informational here (retry: chain_gap); only a well-formed one is kept.
			if r.Reason != nil && validReason(*r.Reason) {
				o.reason = *r.Reason
			}
		case StatusRejected:
			if r.Reason == nil || !validReason(*r.Reason) {
				var got any = "none"
				if r.Reason != nil {
					got = fmt.Sprintf("%q", truncate(*r.Reason, maxReasonLen))
				}
				return 0, nil, protocolErr("result %d (%s): rejected needs a reason of 1 to %d [a-z0-9_], got %v", i, ids[i], maxReasonLen, got)
			}
			o.reason = *r.Reason
		default:
			return 0, nil, protocolErr("result %d (%s): unknown status %q", i, ids[i], truncate(o.status, 32))
		}
		out[i] = o
	}
	return *w.ServerTime, out, nil
}

// validReason reports whether s is a non-empty token of at most maxReasonLen characters
// from [a-z0-9_]: the reasons of SPEC §5 and any the collector may add later.
func validReason(s string) bool {
	if s == "" || len(s) > maxReasonLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// RecordID names a record by its epoch and sequence number. It has the layout of
// store.RecordID, so the two convert into each other.
type RecordID struct {
	Epoch uint32
	Seq   uint64
}

// String returns "epoch E seq S".
func (id RecordID) String() string { return fmt.Sprintf("epoch %d seq %d", id.Epoch, id.Seq) }
