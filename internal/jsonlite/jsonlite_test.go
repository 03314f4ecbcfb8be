package jsonlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

// toAny converts a parsed value into what encoding/json's Unmarshal into an any gives,
// numbers as json.Number.
func toAny(v *Value) any {
	switch v.Kind {
	case Bool:
		return v.Bool
	case Number:
		return json.Number(v.Str)
	case String:
		return v.Str
	case Array:
		out := make([]any, len(v.Elems))
		for i := range v.Elems {
			out[i] = toAny(&v.Elems[i])
		}
		return out
	case Object:
		out := map[string]any{}
		for i := range v.Members {
			out[v.Members[i].Key] = toAny(&v.Members[i].Value)
		}
		return out
	}
	return nil
}

// reference decodes b with encoding/json as Parse should.
func reference(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, errors.New("extra")
	}
	return v, nil
}

func depth(b []byte) int {
	d, max := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			d++
			if d > max {
				max = d
			}
		case !inStr && (c == ']' || c == '}'):
			d--
		}
	}
	return max
}

func checkParse(t *testing.T, b []byte) {
	t.Helper()
	want, werr := reference(b)
	got, err := Parse(b)
	checkScanner(t, b, got, err)
	var extra *ExtraError
	switch {
	case werr != nil && werr.Error() == "extra":
		if !errors.As(err, &extra) {
			t.Fatalf("%q: error %v, want ExtraError", b, err)
		}
		if !reflect.DeepEqual(toAny(got), want) {
			t.Fatalf("%q: first value %#v, want %#v", b, toAny(got), want)
		}
	case werr != nil:
		if err == nil && depth(b) <= MaxDepth {
			t.Fatalf("%q: accepted (%#v), encoding/json says %v", b, toAny(got), werr)
		}
	case err != nil:
		if depth(b) <= MaxDepth {
			t.Fatalf("%q: %v, encoding/json accepts %#v", b, err, want)
		}
	case !reflect.DeepEqual(toAny(got), want):
		t.Fatalf("%q: %#v, want %#v", b, toAny(got), want)
	}
}

var parseCases = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `tru`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `-1.25e+10`,
	`""`, `"a"`, `"\u00e9\n\t\"\\\/"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\x"`, `"\u12"`,
	"\"\x01\"", "\"\xff\"", "\"a\xc3\"", `"é"`, `[]`, `[1,]`, `[1 2]`, `[1,2]`, `{}`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`,
	`{"a":1,"a":2}`, `{"a":[{"b":null}]}`, `{} {}`, `{} x`, `[] `, "\t{\"x\"\n:\r[]}\n", `{"a":1`, `[`, `"abc`,
	`{"server_time": 1795500000, "results": [{"epoch": 1, "seq": 2, "status": "accepted"}]}`,
}

func TestParse(t *testing.T) {
	for _, c := range parseCases {
		checkParse(t, []byte(c))
	}
}

func TestParseOffsetsAndErrors(t *testing.T) {
	v, err := Parse([]byte(`{"a": [1, "x"], "b": {"c": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := v.Members[1]; m.Key != "b" || m.KeyOff != 16 || m.Value.Off != 21 || m.Value.Members[0].Value.Off != 27 {
		t.Errorf("offsets: %+v", m)
	}
	if v.Members[0].Value.Elems[1].Off != 10 {
		t.Errorf("element offset %d", v.Members[0].Value.Elems[1].Off)
	}
	for in, want := range map[string]string{
		"{\n  \"log\" \"auto\"\n}": `invalid character '"' after object key`,
		`{"bus": "system"`:         "unexpected end of JSON input",
		`[1, x]`:                   "invalid character 'x' looking for beginning of value",
		strings.Repeat("[", 100):   "nested deeper than 64",
	} {
		_, err := Parse([]byte(in))
		var se *SyntaxError
		if !errors.As(err, &se) || se.Msg != want {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	_, err = Parse([]byte(`{"a":1} {}`))
	var extra *ExtraError
	if !errors.As(err, &extra) || extra.Offset != 8 {
		t.Errorf("extra: %v", err)
	}
}

func TestIntegers(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int64
		want   int64
		ok     bool
	}{{"5", 0, 10, 5, true}, {"-1", 0, 10, 0, false}, {"11", 0, 10, 0, false}, {"1.0", 0, 10, 0, false}, {"1e1", 0, 100, 0, false}, {"-9223372036854775808", math.MinInt64, 0, math.MinInt64, true}, {"9223372036854775808", 0, math.MaxInt64, 0, false}} {
		v, err := Parse([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		n, ok := v.Int(tc.lo, tc.hi)
		if ok != tc.ok || ok && n != tc.want {
			t.Errorf("Int(%s) = %d, %v", tc.in, n, ok)
		}
	}
	v, _ := Parse([]byte("18446744073709551615"))
	if n, ok := v.Uint(math.MaxUint64); !ok || n != math.MaxUint64 {
		t.Errorf("Uint: %d %v", n, ok)
	}
	if _, ok := v.Uint(math.MaxUint32); ok {
		t.Error("Uint over the limit accepted")
	}
}

type sample struct {
	Date   uint32
	Offset int16
	Boot   [16]byte
	Names  []string
	None   []string
	F      float64
	Text   string
}

func TestAppendMatchesEncodingJSON(t *testing.T) {
	texts := []string{"", "plain", "<a href=\"x\">&amp;</a>", "tab\tnl\ncr\r\b\f\x01\x1f", "é 中 😀", "\u2028\u2029", "bad \xff utf8 \xc3", `back\slash`}
	floats := []float64{0, 1, -1.5, 1e-7, 1e21, 123456789, 0.000001, 1e20, math.SmallestNonzeroFloat64, math.MaxFloat64}
	for i, text := range texts {
		s := sample{Date: 20261001, Offset: -480, Names: []string{text, "x"}, F: floats[i%len(floats)], Text: text}
		s.Boot[3] = 200
		obj := Obj{{"Date", s.Date}, {"Offset", s.Offset}, {"Boot", s.Boot}, {"Names", s.Names}, {"None", s.None}, {"F", s.F}, {"Text", s.Text}}
		m := map[string]any{"z": text, "a": int64(-3), "m": uint64(math.MaxUint64), "b": true, "n": nil, "l": []any{uint32(1), "x", []string{}}}
		ref := map[string]any{"o": s}
		mine := map[string]any{"o": obj}
		for k, v := range m {
			ref[k], mine[k] = v, v
		}
		for _, indent := range []string{"", "  "} {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", indent)
			if err := enc.Encode(map[string]any{"m": ref, "s": s, "list": []any{s, struct{}{}}}); err != nil {
				t.Fatal(err)
			}
			got, ok := Append(nil, map[string]any{"m": mine, "s": obj, "list": []Obj{obj, {}}}, indent)
			if !ok {
				t.Fatal("Append refused")
			}
			if got = append(got, '\n'); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("indent %q:\n got %s\nwant %s", indent, got, want.Bytes())
			}
		}
	}
	for _, v := range []any{[]byte("x"), struct{}{}, math.NaN(), map[string]int{}} {
		if _, ok := Append(nil, v, ""); ok {
			t.Errorf("%T accepted", v)
		}
	}
}

// FuzzParse: Parse accepts what encoding/json accepts (within MaxDepth), refuses what
// it refuses, and decodes the same values.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParse(t, b)
	})
}

// FuzzAppendString: every string is written as encoding/json writes it.
func FuzzAppendString(f *testing.F) {
	f.Add("<&>\u2028\xff\x00\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: %s, want %s", s, got, want)
		}
	})
}
