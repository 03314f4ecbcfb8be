package errclass

import (
	"errors"
	"io"
	"testing"
)

func TestNew(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	for _, tc := range []struct {
		name      string
		err       error
		msg       string
		is, isNot []error
	}{
		{"sentinels only", New(nil, []error{a, b}, "x %d", 1), "x 1", []error{a, b}, []error{io.EOF}},
		{"with a cause", New(io.EOF, []error{a}, "reading"), "reading: EOF", []error{a, io.EOF}, []error{b}},
		{"the cause says it", New(io.EOF, []error{b}, ""), "EOF", []error{b, io.EOF}, []error{a}},
	} {
		if tc.err.Error() != tc.msg {
			t.Errorf("%s: %q, want %q", tc.name, tc.err, tc.msg)
		}
		for _, s := range tc.is {
			if !errors.Is(tc.err, s) {
				t.Errorf("%s: does not match %v", tc.name, s)
			}
		}
		for _, s := range tc.isNot {
			if errors.Is(tc.err, s) {
				t.Errorf("%s: matches %v", tc.name, s)
			}
		}
	}
	// Unwrap never lets a caller's append reach the shared sentinel list.
	list := []error{a, b}
	e := New(io.EOF, list[:1], "").(*Error)
	_ = append(e.Unwrap(), io.ErrClosedPipe)
	if list[1] != b {
		t.Error("Unwrap wrote into the sentinels' backing array")
	}
}
