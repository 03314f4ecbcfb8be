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

// wireResult is one element of "results" as read, before it is judged.
type wireResult struct {
	epoch          uint32
	seq            uint64
	hasEpoch       bool
	hasSeq         bool
	status, reason text
}

// text is a string of the answer as far as it matters: its first maxReasonLen+1 bytes,
// enough to tell a valid reason or status from an invalid one and to quote it. Kept
// in place, it costs nothing however often a key repeats.
type text struct {
	b   [maxReasonLen + 1]byte
	n   uint8
	set bool
}

func (t *text) String() string { return string(t.b[:t.n]) }

// answerDecoder reads an answer with a jsonlite.Scanner, keeping only what
// decodeResponse judges: what it costs is bounded by the records sent, not by the
// answer, and it stops at the first value of a wrong type and as soon as results hold
// more elements than records were sent.
type answerDecoder struct {
	s          *jsonlite.Scanner
	ids        []RecordID
	serverTime int64
	hasTime    bool
	rs         []wireResult // of the last "results", at most len(ids)
	hasResults bool
	cur        *wireResult // the result being read
	// The callbacks of the Scanner, made once.
	top, result func(key []byte) error
	elem        func(i int) error
}

// decodeResponse decodes the body of a 200 answer to a request for ids (in request order)
// and checks it against docs/protocol.md: one JSON object, nothing after it; server_time present
// and plausible; exactly one result per record, in request order, each with the
// (epoch, seq) of its record and a known status; a rejected result has a reason that
// is a short [a-z0-9_] token (it is stored with the dead letter and shown in status).
// Unknown keys are ignored (and skipped, their syntax checked but nothing kept), so that
// the collector can add fields without breaking phones already sold; keys match
// exactly; a key that repeats counts with its last value, null as absent. A value of
// the wrong type (a string for a number, a fraction for an integer, a number out of
// range), wherever it is, is refused like a syntax error, and so is a results array
// with more elements than ids, as soon as it has one too many: the memory it takes is
// bounded by len(ids) whatever the answer holds. Every error matches ErrProtocol.
func decodeResponse(body []byte, ids []RecordID) (serverTime int64, out []outcome, err error) {
	d := &answerDecoder{s: jsonlite.NewScanner(body), ids: ids}
	d.top, d.result, d.elem = d.topMember, d.resultMember, d.resultElem
	if err := d.read(); err != nil {
		var syn *jsonlite.SyntaxError
		var extra *jsonlite.ExtraError
		switch {
		case errors.As(err, &extra):
			return 0, nil, protocolErr("data after the JSON object")
		case errors.As(err, &syn):
			return 0, nil, classify(err, protocolOnly, "transport: response breaks the sync protocol: not a JSON object")
		}
		return 0, nil, err
	}
	switch {
	case !d.hasTime:
		return 0, nil, protocolErr("no server_time")
	case d.serverTime < minServerTime || d.serverTime > maxServerTime:
		return 0, nil, protocolErr("server_time %d is implausible", d.serverTime)
	case !d.hasResults:
		return 0, nil, protocolErr("no results")
	case len(d.rs) != len(ids):
		return 0, nil, protocolErr("%d results for %d records", len(d.rs), len(ids))
	}
	out = make([]outcome, len(ids))
	for i := range d.rs {
		r := &d.rs[i]
		switch {
		case !r.hasEpoch || !r.hasSeq || !r.status.set:
			return 0, nil, protocolErr("result %d: epoch, seq and status are required", i)
		case r.epoch != ids[i].Epoch || r.seq != ids[i].Seq:
			return 0, nil, protocolErr("result %d is for epoch %d seq %d, the record is %s", i, r.epoch, r.seq, ids[i])
		}
		var o outcome
		switch status := r.status.b[:r.status.n]; string(status) {
		case StatusAccepted:
			o.status = StatusAccepted
		case StatusDuplicate:
			o.status = StatusDuplicate
		case StatusRetry:
			o.status = StatusRetry
		case StatusRejected:
			o.status = StatusRejected
		default:
			return 0, nil, protocolErr("result %d (%s): unknown status %q", i, ids[i], truncate(r.status.String(), 32))
		}
		reason := r.reason.String()
		valid := r.reason.set && validReason(reason)
		switch {
		case valid:
			o.reason = reason
		case o.status == StatusRejected:
			var got any = "none"
			if r.reason.set {
				got = fmt.Sprintf("%q", truncate(reason, maxReasonLen))
			}
			return 0, nil, protocolErr("result %d (%s): rejected needs a reason of 1 to %d [a-z0-9_], got %v", i, ids[i], maxReasonLen, got)
		}
		// A reason is informational for the other statuses (retry: chain_gap); only a
		// well-formed one is kept.
		out[i] = o
	}
	return d.serverTime, out, nil
}

// read reads the whole answer: one object (or null, which has no server_time), then
// nothing but white space.
func (d *answerDecoder) read() error {
	k, err := d.s.Peek()
	switch {
	case err != nil:
		return err
	case k == jsonlite.Null:
		if err := d.s.Null(); err != nil {
			return err
		}
	case k != jsonlite.Object:
		return protocolErr("not a JSON object: %s", d.describe(k))
	default:
		if err := d.s.Object(d.top); err != nil {
			return err
		}
	}
	return d.s.End()
}

// topMember reads a member of the answer object.
func (d *answerDecoder) topMember(key []byte) error {
	switch string(key) {
	case "server_time":
		n, ok, err := d.integer("server_time", math.MinInt64, math.MaxInt64)
		d.serverTime, d.hasTime = n, ok
		return err
	case "results":
		d.rs, d.hasResults = d.rs[:0], false // a repeated key: the last counts
		switch k, err := d.s.Peek(); {
		case err != nil:
			return err
		case k == jsonlite.Null:
			return d.s.Null()
		case k != jsonlite.Array:
			return protocolErr("not a JSON object: results is %s, want an array", d.describe(k))
		}
		if d.rs == nil {
			d.rs = make([]wireResult, 0, len(d.ids))
		}
		d.hasResults = true
		return d.s.Array(d.elem)
	}
	return nil // skipped
}

// resultElem reads element i of results.
func (d *answerDecoder) resultElem(i int) error {
	if i >= len(d.ids) {
		return protocolErr("more than %d results for %d records", len(d.ids), len(d.ids))
	}
	d.rs = append(d.rs, wireResult{})
	d.cur = &d.rs[i]
	switch k, err := d.s.Peek(); {
	case err != nil:
		return err
	case k == jsonlite.Null: // a result of nothing: judged later
		return d.s.Null()
	case k != jsonlite.Object:
		return protocolErr("not a JSON object: result %d is %s", i, d.describe(k))
	}
	return d.s.Object(d.result)
}

// resultMember reads a member of a result.
func (d *answerDecoder) resultMember(key []byte) error {
	r := d.cur
	switch string(key) {
	case "epoch":
		n, ok, err := d.uint("epoch", math.MaxUint32) // unsigned, as encoding/json read a uint32: not -0
		r.epoch, r.hasEpoch = uint32(n), ok
		return err
	case "seq":
		n, ok, err := d.uint("seq", math.MaxUint64)
		r.seq, r.hasSeq = n, ok
		return err
	case "status":
		return d.string("status", &r.status)
	case "reason":
		return d.string("reason", &r.reason)
	}
	return nil // skipped
}

// integer reads an integer of [lo, hi], or null: ok false.
func (d *answerDecoder) integer(key string, lo, hi int64) (int64, bool, error) {
	lit, isNull, err := d.number(key)
	if err != nil || isNull {
		return 0, false, err
	}
	n, ok := jsonlite.IntLiteral(lit, lo, hi)
	if !ok {
		return 0, false, protocolErr("not a JSON object: %s is number %s, want an integer of %d..%d", key, truncate(string(lit), 32), lo, hi)
	}
	return n, true, nil
}

// uint reads an integer of [0, hi], or null: ok false.
func (d *answerDecoder) uint(key string, hi uint64) (uint64, bool, error) {
	lit, isNull, err := d.number(key)
	if err != nil || isNull {
		return 0, false, err
	}
	n, ok := jsonlite.UintLiteral(lit, hi)
	if !ok {
		return 0, false, protocolErr("not a JSON object: %s is number %s, want an integer of 0..%d", key, truncate(string(lit), 32), hi)
	}
	return n, true, nil
}

// number reads a number's literal, or null.
func (d *answerDecoder) number(key string) (lit []byte, isNull bool, err error) {
	switch k, err := d.s.Peek(); {
	case err != nil:
		return nil, false, err
	case k == jsonlite.Null:
		return nil, true, d.s.Null()
	case k != jsonlite.Number:
		return nil, false, protocolErr("not a JSON object: %s is %s, want an integer", key, d.describe(k))
	}
	lit, err = d.s.Number()
	return lit, false, err
}

// string reads a string into t, or null (t unset).
func (d *answerDecoder) string(key string, t *text) error {
	t.set, t.n = false, 0
	switch k, err := d.s.Peek(); {
	case err != nil:
		return err
	case k == jsonlite.Null:
		return d.s.Null()
	case k != jsonlite.String:
		return protocolErr("not a JSON object: %s is %s, want a string", key, d.describe(k))
	}
	b, _, err := d.s.String(t.b[:0], len(t.b))
	t.n, t.set = uint8(len(b)), true
	return err
}

// describe names the next value, of kind k, for an error message as encoding/json
// does: "string", "number 1.5", "object".
func (d *answerDecoder) describe(k jsonlite.Kind) string {
	if k != jsonlite.Number {
		return k.String()
	}
	lit, err := d.s.Number()
	if err != nil {
		return k.String()
	}
	return "number " + truncate(string(lit), 32)
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
