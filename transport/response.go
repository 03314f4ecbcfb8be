package transport

import (
	"errors"
	"fmt"
	"math"

	"amos.example/amosd/internal/jsonlite"
)

// Per-record statuses of a 200 answer (docs/protocol.md).
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

// field returns the value of key in object o (the last, if it repeats), nil if absent
// or null: for the protocol, a null field is a missing one.
func field(o *jsonlite.Value, key string) *jsonlite.Value {
	var v *jsonlite.Value
	for i := range o.Members {
		if o.Members[i].Key == key {
			v = &o.Members[i].Value
		}
	}
	if v != nil && v.Kind == jsonlite.Null {
		return nil
	}
	return v
}

// decodeResponse decodes the body of a 200 answer to a request for ids (in request order)
// and checks it against docs/protocol.md: one JSON object, nothing after it; server_time present
// and plausible; exactly one result per record, in request order, each with the
// (epoch, seq) of its record and a known status; a rejected result has a reason that
// is a short [a-z0-9_] token (it is stored with the dead letter and shown in status).
// Unknown keys are ignored, so that the collector can add fields without breaking phones
// already sold; keys match exactly. A value of the wrong type (a string for a number, a
// fraction for an integer, a number out of range) is refused like a syntax error. Every
// error matches ErrProtocol.
func decodeResponse(body []byte, ids []RecordID) (serverTime int64, out []outcome, err error) {
	w, err := jsonlite.Parse(body)
	var extra *jsonlite.ExtraError
	switch {
	case errors.As(err, &extra):
		return 0, nil, protocolErr("data after the JSON object")
	case err != nil:
		return 0, nil, protocolErr("not a JSON object: %v", err)
	case w.Kind == jsonlite.Null:
		return 0, nil, protocolErr("no server_time")
	case w.Kind != jsonlite.Object:
		return 0, nil, protocolErr("not a JSON object: %s", w.Describe())
	}
	st, results := field(w, "server_time"), field(w, "results")
	if st != nil {
		if serverTime, err = integer(st, "server_time", math.MinInt64, math.MaxInt64); err != nil {
			return 0, nil, err
		}
	}
	if results != nil && results.Kind != jsonlite.Array {
		return 0, nil, protocolErr("not a JSON object: results is %s, want an array", results.Describe())
	}
	// Every value is decoded before any is judged, as encoding/json did: a value of the
	// wrong type anywhere makes the whole answer "not a JSON object".
	type wireResult struct {
		epoch, seq     int64
		status, reason *string
		hasIDs         bool
	}
	var rs []wireResult
	if results != nil {
		rs = make([]wireResult, len(results.Elems))
	}
	for i := range rs {
		r := &results.Elems[i]
		switch r.Kind {
		case jsonlite.Null:
			continue
		case jsonlite.Object:
		default:
			return 0, nil, protocolErr("not a JSON object: result %d is %s", i, r.Describe())
		}
		epoch, seq := field(r, "epoch"), field(r, "seq")
		if epoch != nil {
			if rs[i].epoch, err = integer(epoch, "epoch", 0, math.MaxUint32); err != nil {
				return 0, nil, err
			}
		}
		if seq != nil {
			n, ok := seq.Uint(math.MaxUint64)
			if !ok {
				return 0, nil, protocolErr("not a JSON object: seq is %s, want an integer of 0..%d", seq.Describe(), uint64(math.MaxUint64))
			}
			rs[i].seq = int64(n)
		}
		rs[i].hasIDs = epoch != nil && seq != nil
		for _, k := range [...]struct {
			key string
			dst **string
		}{{"status", &rs[i].status}, {"reason", &rs[i].reason}} {
			if v := field(r, k.key); v != nil {
				if v.Kind != jsonlite.String {
					return 0, nil, protocolErr("not a JSON object: %s is %s, want a string", k.key, v.Describe())
				}
				*k.dst = &v.Str
			}
		}
	}
	switch {
	case st == nil:
		return 0, nil, protocolErr("no server_time")
	case serverTime < minServerTime || serverTime > maxServerTime:
		return 0, nil, protocolErr("server_time %d is implausible", serverTime)
	case results == nil:
		return 0, nil, protocolErr("no results")
	case len(rs) != len(ids):
		return 0, nil, protocolErr("%d results for %d records", len(rs), len(ids))
	}
	out = make([]outcome, len(ids))
	for i, r := range rs {
		switch {
		case !r.hasIDs || r.status == nil:
			return 0, nil, protocolErr("result %d: epoch, seq and status are required", i)
		case uint32(r.epoch) != ids[i].Epoch || uint64(r.seq) != ids[i].Seq:
			return 0, nil, protocolErr("result %d is for epoch %d seq %d, the record is %s", i, r.epoch, uint64(r.seq), ids[i])
		}
		o := outcome{status: *r.status}
		switch o.status {
		case StatusAccepted, StatusDuplicate, StatusRetry:
			// A reason is informational here (retry: chain_gap); only a well-formed one is kept.
			if r.reason != nil && validReason(*r.reason) {
				o.reason = *r.reason
			}
		case StatusRejected:
			if r.reason == nil || !validReason(*r.reason) {
				var got any = "none"
				if r.reason != nil {
					got = fmt.Sprintf("%q", truncate(*r.reason, maxReasonLen))
				}
				return 0, nil, protocolErr("result %d (%s): rejected needs a reason of 1 to %d [a-z0-9_], got %v", i, ids[i], maxReasonLen, got)
			}
			o.reason = *r.reason
		default:
			return 0, nil, protocolErr("result %d (%s): unknown status %q", i, ids[i], truncate(o.status, 32))
		}
		out[i] = o
	}
	return serverTime, out, nil
}

// integer reads an integer of [lo, hi]; anything else is a type error of the answer.
func integer(v *jsonlite.Value, key string, lo, hi int64) (int64, error) {
	n, ok := v.Int(lo, hi)
	if !ok {
		return 0, protocolErr("not a JSON object: %s is %s, want an integer of %d..%d", key, v.Describe(), lo, hi)
	}
	return n, nil
}

// validReason reports whether s is a non-empty token of at most maxReasonLen characters
// from [a-z0-9_]: the reasons of docs/protocol.md and any the collector may add later.
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
