package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"amos.example/amosd/internal/jsonconfig/jsondecode"
)

// FuzzConfigMatchesEncodingJSON: the hand-written decoder accepts what encoding/json
// (through jsondecode.Decode, which amosd used before) accepts, with the same result,
// except keys in another case, which encoding/json matches and amosd refuses, and null
// elements of lists, which encoding/json ignores (keeping the default's element), and a
// stray '}' or ']' after the object, which jsondecode.Decode lets through (Decoder.More
// reports false before them).
func FuzzConfigMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(minimalConfig))
	for _, name := range []string{"amosd-handset.json", "amosd-dev.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", name))
		if err != nil {
			f.Fatal(err) // a seed that went missing would fuzz less without a word
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"sync": {"timeout": null}}`, `{"sources": null, "trusted_uids": [1, null]}`, `{"sync": null}`, `null`, `[]`,
		`{"SERVER_URL": "x"}`, `{"sync": {"timeout": "1s"}, "sync": {"max_backoff": "2h"}}`, `{"utc_offset_minutes": -0}`,
		`{"max_store_bytes": 1e6}`, `{"key": {"backend": "keystore", "type": "p256"}}`, `{"key": null}`, `{"key": {"Alias": "x"}}`, `{"trusted_uids": [4294967296]}`, `{} {}`, `{"log": "\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mine := Default()
		errMine := decodeConfig("fuzz.json", b, &mine)
		ref := Default()
		errRef := jsondecode.Decode("fuzz.json", b, &ref, ErrConfig)
		var ce *Error
		if errMine != nil && (!errors.As(errMine, &ce) || !errors.Is(errMine, ErrConfig)) {
			t.Fatalf("error of another type: %v", errMine)
		}
		switch {
		case errMine == nil && errRef == nil:
			if !reflect.DeepEqual(mine, ref) {
				t.Fatalf("%q:\n got %+v\nwant %+v", b, mine, ref)
			}
		case errMine == nil:
			t.Fatalf("%q: accepted, encoding/json refuses: %v", b, errRef)
		case errRef == nil:
			strayClose := ce.Problem == "more than one JSON value" && strings.ContainsAny(strings.TrimLeft(string(b[jsonOffset(b, ce):]), " \t\r\n")[:1], "}]")
			if (ce.Problem != "unknown key" || !knownKeyFold(ce.Key)) && !strings.HasSuffix(ce.Problem, "got JSON null") && !strayClose {
				t.Fatalf("%q: refused (%v), encoding/json accepts", b, errMine)
			}
		}
	})
}

// knownKeyFold reports whether key is a configuration key in another case. The keys
// are the json tags of Config and its nested structs, so that a new key is known here
// without a list to keep up to date (sync.spread once was not).
func knownKeyFold(key string) bool {
	var keys []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				keys = append(keys, name)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(Config{}))
	for _, k := range keys {
		if strings.EqualFold(k, key) && k != key {
			return true
		}
	}
	return false
}

// jsonOffset turns the line and column of a Error back into an offset of b.
func jsonOffset(b []byte, ce *Error) int {
	off := 0
	for line := 1; line < ce.Line; line++ {
		off += strings.IndexByte(string(b[off:]), '\n') + 1
	}
	return off + ce.Column - 1
}
