package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimalConfig = `{"server_url": "https://records.amos.example", "ca_file": "/system/etc/security/amos-ca.pem"}`

func TestParseConfigDefaults(t *testing.T) {
	c, err := Parse("amosd.json", []byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.ServerURL = "https://records.amos.example"
	want.CAFile = "/system/etc/security/amos-ca.pem"
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("got %+v\nwant %+v", *c, want)
	}
}

func TestSampleConfigs(t *testing.T) {
	for _, name := range []string{"amosd-handset.json", "amosd-dev.json"} {
		c, err := Load(filepath.Join("..", "..", "testdata", "config", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		t.Logf("%s: server %s, bus %s, sources %v", name, c.ServerURL, c.Bus, c.Sources)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		key  string // the key the error must name
		want string // a fragment of the message
		line int    // the line the error must name, 0 if none
	}{
		{"syntax error", "{\n  \"bus\": \"system\",\n  \"log\" \"auto\"\n}", "", "JSON syntax", 3},
		{"unexpected end", `{"bus": "system"`, "", "unexpected end", 1},
		{"empty file", ``, "", "empty file", 0},
		{"two values", minimalConfig + ` {}`, "", "more than one JSON value", 1},
		{"unknown key", `{"server_url": "https://x", "ca_file": "/ca", "colour": "blue"}`, "colour", "unknown key", 1},
		{"unknown nested key", `{"server_url": "https://x", "ca_file": "/ca", "sync": {"jitter": "1s"}}`, "jitter", "unknown key", 1},
		{"wrong type", `{"server_url": "https://x", "ca_file": "/ca", "consent_default": "yes"}`, "consent_default", "want bool", 1},
		{"negative uid", `{"server_url": "https://x", "ca_file": "/ca", "trusted_uids": [0, -1]}`, "trusted_uids", "want uint32", 1},
		{"bad duration", "{\"server_url\": \"https://x\", \"ca_file\": \"/ca\",\n \"sync\": {\"timeout\": \"30 seconds\"}}", "sync.timeout", `bad duration "30 seconds"`, 2},
		{"duration as number", `{"server_url": "https://x", "ca_file": "/ca", "sync": {"max_backoff": 60}}`, "sync.max_backoff", "not a duration string", 1},
		{"relative data_dir", `{"server_url": "https://x", "ca_file": "/ca", "data_dir": "data/amos"}`, "data_dir", "not an absolute path", 0},
		{"relative key_dir", `{"server_url": "https://x", "ca_file": "/ca", "key_dir": "./persist"}`, "key_dir", "not an absolute path", 0},
		{"no server_url", `{}`, "server_url", "missing", 0},
		{"https without ca_file", `{"server_url": "https://records.amos.example"}`, "ca_file", "needs the CA bundle", 0},
		{"http without allow_insecure_http", `{"server_url": "http://127.0.0.1:8080"}`, "server_url", "plain http", 0},
		{"ftp", `{"server_url": "ftp://x", "ca_file": "/ca"}`, "server_url", `scheme "ftp"`, 0},
		{"no host", `{"server_url": "https://", "ca_file": "/ca"}`, "server_url", "no host", 0},
		{"bad bus", `{"server_url": "https://x", "ca_file": "/ca", "bus": "sytem"}`, "bus", `"sytem"`, 0},
		{"unknown source", `{"server_url": "https://x", "ca_file": "/ca", "sources": ["evdev", "upower"]}`, "sources", `unknown source "upower"`, 0},
		{"source twice", `{"server_url": "https://x", "ca_file": "/ca", "sources": ["evdev", "evdev"]}`, "sources", "twice", 0},
		{"utc offset", `{"server_url": "https://x", "ca_file": "/ca", "utc_offset_minutes": 900}`, "utc_offset_minutes", "-720..840", 0},
		{"batch records", `{"server_url": "https://x", "ca_file": "/ca", "sync": {"batch_records": 257}}`, "sync.batch_records", "1..256", 0},
		{"max below initial", `{"server_url": "https://x", "ca_file": "/ca", "sync": {"initial_backoff": "1m", "max_backoff": "30s"}}`, "sync.max_backoff", "less than initial_backoff", 0},
		{"zero timeout", `{"server_url": "https://x", "ca_file": "/ca", "sync": {"timeout": "0s"}}`, "sync.timeout", "more than 0", 0},
		{"negative spread", `{"server_url": "https://x", "ca_file": "/ca", "sync": {"spread": "-1s"}}`, "sync.spread", "want 0 to 12h", 0},
		{"spread over 12h", `{"server_url": "https://x", "ca_file": "/ca", "sync": {"spread": "13h"}}`, "sync.spread", "want 0 to 12h", 0},
		{"store too small", `{"server_url": "https://x", "ca_file": "/ca", "max_store_bytes": 1000}`, "max_store_bytes", "65536", 0},
		{"bad dns server", `{"server_url": "https://x", "ca_file": "/ca", "dns_servers": ["dns.google"]}`, "dns_servers", "not an IP", 0},
		{"bad log", `{"server_url": "https://x", "ca_file": "/ca", "log": "syslog"}`, "log", `"syslog"`, 0},
		{"key not an object", `{"server_url": "https://x", "ca_file": "/ca", "key": "file"}`, "key", "want agent.KeyConfig, got JSON string", 1},
		{"unknown key in key", `{"server_url": "https://x", "ca_file": "/ca", "key": {"path": "/k"}}`, "path", "unknown key", 1},
		{"key backend", `{"server_url": "https://x", "ca_file": "/ca", "key": {"backend": "tee"}}`, "key.backend", `"tee", want "file" or "keystore"`, 0},
		{"key type", `{"server_url": "https://x", "ca_file": "/ca", "key": {"type": "rsa"}}`, "key.type", `"rsa", want "ed25519" or "p256"`, 0},
		{"empty key type", `{"server_url": "https://x", "ca_file": "/ca", "key": {"backend": "keystore", "type": ""}}`, "key.type", `"", want "ed25519" or "p256"`, 0},
		{"key alias", `{"server_url": "https://x", "ca_file": "/ca", "key": {"backend": "keystore", "alias": "../device"}}`, "key.alias", `"../device"`, 0},
		{"empty key alias", `{"server_url": "https://x", "ca_file": "/ca", "key": {"alias": ""}}`, "key.alias", `""`, 0},
		{"bad glob", `{"server_url": "https://x", "ca_file": "/ca", "evdev_glob": "/dev/input/[event*"}`, "evdev_glob", "syntax error", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/etc/amosd.json", []byte(tc.json))
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want a *Error", err)
			}
			msg := err.Error()
			if ce.Key != tc.key || !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "config /etc/amosd.json") {
				t.Fatalf("%q: want key %q and %q", msg, tc.key, tc.want)
			}
			if tc.line != 0 && ce.Line != tc.line {
				t.Fatalf("%q: line %d, want %d", msg, ce.Line, tc.line)
			}
			t.Log(msg)
		})
	}
}

// TestKeyConfig: the "key" object's defaults and the type each backend takes.
func TestKeyConfig(t *testing.T) {
	for _, tc := range []struct {
		key                 string // the "key" object, "" for none
		backend, typ, alias string
	}{
		{"", "file", "ed25519", "amosd-device"},
		{`{}`, "file", "ed25519", "amosd-device"},
		{`null`, "file", "ed25519", "amosd-device"},
		{`{"type": "p256"}`, "file", "p256", "amosd-device"},
		{`{"backend": "file", "type": "ed25519"}`, "file", "ed25519", "amosd-device"},
		{`{"backend": "keystore"}`, "keystore", "p256", "amosd-device"},
		{`{"backend": "keystore", "type": "p256", "alias": "amos.key_2"}`, "keystore", "p256", "amos.key_2"},
		{`{"backend": "keystore", "type": "ed25519"}`, "keystore", "p256", "amosd-device"}, // type is the file key's
		{`{"backend": "keystore", "type": null, "alias": null}`, "keystore", "p256", "amosd-device"},
	} {
		js := `{"server_url": "https://x", "ca_file": "/ca"`
		if tc.key != "" {
			js += `, "key": ` + tc.key
		}
		c, err := Parse("amosd.json", []byte(js+"}"))
		if err != nil {
			t.Errorf("%s: %v", tc.key, err)
			continue
		}
		if c.Key.Backend != tc.backend || c.Key.EffectiveType() != tc.typ || c.Key.Alias != tc.alias {
			t.Errorf("%s: %+v (type %s), want %s %s %s", tc.key, c.Key, c.Key.EffectiveType(), tc.backend, tc.typ, tc.alias)
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.json")
	_, err := Load(path)
	if !errors.Is(err, ErrConfig) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
	os.WriteFile(path, []byte(`{"server_url": "http://127.0.0.1:1", "allow_insecure_http": true, "sync": {"timeout": "5s"}}`), 0o644)
	c, err := Load(path)
	if err != nil || time.Duration(c.Sync.Timeout) != 5*time.Second {
		t.Fatalf("%v %+v", err, c)
	}
}

// FuzzParseConfig: the configuration decoder never panics, every refusal is a
// *Error, and an accepted configuration survives a JSON round trip.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimalConfig))
	for _, name := range []string{"amosd-handset.json", "amosd-dev.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", name))
		if err != nil {
			f.Fatal(err) // a seed that went missing would fuzz less without a word
		}
		f.Add(b)
	}
	f.Add([]byte(`{"server_url": "https://x", "ca_file": "/ca", "sync": {"timeout": "1s"}}`))
	f.Add([]byte(`{"server_url": "https://x", "ca_file": "/ca", "key": {"backend": "keystore", "alias": "k"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.json", b)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
				t.Fatalf("refusal of another type: %v", err)
			}
			return
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse("again.json", again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, c, c2)
		}
	})
}
