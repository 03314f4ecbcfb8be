package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"amos.example/amosd/internal/jsonlite"
)

// decodeWithEncodingJSON is how decodeResponse read answers with encoding/json before
// amosd dropped it (README.md's budget table binary budget): the reference of
// FuzzDecodeResponseMatchesEncodingJSON. It returns the fields as pointers, nil when
// absent or null; ok false for what encoding/json refused.
func decodeWithEncodingJSON(body []byte) (st *int64, results *[]refResult, ok bool) {
	var w struct {
		ServerTime *int64       `json:"server_time"`
		Results    *[]refResult `json:"results"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return nil, nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, false
	}
	return w.ServerTime, w.Results, true
}

type refResult struct {
	Epoch  *uint32 `json:"epoch"`
	Seq    *uint64 `json:"seq"`
	Status *string `json:"status"`
	Reason *string `json:"reason"`
}

// caseFolded reports whether body has a key that differs from a protocol key only in
// case: encoding/json matched those, decodeResponse ignores them.
func caseFolded(body []byte) bool {
	s := string(body)
	low := strings.ToLower(s)
	if strings.ContainsAny(s, "\u017f\u212a") || strings.Contains(low, `\u017f`) || strings.Contains(low, `\u212a`) ||
		strings.Contains(s, `\u00`) { // ſ and K fold to s and k; an escaped letter may be in another case
		return true
	}
	for _, k := range []string{"server_time", "results", "epoch", "seq", "status", "reason"} {
		if strings.Contains(low, k) && strings.Count(low, k) != strings.Count(s, k) {
			return true
		}
	}
	return false
}

// nesting returns how deep arrays and objects nest in body.
func nesting(body []byte) int {
	d, deepest := 0, 0
	inStr, esc := false, false
	for _, c := range body {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			d++
			deepest = max(deepest, d)
		case !inStr && (c == ']' || c == '}'):
			d--
		}
	}
	return deepest
}

// hostileAnswers are seeds of the fuzz targets: answers made to cost a parser memory or
// to slip past it, for the ids {1, 7} and {1, 8}.
func hostileAnswers() []string {
	const st = `{"server_time":1795500000,`
	ok2 := `"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"retry","reason":"chain_gap"}]`
	return []string{
		st + `"results":[{},{},{}]}`, // one result too many
		st + `"results":[` + strings.Repeat(`{},`, 2000) + `{}]}`,
		st + `"results":[null,null,` + strings.Repeat(`[`, 40) + `]}`, // too many, then broken
		st + `"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"accepted"},"x"]}`,
		st + ok2 + `,"x":` + strings.Repeat(`[`, 65) + strings.Repeat(`]`, 65) + `}`, // deeper than MaxDepth
		st + ok2 + `,"x":` + strings.Repeat(`{"a":`, 63) + `0` + strings.Repeat(`}`, 63) + `}`,
		st + ok2 + `,"x":[` + strings.Repeat(`{"k":[0,"s",true,null,1.5e3]},`, 500) + `{}]}`,
		st + ok2 + `,"` + strings.Repeat("k", 5000) + `":"` + strings.Repeat(`\u00e9`, 5000) + `"}`,
		`{"server_time":"x",` + ok2 + `,"server_time":1795500000}`, // a wrong type, then a right one
		st + ok2 + `,"server_time":null}`,
		st + `"results":[{"epoch":1,"seq":7,"status":"accepted","epoch":null},{"epoch":1,"seq":8,"status":"accepted"}]}`,
		st + `"results":[{"epoch":-0,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"accepted"}]}`,
		st + `"results":[{"epoch":1,"seq":7,"status":"rejected","reason":"` + strings.Repeat("a", 70000) + `"},{"epoch":1,"seq":8,"status":"accepted"}]}`,
		st + `"results":[{"epoch":1,"seq":7,"status":"` + strings.Repeat("accepted", 9) + `"},{"epoch":1,"seq":8,"status":"accepted"}]}`,
		st + `"results":[{"epoch":1,"seq":7,"status":"acc\u0065pted","re\u0061son":"x"},{"epoch":1,"seq":8,"status":"rejected","reason":"b\u0061d"}]}`,
		st + `"results":[{"epoch":1,"seq":7,"status":"accepted","seq":` + strings.Repeat("9", 5000) + `},{"epoch":1,"seq":8,"status":"accepted"}]}`,
		`{"server_time":` + strings.Repeat("1", 100000) + `,` + ok2 + `}`,
	}
}

// FuzzDecodeResponseMatchesEncodingJSON: decodeResponse accepts exactly the answers that
// the encoding/json decoder accepted, with the same outcome, except for keys in another
// case (encoding/json matched them), repeated keys (encoding/json merged repeated
// "results" arrays into one another; here the last counts) and nesting deeper than
// jsonlite.MaxDepth (refused here, as no answer needs it).
func FuzzDecodeResponseMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"accepted"},{"epoch":1,"seq":8,"status":"rejected","reason":"bad_signature"}]}`,
		`{"server_time":1795500000,"results":[null,{"epoch":1,"seq":8,"status":"retry","reason":"chain_gap"}]}`,
		`{"server_time":1795500000,"results":[{"epoch":1,"seq":7,"status":"duplicate","x":{"y":[1,2]}},{"epoch":1,"seq":8,"status":"accepted"}]} `,
		`{"server_time":1.5e9,"results":[]}`, `{"server_time":null}`, `[]`, `null`, `{"results":[1]}`, `{"Server_Time":1795500000,"results":[]}`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range hostileAnswers() {
		f.Add([]byte(s))
	}
	ids := []RecordID{{1, 7}, {1, 8}}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, out, err := decodeResponse(body, ids)
		rst, rres, ok := decodeWithEncodingJSON(body)
		if caseFolded(body) || bytes.Count(body, []byte(`"results"`)) > 1 || nesting(body) > jsonlite.MaxDepth {
			return
		}
		if !ok {
			if err == nil {
				t.Fatalf("%q: accepted, encoding/json refused it", body)
			}
			return
		}
		// What encoding/json decoded, judged by the same rules.
		want := rst != nil && *rst >= minServerTime && *rst <= maxServerTime && rres != nil && len(*rres) == len(ids)
		if want {
			for i, r := range *rres {
				if r.Epoch == nil || r.Seq == nil || r.Status == nil || *r.Epoch != ids[i].Epoch || *r.Seq != ids[i].Seq {
					want = false
					break
				}
				switch *r.Status {
				case StatusAccepted, StatusDuplicate, StatusRetry:
				case StatusRejected:
					want = want && r.Reason != nil && validReason(*r.Reason)
				default:
					want = false
				}
			}
		}
		if want != (err == nil) {
			t.Fatalf("%q: error %v, encoding/json says acceptable: %v", body, err, want)
		}
		if err != nil {
			return
		}
		if st != *rst {
			t.Fatalf("%q: server_time %d, want %d", body, st, *rst)
		}
		for i, r := range *rres {
			w := outcome{status: *r.Status}
			if r.Reason != nil && validReason(*r.Reason) {
				w.reason = *r.Reason
			}
			if out[i] != w {
				t.Fatalf("%q: result %d %v, want %v", body, i, out[i], w)
			}
		}
	})
}
