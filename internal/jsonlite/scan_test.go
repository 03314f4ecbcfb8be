package jsonlite

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Ways of reading a value with a Scanner.
const (
	readAll     = iota // every value, keys and all
	skipAll            // the top value with Skip
	leaveScalar        // arrays and objects read, every other value left unread (skipped)
)

// scan reads a value with s as Parse would build it, in one of the ways above; a value
// left unread is a Null (the top value, which nothing would skip, is skipped).
func scan(t *testing.T, s *Scanner, how int, top bool) (Value, error) {
	k, err := s.Peek()
	if err != nil {
		return Value{}, err
	}
	v := Value{Kind: k, Off: s.Offset()}
	if how == leaveScalar && k != Array && k != Object {
		if top {
			return Value{}, s.Skip()
		}
		return Value{}, nil
	}
	switch k {
	case Null:
		err = s.Null()
	case Bool:
		v.Bool, err = s.Bool()
	case Number:
		var lit []byte
		lit, err = s.Number()
		v.Str = string(lit)
	case String:
		var b []byte
		var full bool
		b, full, err = s.String(nil, -1)
		if err == nil && !full {
			t.Fatalf("string at %d not full without a bound", v.Off)
		}
		v.Str = string(b)
	case Array:
		v.Elems = []Value{}
		err = s.Array(func(i int) error {
			if i != len(v.Elems) {
				t.Fatalf("element %d after %d", i, len(v.Elems))
			}
			e, err := scan(t, s, how, false)
			v.Elems = append(v.Elems, e)
			return err
		})
		if len(v.Elems) == 0 {
			v.Elems = []Value{} // Parse's empty array
		}
	case Object:
		err = s.Object(func(key []byte) error {
			m := Member{Key: string(key)}
			var err error
			m.Value, err = scan(t, s, how, false)
			v.Members = append(v.Members, m)
			return err
		})
	}
	return v, err
}

// normalize makes v what a Scanner reading it in the way how gives: keys cut to
// MaxKeyLen, key offsets dropped, and values left unread as Null.
func normalize(v Value, how int) Value {
	switch {
	case how == leaveScalar && v.Kind != Array && v.Kind != Object:
		return Value{}
	case v.Kind == Array:
		elems := make([]Value, len(v.Elems))
		for i := range v.Elems {
			elems[i] = normalize(v.Elems[i], how)
		}
		v.Elems = elems
	case v.Kind == Object:
		members := make([]Member, len(v.Members))
		for i, m := range v.Members {
			if len(m.Key) > MaxKeyLen {
				m.Key = m.Key[:MaxKeyLen]
			}
			members[i] = Member{Key: m.Key, Value: normalize(m.Value, how)}
		}
		if len(members) == 0 {
			members = nil
		}
		v.Members = members
	}
	return v
}

// checkScanner: a Scanner reading b in each way fails where Parse fails, with the same
// error, and otherwise reads the value Parse returned.
func checkScanner(t *testing.T, b []byte, parsed *Value, perr error) {
	t.Helper()
	for _, how := range []int{readAll, skipAll, leaveScalar} {
		s := NewScanner(b)
		var got Value
		var err error
		if how == skipAll {
			err = s.Skip()
		} else {
			got, err = scan(t, s, how, true)
		}
		if err == nil {
			err = s.End()
		}
		var se1, se2 *SyntaxError
		var ex1, ex2 *ExtraError
		switch {
		case errors.As(perr, &se1):
			if !errors.As(err, &se2) || *se1 != *se2 {
				t.Fatalf("%q, way %d: Scanner error %v, Parse %v at %d", b, how, err, se1, se1.Offset)
			}
			continue
		case errors.As(perr, &ex1):
			if !errors.As(err, &ex2) || *ex1 != *ex2 {
				t.Fatalf("%q, way %d: Scanner error %v, Parse %v at %d", b, how, err, ex1, ex1.Offset)
			}
		case err != nil:
			t.Fatalf("%q, way %d: Scanner error %v, Parse none", b, how, err)
		}
		if how != skipAll {
			if want := normalize(*parsed, how); !reflect.DeepEqual(got, want) {
				t.Fatalf("%q, way %d: Scanner read\n%+v\nParse\n%+v", b, how, got, want)
			}
		}
	}
}

func TestScannerCuts(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+10)
	s := NewScanner([]byte(`{"` + long + `":"h\u00e9llo w\u00f6rld"}`))
	var keys []string
	var texts []string
	err := s.Object(func(key []byte) error {
		keys = append(keys, string(key))
		for _, max := range []int{0, 1, 2, 3, 100} {
			save := *s
			b, full, err := s.String(nil, max)
			if err != nil {
				return err
			}
			if want := max >= len("héllo wörld"); full != want {
				t.Errorf("String(max %d) full %v", max, full)
			}
			texts = append(texts, string(b))
			if max != 100 {
				*s = save
			}
		}
		return nil
	})
	if err != nil || s.End() != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != long[:MaxKeyLen] {
		t.Errorf("keys %q", keys)
	}
	if want := []string{"", "h", "h\xc3", "hé", "héllo wörld"}; !reflect.DeepEqual(texts, want) {
		t.Errorf("texts %q, want %q", texts, want)
	}
	// A value of another kind than asked is an error, not a panic.
	for _, read := range []func(*Scanner) error{
		func(s *Scanner) error { return s.Null() },
		func(s *Scanner) error { _, err := s.Bool(); return err },
		func(s *Scanner) error { _, err := s.Number(); return err },
		func(s *Scanner) error { _, _, err := s.String(nil, -1); return err },
		func(s *Scanner) error { return s.Array(func(int) error { return nil }) },
	} {
		if err := read(NewScanner([]byte(`{}`))); err == nil || !strings.Contains(err.Error(), "object where a") {
			t.Errorf("wrong kind: %v", err)
		}
	}
	if err := NewScanner([]byte(`[]`)).Object(func([]byte) error { return nil }); err == nil {
		t.Error("an array read as an object")
	}
	// An error of a callback comes back as it is, and stops the reading.
	stop := errors.New("stop")
	calls := 0
	err = NewScanner([]byte(`[1,2,x]`)).Array(func(int) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("callback error: %v after %d calls", err, calls)
	}
}

// TestScannerAllocatesNothing: reading an answer-shaped value, keys and a bounded
// string into a buffer of the caller, skipping the rest, allocates nothing per value.
func TestScannerAllocatesNothing(t *testing.T) {
	b := []byte(`{"results":[` + strings.Repeat(`{"k\u00e9y":"v\u00e9","x":[1,{"y":"z"}],"n":12345},`, 1000) + `{}],"tail":"` + strings.Repeat("s", 10000) + `"}`)
	var buf [16]byte
	var s Scanner
	var elem func(int) error
	member := func(key []byte) error {
		switch string(key) {
		case "results":
			return s.Array(elem)
		case "kéy":
			_, _, err := s.String(buf[:0], len(buf))
			return err
		case "n":
			lit, err := s.Number()
			if n, ok := IntLiteral(lit, 0, math.MaxInt64); err == nil && (!ok || n != 12345) {
				t.Errorf("n %s", lit)
			}
			return err
		}
		return nil
	}
	elem = func(int) error { return s.Object(member) }
	allocs := testing.AllocsPerRun(10, func() {
		s = Scanner{p: parser{b: b}}
		if err := s.Object(member); err != nil {
			t.Fatal(err)
		}
		if err := s.End(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations reading %d bytes", allocs, len(b))
	}
}

func TestIntLiterals(t *testing.T) {
	for _, lit := range []string{"0", "-0", "5", "-5", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "18446744073709551615", "18446744073709551616", "99999999999999999999999", "1.5", "1e3", "-", ""} {
		wantI, errI := strconv.ParseInt(lit, 10, 64)
		for _, r := range [][2]int64{{math.MinInt64, math.MaxInt64}, {0, 10}, {-5, 5}} {
			n, ok := IntLiteral([]byte(lit), r[0], r[1])
			want := errI == nil && wantI >= r[0] && wantI <= r[1]
			if ok != want || ok && n != wantI {
				t.Errorf("IntLiteral(%q, %d, %d) = %d, %v; strconv %d, %v", lit, r[0], r[1], n, ok, wantI, errI)
			}
		}
		wantU, errU := strconv.ParseUint(lit, 10, 64)
		for _, hi := range []uint64{math.MaxUint64, math.MaxUint32, 5} {
			n, ok := UintLiteral([]byte(lit), hi)
			want := errU == nil && wantU <= hi
			if ok != want || ok && n != wantU {
				t.Errorf("UintLiteral(%q, %d) = %d, %v; strconv %d, %v", lit, hi, n, ok, wantU, errU)
			}
		}
	}
}
