package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"

	"amos.example/amosd/internal/jsonconfig"
	"amos.example/amosd/internal/jsonlite"
)

// decodeConfig lays the JSON object b over c, which holds the defaults, with the rules
// encoding/json follows for a struct (a key absent or null keeps the default, an array
// replaces the list) and stricter ones of its own: keys match exactly, unknown keys and
// wrong types are refused, and only one JSON value may be in the file. Errors name the
// file, the key and the line and column. (Written out by hand, without encoding/json
// and reflection: see internal/jsonlite.)
func decodeConfig(name string, b []byte, c *Config) error {
	fail := func(key string, off int, problem string) error {
		e := &Error{File: name, Key: key, Problem: problem, Kind: ErrConfig}
		if off >= 0 {
			e.Line, e.Column = jsonconfig.LineCol(b, off)
		}
		return e
	}
	if len(bytes.Trim(b, " \t\r\n")) == 0 {
		return fail("", -1, "empty file: want a JSON object")
	}
	v, err := jsonlite.Parse(b)
	var syn *jsonlite.SyntaxError
	var extra *jsonlite.ExtraError
	switch {
	case errors.As(err, &syn) && syn.Offset >= len(b):
		return fail("", len(b), "JSON syntax: unexpected end of file")
	case errors.As(err, &syn):
		return fail("", syn.Offset, "JSON syntax: "+syn.Msg)
	case err != nil && !errors.As(err, &extra):
		return fail("", -1, err.Error())
	}
	d := &configDecoder{fail: fail}
	if derr := d.object(v, "", "agent.Config", configFields(c)); derr != nil {
		return derr
	}
	if extra != nil {
		return fail("", extra.Offset, "more than one JSON value")
	}
	return nil
}

// configField decodes one key's value into its field of the Config.
type configField struct {
	key    string
	decode func(d *configDecoder, v *jsonlite.Value, path string) error
}

func configFields(c *Config) []configField {
	return []configField{
		{"data_dir", stringField(&c.DataDir)},
		{"key_dir", stringField(&c.KeyDir)},
		{"key", func(d *configDecoder, v *jsonlite.Value, path string) error {
			return d.object(v, path, "agent.KeyConfig", []configField{
				{"backend", stringField(&c.Key.Backend)},
				{"type", stringField(&c.Key.Type)},
				{"alias", stringField(&c.Key.Alias)},
			})
		}},
		{"server_url", stringField(&c.ServerURL)},
		{"ca_file", stringField(&c.CAFile)},
		{"allow_insecure_http", boolField(&c.AllowInsecureHTTP)},
		{"bus", stringField(&c.Bus)},
		{"sources", stringsField(&c.Sources)},
		{"evdev_glob", stringField(&c.EvdevGlob)},
		{"utc_offset_minutes", intField(&c.UTCOffsetMinutes)},
		{"consent_default", boolField(&c.ConsentDefault)},
		{"trusted_uids", uidsField(&c.TrustedUIDs)},
		{"status_uids", uidsField(&c.StatusUIDs)},
		{"sync", func(d *configDecoder, v *jsonlite.Value, path string) error {
			return d.object(v, path, "agent.SyncConfig", []configField{
				{"initial_backoff", durationField(&c.Sync.InitialBackoff)},
				{"max_backoff", durationField(&c.Sync.MaxBackoff)},
				{"batch_records", intField(&c.Sync.BatchRecords)},
				{"timeout", durationField(&c.Sync.Timeout)},
				{"spread", durationField(&c.Sync.Spread)},
			})
		}},
		{"max_store_bytes", int64Field(&c.MaxStoreBytes)},
		{"dns_servers", stringsField(&c.DNSServers)},
		{"log", stringField(&c.Log)},
	}
}

type configDecoder struct {
	fail func(key string, off int, problem string) error
}

// wrongType is the error for a value of the wrong JSON type or range.
func (d *configDecoder) wrongType(path, want string, v *jsonlite.Value) error {
	return d.fail(path, v.Off, fmt.Sprintf("want %s, got JSON %s", want, v.Describe()))
}

// object decodes v, an object (or null: nothing changes), key by key with fields. path
// is the dotted path of v ("" at the top); an unknown key is named alone, as
// encoding/json names it.
func (d *configDecoder) object(v *jsonlite.Value, path, typeName string, fields []configField) error {
	switch v.Kind {
	case jsonlite.Null:
		return nil
	case jsonlite.Object:
	default:
		return d.wrongType(path, typeName, v)
	}
	for i := range v.Members {
		m := &v.Members[i]
		var field *configField
		for k := range fields {
			if fields[k].key == m.Key {
				field = &fields[k]
				break
			}
		}
		if field == nil {
			return d.fail(m.Key, m.KeyOff, "unknown key")
		}
		sub := m.Key
		if path != "" {
			sub = path + "." + m.Key
		}
		if err := field.decode(d, &m.Value, sub); err != nil {
			return err
		}
	}
	return nil
}

func stringField(p *string) func(*configDecoder, *jsonlite.Value, string) error {
	return func(d *configDecoder, v *jsonlite.Value, path string) error {
		switch v.Kind {
		case jsonlite.Null:
		case jsonlite.String:
			*p = v.Str
		default:
			return d.wrongType(path, "string", v)
		}
		return nil
	}
}

func boolField(p *bool) func(*configDecoder, *jsonlite.Value, string) error {
	return func(d *configDecoder, v *jsonlite.Value, path string) error {
		switch v.Kind {
		case jsonlite.Null:
		case jsonlite.Bool:
			*p = v.Bool
		default:
			return d.wrongType(path, "bool", v)
		}
		return nil
	}
}

func intField(p *int) func(*configDecoder, *jsonlite.Value, string) error {
	return func(d *configDecoder, v *jsonlite.Value, path string) error {
		if v.Kind == jsonlite.Null {
			return nil
		}
		n, ok := v.Int(math.MinInt, math.MaxInt)
		if !ok {
			return d.wrongType(path, "int", v)
		}
		*p = int(n)
		return nil
	}
}

func int64Field(p *int64) func(*configDecoder, *jsonlite.Value, string) error {
	return func(d *configDecoder, v *jsonlite.Value, path string) error {
		if v.Kind == jsonlite.Null {
			return nil
		}
		n, ok := v.Int(math.MinInt64, math.MaxInt64)
		if !ok {
			return d.wrongType(path, "int64", v)
		}
		*p = n
		return nil
	}
}

// stringsField decodes an array of strings; null makes the list nil, as encoding/json
// does. A null element is refused (encoding/json kept the default's element).
func stringsField(p *[]string) func(*configDecoder, *jsonlite.Value, string) error {
	return listField(p, "[]string", "string", func(e *jsonlite.Value) (string, bool) {
		return e.Str, e.Kind == jsonlite.String
	})
}

// uidsField decodes an array of uids, as stringsField does strings.
func uidsField(p *[]uint32) func(*configDecoder, *jsonlite.Value, string) error {
	return listField(p, "[]uint32", "uint32", func(e *jsonlite.Value) (uint32, bool) {
		n, ok := e.Uint(math.MaxUint32)
		return uint32(n), ok
	})
}

// listField decodes an array whose elements elem accepts; null makes the list nil.
func listField[T any](p *[]T, listType, elemType string, elem func(*jsonlite.Value) (T, bool)) func(*configDecoder, *jsonlite.Value, string) error {
	return func(d *configDecoder, v *jsonlite.Value, path string) error {
		switch v.Kind {
		case jsonlite.Null:
			*p = nil
			return nil
		case jsonlite.Array:
		default:
			return d.wrongType(path, listType, v)
		}
		out := make([]T, len(v.Elems))
		for i := range v.Elems {
			x, ok := elem(&v.Elems[i])
			if !ok {
				return d.wrongType(path, elemType, &v.Elems[i])
			}
			out[i] = x
		}
		*p = out
		return nil
	}
}

// durationField decodes a Go duration string. Null is the empty string, as
// encoding/json hands it to Duration.UnmarshalJSON: a bad duration.
func durationField(p *Duration) func(*configDecoder, *jsonlite.Value, string) error {
	return func(d *configDecoder, v *jsonlite.Value, path string) error {
		dur, problem := parseDuration(v)
		if problem != "" {
			return d.fail(path, v.Off, problem)
		}
		*p = dur
		return nil
	}
}

// parseDuration reads a duration value; problem says what is wrong with it, "" if
// nothing.
func parseDuration(v *jsonlite.Value) (Duration, string) {
	switch v.Kind {
	case jsonlite.String, jsonlite.Null:
	default:
		raw := map[jsonlite.Kind]string{jsonlite.Number: v.Str, jsonlite.Bool: fmt.Sprint(v.Bool), jsonlite.Array: "an array", jsonlite.Object: "an object"}[v.Kind]
		return 0, fmt.Sprintf("%s is not a duration string such as \"30s\"", raw)
	}
	t, err := time.ParseDuration(v.Str)
	if err != nil {
		return 0, fmt.Sprintf("bad duration %q: want a number and a unit such as \"30s\" or \"6h\"", v.Str)
	}
	return Duration(t), ""
}
