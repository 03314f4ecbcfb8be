package transport

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var twoIDs = []RecordID{{1, 7}, {1, 8}}

func TestDecodeResponse(t *testing.T) {
	const ok2 = `"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"rejected","reason":"bad_signature"}]`
	for _, tc := range []struct {
		body string
		want []outcome // nil: an error saying err
		err  string
	}{
		{body: `{"server_time":1795500000,` + ok2 + `}`, want: []outcome{{StatusAccepted, ""}, {StatusRejected, "bad_signature"}}},
		{body: " \n{\"server_time\":1795500000," + ok2 + "}\n ", want: []outcome{{StatusAccepted, ""}, {StatusRejected, "bad_signature"}}},
		// unknown keys are ignored, at both levels
		{body: `{"server_time":1795500000,"next_sync":5,"results":[{"epoch":1,"seq":7,"status":"duplicate","x":[1]},{"epoch":1,"seq":8,"status":"retry","reason":"chain_gap"}]}`,
			want: []outcome{{StatusDuplicate, ""}, {StatusRetry, "chain_gap"}}},
		// a malformed reason on a status that does not need one is dropped
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"accepted","reason":""},{"epoch":1,"seq":8,"status":"retry","reason":"Chain Gap"}]}`,
			want: []outcome{{StatusAccepted, ""}, {StatusRetry, ""}}},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"rejected","reason":"some_new_reason_2"},{"epoch":1,"seq":8,"status":"accepted"}]}`,
			want: []outcome{{StatusRejected, "some_new_reason_2"}, {StatusAccepted, ""}}},
		// escapes in keys and values; a repeated results counts with its last; long and deep unknown values are skipped
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"acc\u0065pted"},{"epoch":1,"seq":8,"st\u0061tus":"rejected","reason":"b\u0061d_sig"}]}`,
			want: []outcome{{StatusAccepted, ""}, {StatusRejected, "bad_sig"}}},
		{body: `{"server_time":1795500000,"results":[{}],` + ok2 + `}`, want: []outcome{{StatusAccepted, ""}, {StatusRejected, "bad_signature"}}},
		{body: `{"server_time":1795500000,` + ok2 + `,"` + strings.Repeat("k", 1000) + `":["` + strings.Repeat(`\u00e9`, 10000) + `",` + strings.Repeat(`[`, 62) + strings.Repeat(`]`, 62) + `]}`,
			want: []outcome{{StatusAccepted, ""}, {StatusRejected, "bad_signature"}}},
		{body: ``, err: "not a JSON object"},
		{body: `null`, err: "no server_time"},
		{body: `{}`, err: "no server_time"},
		{body: `{"server_time":null,` + ok2 + `}`, err: "no server_time"},
		{body: `{"server_time":"1795500000",` + ok2 + `}`, err: "not a JSON object"},
		{body: `{"server_time":1795500000.5,` + ok2 + `}`, err: "not a JSON object"},
		{body: `{"server_time":-1,` + ok2 + `}`, err: "implausible"},
		{body: `{"server_time":253402300800,` + ok2 + `}`, err: "implausible"},
		{body: `{"server_time":1795500000}`, err: "no results"},
		{body: `{"server_time":1795500000,"results":null}`, err: "no results"},
		{body: `{"server_time":1795500000,"results":{}}`, err: "not a JSON object"},
		{body: `{"server_time":1795500000,"results":[]}`, err: "0 results for 2 records"},
		{body: `{"server_time":1795500000,` + ok2 + `}x`, err: "after the JSON object"},
		{body: `{"server_time":1795500000,` + ok2 + `}{}`, err: "after the JSON object"},
		{body: `{"server_time":1795500000,` + ok2, err: "not a JSON object"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"seq":8}]}`, err: "result 1: epoch, seq and status are required"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"status":"accepted"}]}`, err: "result 1: epoch, seq and status are required"},
		{body: `{"server_time":1795500000,"results":[{"epoch":-1,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: "not a JSON object"},
		{body: `{"server_time":1795500000,"results":[{"epoch":4294967296,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: "not a JSON object"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"seq":9,"status":"accepted"}]}`, err: "result 1 is for epoch 1 seq 9, the record is epoch 1 seq 8"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"ACCEPTED"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: `unknown status "ACCEPTED"`},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":""},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: `unknown status ""`},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"rejected"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: "rejected needs a reason"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"rejected","reason":"Bad Sig\n"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: "rejected needs a reason"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"rejected","reason":"` + strings.Repeat("a", 65) + `"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: "rejected needs a reason"},
		// Results beyond the records sent are refused at the first one too many, whatever follows.
		{body: `{"server_time":1795500000,"results":[{},{},{}]}`, err: "more than 2 results for 2 records"},
		{body: `{"server_time":1795500000,"results":[{},{},{},` + strings.Repeat(`[`, 100), err: "more than 2 results for 2 records"},
		{body: `{"server_time":1795500000,"results":[1]}`, err: "not a JSON object: result 0 is number 1"},
		{body: `{"server_time":1795500000,"results":"` + strings.Repeat("x", 100) + `"}`, err: "not a JSON object: results is string, want an array"},
		{body: `"x"`, err: "not a JSON object: string"},
		{body: `[1]`, err: "not a JSON object: array"},
		{body: `{"server_time":1795500000,` + ok2 + `,"x":` + strings.Repeat(`[`, 65) + strings.Repeat(`]`, 65) + `}`, err: "not a JSON object: nested deeper than 64"},
		// Every value of a known key is checked, not only the last.
		{body: `{"server_time":"x",` + ok2 + `,"server_time":1795500000}`, err: "not a JSON object: server_time is string, want an integer"},
		{body: `{"server_time":1795500000,` + ok2 + `,"server_time":null}`, err: "no server_time"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"accepted","epoch":null},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: "result 0: epoch, seq and status are required"},
		{body: `{"server_time":1795500000,"results":[{"epoch":-0,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: "epoch is number -0, want an integer of 0..4294967295"},
		{body: `{"server_time":` + strings.Repeat("1", 1000) + `,` + ok2 + `}`, err: "server_time is number 11111111111111111111111111111111..., want"},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"` + strings.Repeat("accepted", 9) + `"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: `unknown status "acceptedacceptedacceptedaccepted..."`},
		{body: `{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"rejected","reason":"` + strings.Repeat("a", 100000) + `"},{"epoch":1,"seq":8,"status":"accepted"}]}`, err: `got "` + strings.Repeat("a", 64) + `..."`},
	} {
		st, out, err := decodeResponse([]byte(tc.body), twoIDs)
		switch {
		case tc.want != nil && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.want != nil && (!slices.Equal(out, tc.want) || st != 1795500000):
			t.Errorf("%s: %d %v, want %v", tc.body, st, out, tc.want)
		case tc.want == nil && err == nil:
			t.Errorf("%s: no error, want %q", tc.body, tc.err)
		case tc.want == nil && (!errors.Is(err, ErrProtocol) || !errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %q, want ErrProtocol saying %q", tc.body, err, tc.err)
		}
	}
}

// FuzzDecodeResponse: no input panics, and whatever is accepted is a complete, ordered
// answer that means the same when encoded again.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"rejected","reason":"bad_signature"}]}`), uint8(2))
	f.Add([]byte(`{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"retry","reason":"chain_gap"}]}`), uint8(1))
	f.Add([]byte(`{"server_time":1795500000,"results":[]}`), uint8(0))
	f.Add([]byte(`{"server_time":1,"results":[{"epoch":1,"seq":7,"status":"duplicate"}]} `), uint8(1))
	f.Add([]byte(`[`), uint8(3))
	for i, s := range hostileAnswers() {
		f.Add([]byte(s), uint8(i%4))
	}
	f.Fuzz(func(t *testing.T, body []byte, n uint8) {
		ids := make([]RecordID, n%8)
		for i := range ids {
			ids[i] = RecordID{1, uint64(7 + i)}
		}
		st, out, err := decodeResponse(body, ids)
		if err != nil {
			if !errors.Is(err, ErrProtocol) || !errors.Is(err, ErrTransient) {
				t.Fatalf("error %v is not a protocol error", err)
			}
			return
		}
		if st < minServerTime || st > maxServerTime || len(out) != len(ids) {
			t.Fatalf("accepted server_time %d and %d results for %d records", st, len(out), len(ids))
		}
		resp := srvResponse{ServerTime: st, Results: []srvResult{}}
		for i, o := range out {
			switch o.status {
			case StatusAccepted, StatusDuplicate, StatusRetry:
			case StatusRejected:
				if !validReason(o.reason) {
					t.Fatalf("rejected with reason %q", o.reason)
				}
			default:
				t.Fatalf("status %q", o.status)
			}
			resp.Results = append(resp.Results, srvResult{ids[i].Epoch, ids[i].Seq, o.status, o.reason})
		}
		again, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		st2, out2, err := decodeResponse(again, ids)
		if err != nil || st2 != st || !slices.Equal(out2, out) {
			t.Fatalf("re-encoded %s: %d %v %v, want %d %v", again, st2, out2, err, st, out)
		}
	})
}

// FuzzParseRetryAfter: no input panics, every accepted value is a wait within
// [0, 24 h], and delay-seconds are exact.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	for _, s := range []string{"120", "0", "86401", "99999999999999999999", "-5", "soon", "",
		"Tue, 24 Nov 2026 08:05:00 GMT", "Tuesday, 24-Nov-26 08:05:00 GMT", "Tue Nov 24 08:05:00 2026",
		"Sat, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseRetryAfter(s, now)
		if err != nil {
			if !errors.Is(err, ErrRetryAfter) {
				t.Fatalf("error %v does not wrap ErrRetryAfter", err)
			}
			if d != 0 {
				t.Fatalf("error with a wait %v", d)
			}
			return
		}
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("%q: wait %v out of [0, 24h]", s, d)
		}
		v := strings.Trim(s, " \t")
		if isDigits(v) {
			n, err := strconv.ParseUint(v, 10, 64)
			if err == nil && n <= 86400 && d != time.Duration(n)*time.Second {
				t.Fatalf("%q: %v, want %d s", s, d, n)
			}
		}
	})
}
