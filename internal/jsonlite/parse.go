// Package jsonlite reads and writes JSON (RFC 8259) without reflection, for amosd: its
// configuration, the collector's answers and the --json outputs of its command line.
// encoding/json and the reflection it needs cost amosd about a quarter of a megabyte
// of its 6 MiB budget (README.md's budget table); what amosd reads and writes is small and fixed, so
// its callers map values to their types by hand.
//
// Parse checks the whole grammar (numbers, escapes, nesting) and keeps the offset of
// every value and key for error messages. Strings are decoded as encoding/json decodes
// them: invalid UTF-8 and lone surrogates become U+FFFD. Parse builds the whole value
// (its tree costs tens of times the input for many small values); a Scanner reads it in
// one pass with the same checks, keeping only what its caller asks for (the collector's
// answers, which may be large). The writer (Append) produces the bytes of encoding/json's
// Marshal or, indented, of an Encoder with SetIndent.
package jsonlite

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{Null: "null", Bool: "bool", Number: "number", String: "string", Array: "array", Object: "object"}

// String returns the kind as encoding/json's type errors name it: "number", "object".
func (k Kind) String() string { return kindNames[k] }

// Value is a parsed JSON value.
type Value struct {
	Kind    Kind
	Off     int      // offset of its first byte in the input
	Str     string   // String: the decoded text; Number: the literal as written
	Bool    bool     // Bool
	Elems   []Value  // Array
	Members []Member // Object, in input order (a key may repeat: the last counts)
}

// Member is a key of an object and its value.
type Member struct {
	Key    string
	KeyOff int // offset of the key's opening quote
	Value  Value
}

// Describe says what v is for an error message, as encoding/json does: "string",
// "number 1.5", "object".
func (v *Value) Describe() string {
	if v.Kind == Number {
		return "number " + v.Str
	}
	return v.Kind.String()
}

// Int returns a Number as an integer within [lo, hi]; false if it is not an integer
// literal (no fraction, no exponent) or out of range.
func (v *Value) Int(lo, hi int64) (int64, bool) {
	if v.Kind != Number {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Str, 10, 64)
	return n, err == nil && n >= lo && n <= hi
}

// Uint returns a Number as an unsigned integer of at most hi; false otherwise.
func (v *Value) Uint(hi uint64) (uint64, bool) {
	if v.Kind != Number {
		return 0, false
	}
	n, err := strconv.ParseUint(v.Str, 10, 64)
	return n, err == nil && n <= hi
}

// SyntaxError is a violation of the JSON grammar at Offset.
type SyntaxError struct {
	Msg    string
	Offset int // of the byte at fault, or the length of the input if it ended early
}

func (e *SyntaxError) Error() string { return e.Msg }

// MaxDepth bounds the nesting of arrays and objects: nothing amosd reads is deeper than
// 4, and a megabyte of '[' must not exhaust the stack.
const MaxDepth = 64

// Parse parses b, which must hold exactly one JSON value, surrounded by white space
// at most. Its errors are *SyntaxError; a second value after the first is the error
// *ExtraError.
func Parse(b []byte) (*Value, error) {
	p := &parser{b: b}
	p.space()
	if p.i == len(b) {
		return nil, &SyntaxError{Msg: "unexpected end of JSON input", Offset: len(b)}
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(b) {
		return v, &ExtraError{Offset: p.i}
	}
	return v, nil
}

// ExtraError means that something follows the first value: Parse returns it with the
// first value.
type ExtraError struct{ Offset int }

func (e *ExtraError) Error() string { return "data after the JSON value" }

type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next reads what follows a member of an object or an element of an array: a comma
// (and the white space after it: more is true), or the closing byte (done); anything
// else fails as being after what.
func (p *parser) next(closing byte, what string) (more bool, err error) {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ',' {
		p.i++
		p.space()
		return true, nil
	}
	if p.i < len(p.b) && p.b[p.i] == closing {
		p.i++
		return false, nil
	}
	return false, p.fail(what)
}

// fail reports an unexpected byte at p.i (or the end of the input), what it was
// looking for.
func (p *parser) fail(context string) error {
	if p.i >= len(p.b) {
		return &SyntaxError{Msg: "unexpected end of JSON input", Offset: len(p.b)}
	}
	return &SyntaxError{Msg: "invalid character " + quoteChar(p.b[p.i]) + " " + context, Offset: p.i}
}

// quoteChar formats c as encoding/json's messages do.
func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c < 0x20 || c >= 0x7f:
		return strconv.Quote(string(rune(c)))
	}
	return "'" + string(rune(c)) + "'"
}

func (p *parser) value(depth int) (*Value, error) {
	if p.i >= len(p.b) {
		return nil, p.fail("")
	}
	v := &Value{Off: p.i}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth >= MaxDepth {
			return nil, &SyntaxError{Msg: fmt.Sprintf("nested deeper than %d", MaxDepth), Offset: p.i}
		}
		v.Kind = Object
		return v, p.object(v, depth+1)
	case c == '[':
		if depth >= MaxDepth {
			return nil, &SyntaxError{Msg: fmt.Sprintf("nested deeper than %d", MaxDepth), Offset: p.i}
		}
		v.Kind = Array
		return v, p.array(v, depth+1)
	case c == '"':
		v.Kind = String
		s, err := p.string()
		v.Str = s
		return v, err
	case c == '-' || c >= '0' && c <= '9':
		v.Kind = Number
		return v, p.number(v)
	case c == 't':
		v.Kind, v.Bool = Bool, true
		return v, p.literal("true")
	case c == 'f':
		v.Kind = Bool
		return v, p.literal("false")
	case c == 'n':
		return v, p.literal("null")
	}
	return nil, p.fail("looking for beginning of value")
}

func (p *parser) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if p.i >= len(p.b) || p.b[p.i] != word[k] {
			return p.fail("in literal " + word + " (expecting " + quoteChar(word[k]) + ")")
		}
		p.i++
	}
	return nil
}

func (p *parser) object(v *Value, depth int) error {
	p.i++ // {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.fail("looking for beginning of object key string")
		}
		keyOff := p.i
		key, err := p.string()
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail("after object key")
		}
		p.i++
		p.space()
		val, err := p.value(depth)
		if err != nil {
			return err
		}
		v.Members = append(v.Members, Member{Key: key, KeyOff: keyOff, Value: *val})
		if more, err := p.next('}', "after object key:value pair"); !more {
			return err
		}
	}
}

func (p *parser) array(v *Value, depth int) error {
	p.i++ // [
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		v.Elems = []Value{}
		return nil
	}
	for {
		val, err := p.value(depth)
		if err != nil {
			return err
		}
		v.Elems = append(v.Elems, *val)
		if more, err := p.next(']', "after array element"); !more {
			return err
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number scans a number into v.
func (p *parser) number(v *Value) error {
	lit, err := p.scanNumber()
	v.Str = string(lit)
	return err
}

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and returns it, a
// slice of the input.
func (p *parser) scanNumber() ([]byte, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && isDigit(p.b[p.i]):
		for p.i < len(p.b) && isDigit(p.b[p.i]) {
			p.i++
		}
	default:
		return nil, p.fail("in numeric literal")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.i >= len(p.b) || !isDigit(p.b[p.i]) {
			return nil, p.fail("after decimal point in numeric literal")
		}
		for p.i < len(p.b) && isDigit(p.b[p.i]) {
			p.i++
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.i >= len(p.b) || !isDigit(p.b[p.i]) {
			return nil, p.fail("in exponent of numeric literal")
		}
		for p.i < len(p.b) && isDigit(p.b[p.i]) {
			p.i++
		}
	}
	return p.b[start:p.i], nil
}

// string scans a string literal at p.i and returns its decoded text.
func (p *parser) string() (string, error) {
	// The common case: no escape, ASCII: one copy.
	for j := p.i + 1; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			s := string(p.b[p.i+1 : j])
			p.i = j + 1
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
	}
	out, _, err := p.appendString(nil, -1)
	return string(out), err
}

// appendString scans the string literal at p.i, checking all of it, and appends its
// decoded text to out, but only up to max bytes of out in all (max < 0: no bound); full
// is false if some of the text was left out (cut at a byte, even inside a character).
func (p *parser) appendString(out []byte, max int) (_ []byte, full bool, _ error) {
	p.i++ // "
	full = true
	var enc [utf8.UTFMax]byte
	for p.i < len(p.b) {
		c := p.b[p.i]
		var r rune
		switch {
		case c == '"':
			p.i++
			return out, full, nil
		case c < 0x20:
			return out, full, p.fail("in string literal")
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return out, full, p.fail("")
			}
			switch e := p.b[p.i]; e {
			case '"', '\\', '/':
				r = rune(e)
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				var err error
				if r, err = p.hex4(); err != nil {
					return out, full, err
				}
				if utf16.IsSurrogate(r) {
					// A pair is one rune; anything else is U+FFFD, as in encoding/json.
					dec := utf8.RuneError
					if p.i+2 < len(p.b) && p.b[p.i+1] == '\\' && p.b[p.i+2] == 'u' {
						save := p.i
						p.i += 2
						r2, err := p.hex4()
						if err != nil {
							return out, full, err
						}
						if dec = utf16.DecodeRune(r, r2); dec == utf8.RuneError {
							p.i = save // not a pair: the second escape stands alone
						}
					}
					r = dec
				}
			default:
				return out, full, p.fail("in string escape code")
			}
			p.i++
		case c < utf8.RuneSelf:
			r = rune(c)
			p.i++
		default:
			var size int
			r, size = utf8.DecodeRune(p.b[p.i:]) // RuneError for invalid bytes, one at a time
			p.i += size
		}
		if r < utf8.RuneSelf && (max < 0 || len(out) < max) {
			out = append(out, byte(r))
			continue
		}
		n := utf8.EncodeRune(enc[:], r)
		if max >= 0 && len(out)+n > max {
			n, full = max-len(out), false
			if n < 0 {
				n = 0
			}
		}
		out = append(out, enc[:n]...)
	}
	return out, full, p.fail("")
}

// hex4 reads the 4 hex digits after \u (p.i at the 'u') and leaves p.i on the last.
func (p *parser) hex4() (rune, error) {
	var r rune
	for k := 0; k < 4; k++ {
		p.i++
		if p.i >= len(p.b) {
			return 0, p.fail("")
		}
		c := p.b[p.i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, p.fail("in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}
