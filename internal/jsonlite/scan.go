package jsonlite

import (
	"fmt"
	"math"
)

// MaxKeyLen is how much of a key Scanner.Object hands over: a longer key is cut to its
// first MaxKeyLen bytes, so that it still differs from every shorter name.
const MaxKeyLen = 64

// Scanner reads one JSON value piece by piece without building a tree, for a caller
// that knows the shape it wants, keeps a few fields and skips the rest (transport's
// reading of the collector's answer). It checks the grammar as Parse does, with Parse's
// errors and offsets and MaxDepth, and allocates nothing as it reads: what it costs does
// not grow with the input.
//
// A value is read by one of Skip, Null, Bool, Number, String, Object and Array, after
// Peek has said which applies (each of them fails on a value of another kind). After the
// top value, End checks that only white space follows.
type Scanner struct {
	p     parser
	depth int
	key   [MaxKeyLen]byte
}

// NewScanner returns a Scanner of b.
func NewScanner(b []byte) *Scanner { return &Scanner{p: parser{b: b}} }

// Offset is the offset in the input of the next byte to read.
func (s *Scanner) Offset() int { return s.p.i }

// Peek returns the kind of the next value without reading it: a *SyntaxError at the
// end of the input or at a byte that cannot start a value.
func (s *Scanner) Peek() (Kind, error) {
	p := &s.p
	p.space()
	if p.i >= len(p.b) {
		return Null, p.fail("")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return Object, nil
	case c == '[':
		return Array, nil
	case c == '"':
		return String, nil
	case c == '-' || isDigit(c):
		return Number, nil
	case c == 't' || c == 'f':
		return Bool, nil
	case c == 'n':
		return Null, nil
	}
	return Null, p.fail("looking for beginning of value")
}

// expect checks that the next value is of kind k.
func (s *Scanner) expect(k Kind) error {
	got, err := s.Peek()
	if err != nil {
		return err
	}
	if got != k {
		return &SyntaxError{Msg: fmt.Sprintf("%s where a %s was expected", got, k), Offset: s.p.i}
	}
	return nil
}

// Skip reads the next value, whatever it is, and checks it.
func (s *Scanner) Skip() error {
	if _, err := s.Peek(); err != nil {
		return err
	}
	return s.p.skip(s.depth)
}

// Null reads a null.
func (s *Scanner) Null() error {
	if err := s.expect(Null); err != nil {
		return err
	}
	return s.p.literal("null")
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, error) {
	if err := s.expect(Bool); err != nil {
		return false, err
	}
	if s.p.b[s.p.i] == 't' {
		return true, s.p.literal("true")
	}
	return false, s.p.literal("false")
}

// Number reads a number and returns its literal, a slice of the input (IntLiteral and
// UintLiteral read it as an integer).
func (s *Scanner) Number() ([]byte, error) {
	if err := s.expect(Number); err != nil {
		return nil, err
	}
	return s.p.scanNumber()
}

// String reads a string and appends its decoded text to dst (as Parse decodes it), but
// only up to max bytes of dst in all: full is false if some of it was left out. The
// whole string is checked either way.
func (s *Scanner) String(dst []byte, max int) (_ []byte, full bool, _ error) {
	if err := s.expect(String); err != nil {
		return dst, false, err
	}
	return s.p.appendString(dst, max)
}

// enter starts an array or an object at depth s.depth+1.
func (s *Scanner) enter(k Kind) error {
	if err := s.expect(k); err != nil {
		return err
	}
	if s.depth >= MaxDepth {
		return &SyntaxError{Msg: fmt.Sprintf("nested deeper than %d", MaxDepth), Offset: s.p.i}
	}
	s.depth++
	s.p.i++ // { or [
	s.p.space()
	return nil
}

// member reads one member's or element's value with read, which may read it or not:
// what it leaves unread is skipped.
func (s *Scanner) member(read func() error) error {
	s.p.space()
	start := s.p.i
	if err := read(); err != nil {
		return err
	}
	if s.p.i == start {
		return s.Skip()
	}
	return nil
}

// Object reads an object and calls member with each key, in input order, decoded and
// cut to MaxKeyLen bytes; key is only valid until member reads the value (a nested
// object's keys take its place). member reads the value
// with one of the Scanner's methods, or leaves it to be skipped by reading nothing; an
// error of member stops the reading and is returned as it is.
func (s *Scanner) Object(member func(key []byte) error) error {
	if err := s.enter(Object); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	p := &s.p
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.fail("looking for beginning of object key string")
		}
		key, _, err := p.appendString(s.key[:0], MaxKeyLen)
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail("after object key")
		}
		p.i++
		if err := s.member(func() error { return member(key) }); err != nil {
			return err
		}
		if more, err := p.next('}', "after object key:value pair"); !more {
			return err
		}
	}
}

// Array reads an array and calls elem for each element with its index: elem reads it
// with one of the Scanner's methods, or leaves it to be skipped by reading nothing; an
// error of elem stops the reading and is returned as it is.
func (s *Scanner) Array(elem func(i int) error) error {
	if err := s.enter(Array); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	p := &s.p
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for i := 0; ; i++ {
		if err := s.member(func() error { return elem(i) }); err != nil {
			return err
		}
		if more, err := p.next(']', "after array element"); !more {
			return err
		}
	}
}

// End checks that nothing but white space follows the value read: an *ExtraError if
// something does.
func (s *Scanner) End() error {
	s.p.space()
	if s.p.i < len(s.p.b) {
		return &ExtraError{Offset: s.p.i}
	}
	return nil
}

// skip reads the value at p.i as value would, at depth, keeping nothing.
func (p *parser) skip(depth int) error {
	if p.i >= len(p.b) {
		return p.fail("")
	}
	switch c := p.b[p.i]; {
	case c == '{', c == '[':
		if depth >= MaxDepth {
			return &SyntaxError{Msg: fmt.Sprintf("nested deeper than %d", MaxDepth), Offset: p.i}
		}
		end, after := byte('}'), "after object key:value pair"
		if c == '[' {
			end, after = ']', "after array element"
		}
		p.i++
		p.space()
		if p.i < len(p.b) && p.b[p.i] == end {
			p.i++
			return nil
		}
		for {
			if c == '{' {
				if p.i >= len(p.b) || p.b[p.i] != '"' {
					return p.fail("looking for beginning of object key string")
				}
				if _, _, err := p.appendString(nil, 0); err != nil {
					return err
				}
				p.space()
				if p.i >= len(p.b) || p.b[p.i] != ':' {
					return p.fail("after object key")
				}
				p.i++
				p.space()
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.space()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				p.space()
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == end {
				p.i++
				return nil
			}
			return p.fail(after)
		}
	case c == '"':
		_, _, err := p.appendString(nil, 0)
		return err
	case c == '-' || isDigit(c):
		_, err := p.scanNumber()
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return p.fail("looking for beginning of value")
}

// UintLiteral returns the number literal lit (of Number) as an unsigned integer of at
// most hi; false if it has a sign, a fraction or an exponent, or is larger: what
// strconv.ParseUint and a range check say of a JSON number.
func UintLiteral(lit []byte, hi uint64) (uint64, bool) {
	if len(lit) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range lit {
		if !isDigit(c) {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, n <= hi
}

// IntLiteral returns the number literal lit (of Number) as an integer within [lo, hi];
// false if it has a fraction or an exponent, or is out of range: what strconv.ParseInt
// and a range check say of a JSON number.
func IntLiteral(lit []byte, lo, hi int64) (int64, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	u, ok := UintLiteral(lit, math.MaxUint64)
	var n int64
	switch {
	case !ok:
		return 0, false
	case neg && u == 1<<63:
		n = math.MinInt64
	case u >= 1<<63:
		return 0, false
	case neg:
		n = -int64(u)
	default:
		n = int64(u)
	}
	return n, n >= lo && n <= hi
}
