package jsonlite

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Obj is a JSON object whose keys keep the order given, as a struct's fields do in
// encoding/json. (A map[string]any is written with its keys sorted.)
type Obj []Field

// O returns the Obj of alternating keys and values: O("a", 1, "b", true).
func O(keysAndValues ...any) Obj {
	if len(keysAndValues)%2 != 0 {
		panic("jsonlite.O: a key without a value")
	}
	o := make(Obj, 0, len(keysAndValues)/2)
	for i := 0; i < len(keysAndValues); i += 2 {
		o = append(o, Field{Key: keysAndValues[i].(string), Value: keysAndValues[i+1]})
	}
	return o
}

// Field is a key of an Obj and its value.
type Field struct {
	Key   string
	Value any
}

// Append appends the JSON of v to dst and returns it, or false if v holds a type it
// cannot write. v may be nil, bool, string, any integer type, float64, float32, Obj,
// map[string]any, []any, []string, []Obj, or an array or slice of integers of one of
// the types below; []byte is refused (encoding/json writes it in base64, and nothing of
// amosd has one). indent, if not "", writes the layout of encoding/json's
// Encoder.SetIndent("", indent).
func Append(dst []byte, v any, indent string) ([]byte, bool) {
	w := writer{b: dst, indent: indent}
	ok := w.value(v, 0)
	return w.b, ok
}

type writer struct {
	b      []byte
	indent string
}

func (w *writer) newline(depth int) {
	if w.indent == "" {
		return
	}
	w.b = append(w.b, '\n')
	for range depth {
		w.b = append(w.b, w.indent...)
	}
}

// list writes n elements between open and close, elem writing each.
func (w *writer) list(open, close byte, n, depth int, elem func(i int) bool) bool {
	w.b = append(w.b, open)
	if n == 0 {
		w.b = append(w.b, close)
		return true
	}
	for i := range n {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.newline(depth + 1)
		if !elem(i) {
			return false
		}
	}
	w.newline(depth)
	w.b = append(w.b, close)
	return true
}

func (w *writer) key(k string) {
	w.b = AppendString(w.b, k)
	w.b = append(w.b, ':')
	if w.indent != "" {
		w.b = append(w.b, ' ')
	}
}

func (w *writer) value(v any, depth int) bool {
	switch x := v.(type) {
	case nil:
		w.b = append(w.b, "null"...)
	case bool:
		w.b = strconv.AppendBool(w.b, x)
	case string:
		w.b = AppendString(w.b, x)
	case int:
		w.b = strconv.AppendInt(w.b, int64(x), 10)
	case int8:
		w.b = strconv.AppendInt(w.b, int64(x), 10)
	case int16:
		w.b = strconv.AppendInt(w.b, int64(x), 10)
	case int32:
		w.b = strconv.AppendInt(w.b, int64(x), 10)
	case int64:
		w.b = strconv.AppendInt(w.b, x, 10)
	case uint:
		w.b = strconv.AppendUint(w.b, uint64(x), 10)
	case uint8:
		w.b = strconv.AppendUint(w.b, uint64(x), 10)
	case uint16:
		w.b = strconv.AppendUint(w.b, uint64(x), 10)
	case uint32:
		w.b = strconv.AppendUint(w.b, uint64(x), 10)
	case uint64:
		w.b = strconv.AppendUint(w.b, x, 10)
	case float64:
		return w.float(x, 64)
	case float32:
		return w.float(float64(x), 32)
	case Obj:
		return w.list('{', '}', len(x), depth, func(i int) bool {
			w.key(x[i].Key)
			return w.value(x[i].Value, depth+1)
		})
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return w.list('{', '}', len(keys), depth, func(i int) bool {
			w.key(keys[i])
			return w.value(x[keys[i]], depth+1)
		})
	case []any:
		if x == nil {
			w.b = append(w.b, "null"...)
			return true
		}
		return w.list('[', ']', len(x), depth, func(i int) bool { return w.value(x[i], depth+1) })
	case []string:
		if x == nil {
			w.b = append(w.b, "null"...)
			return true
		}
		return w.list('[', ']', len(x), depth, func(i int) bool { w.b = AppendString(w.b, x[i]); return true })
	case []Obj:
		if x == nil {
			w.b = append(w.b, "null"...)
			return true
		}
		return w.list('[', ']', len(x), depth, func(i int) bool { return w.value(x[i], depth+1) })
	case [16]byte: // an array, not a slice: numbers, as encoding/json writes it
		return w.list('[', ']', len(x), depth, func(i int) bool { w.b = strconv.AppendUint(w.b, uint64(x[i]), 10); return true })
	case []uint32:
		if x == nil {
			w.b = append(w.b, "null"...)
			return true
		}
		return w.list('[', ']', len(x), depth, func(i int) bool { w.b = strconv.AppendUint(w.b, uint64(x[i]), 10); return true })
	default:
		return false
	}
	return true
}

// float writes f as encoding/json does; NaN and infinities are refused.
func (w *writer) float(f float64, bits int) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	start := len(w.b)
	w.b = strconv.AppendFloat(w.b, f, format, -1, bits)
	if format == 'e' { // clean up e-09 to e-9
		n := len(w.b) - start
		if n >= 4 && w.b[len(w.b)-4] == 'e' && w.b[len(w.b)-3] == '-' && w.b[len(w.b)-2] == '0' {
			w.b[len(w.b)-2] = w.b[len(w.b)-1]
			w.b = w.b[:len(w.b)-1]
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string the way encoding/json writes it: <, > and &
// escaped for HTML, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
