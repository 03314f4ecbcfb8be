// Package jsondecode decodes JSON configuration files into structs with encoding/json,
// strictly, and reports each problem as a *jsonconfig.Error with the file, the key and,
// for syntax, the line and column. The collector uses it; amosd does not link it.
package jsondecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"amos.example/amosd/internal/jsonconfig"
)

// Decode decodes the single JSON object b into v, which holds the defaults: unknown
// keys, wrong types, trailing values and syntax errors are refused as *Error wrapping
// kind. For the types in selfDescribing, the Value of the *json.UnmarshalTypeError
// that their UnmarshalJSON returns is the whole problem (a bad duration, say).
func Decode(name string, b []byte, v any, kind error, selfDescribing ...reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	fail := func(key string, off int64, problem string) error {
		e := &jsonconfig.Error{File: name, Key: key, Problem: problem, Kind: kind}
		if off >= 0 {
			e.Line, e.Column = jsonconfig.LineCol(b, int(off))
		}
		return e
	}
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return fail("", dec.InputOffset(), "more than one JSON value")
		}
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fail("", syn.Offset, "JSON syntax: "+syn.Error())
	case errors.As(err, &typ):
		for _, t := range selfDescribing {
			if typ.Type == t {
				return fail(typ.Field, dec.InputOffset(), typ.Value)
			}
		}
		return fail(typ.Field, typ.Offset, fmt.Sprintf("want %s, got JSON %s", typ.Type, typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		off := dec.InputOffset() // past the key's value: point at the key itself
		if i := bytes.LastIndex(b[:min(off, int64(len(b)))], []byte(`"`+key+`"`)); i >= 0 {
			off = int64(i)
		}
		return fail(key, off, "unknown key")
	case errors.Is(err, io.EOF):
		return fail("", -1, "empty file: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fail("", int64(len(b)), "JSON syntax: unexpected end of file")
	}
	return fail("", dec.InputOffset(), err.Error())
}
