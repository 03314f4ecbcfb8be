package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"amos.example/amosd/internal/jsonconfig"
	"amos.example/amosd/internal/jsonlite"
	"amos.example/amosd/proof"
)

// Config is amosd's configuration file (docs/config.md).
type Config struct {
	DataDir           string     `json:"data_dir"`
	KeyDir            string     `json:"key_dir"`
	Key               KeyConfig  `json:"key"`
	ServerURL         string     `json:"server_url"`
	CAFile            string     `json:"ca_file"`
	AllowInsecureHTTP bool       `json:"allow_insecure_http"`
	Bus               string     `json:"bus"`
	Sources           []string   `json:"sources"`
	EvdevGlob         string     `json:"evdev_glob"`
	UTCOffsetMinutes  int        `json:"utc_offset_minutes"`
	ConsentDefault    bool       `json:"consent_default"`
	TrustedUIDs       []uint32   `json:"trusted_uids"`
	StatusUIDs        []uint32   `json:"status_uids"`
	Sync              SyncConfig `json:"sync"`
	MaxStoreBytes     int64      `json:"max_store_bytes"`
	DNSServers        []string   `json:"dns_servers"`
	Log               string     `json:"log"`
}

// DefaultSyncSpread is sync.spread when the configuration does not set it.
const DefaultSyncSpread = 2 * time.Hour

// SyncConfig is the "sync" object of the configuration.
type SyncConfig struct {
	InitialBackoff Duration `json:"initial_backoff"`
	MaxBackoff     Duration `json:"max_backoff"`
	BatchRecords   int      `json:"batch_records"`
	Timeout        Duration `json:"timeout"`
	// Spread: the record that the midnight rollover mints is uploaded at a random
	// moment within it, not at once: every phone of a zone mints at the same
	// midnight, and the collector must not see them all in the same minute.
	Spread Duration `json:"spread"`
}

// Key backends and types of the "key" object (docs/config.md).
const (
	KeyBackendFile     = "file"     // a software key in key_dir
	KeyBackendKeystore = "keystore" // the platform's hardware keystore, com.amos.Keystore1
	KeyTypeEd25519     = "ed25519"
	KeyTypeP256        = "p256"
	DefaultKeyAlias    = "amosd-device"
)

// KeyConfig is the "key" object of the configuration: where the device key lives.
type KeyConfig struct {
	// Backend is KeyBackendFile or KeyBackendKeystore.
	Backend string `json:"backend"`
	// Type is KeyTypeEd25519 or KeyTypeP256, the type of a file key; a keystore key is
	// always P-256, whatever Type says (see EffectiveType).
	Type string `json:"type"`
	// Alias names the key in the keystore.
	Alias string `json:"alias"`
}

// EffectiveType is the key's type: P-256 for the keystore backend, Type for the file
// backend.
func (k KeyConfig) EffectiveType() string {
	if k.Backend == KeyBackendKeystore {
		return KeyTypeP256
	}
	return k.Type
}

// Duration is a time.Duration written as a Go duration string ("30s", "6h").
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string, for encoding/json users of Config (the
// tests); amosd itself reads its configuration with decodeConfig.
func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := jsonlite.Parse(b)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	dur, problem := parseDuration(v)
	if problem != "" {
		return errors.New(problem)
	}
	*d = dur
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return jsonlite.AppendString(nil, time.Duration(d).String()), nil
}

// Source names of docs/eligibility.md.
const (
	SourceAmosPower = "amos-power"
	SourceLogind    = "logind"
	SourceEvdev     = "evdev"
)

// DefaultPath is where firmware installs the configuration (docs/dbus-api.md).
const DefaultPath = "/system/etc/amosd.json"

// Default returns the configuration every key of a file is laid over.
func Default() Config {
	return Config{
		DataDir:          "/data/amos",
		KeyDir:           "/persist/amos",
		Key:              KeyConfig{Backend: KeyBackendFile, Type: KeyTypeEd25519, Alias: DefaultKeyAlias},
		Bus:              "system",
		Sources:          []string{SourceAmosPower, SourceLogind, SourceEvdev},
		EvdevGlob:        "/dev/input/event*",
		UTCOffsetMinutes: 480,
		TrustedUIDs:      []uint32{0, 1000},
		StatusUIDs:       []uint32{2000},
		Sync: SyncConfig{
			InitialBackoff: Duration(30 * time.Second),
			MaxBackoff:     Duration(6 * time.Hour),
			BatchRecords:   proof.MaxBatchRecords,
			Timeout:        Duration(30 * time.Second),
			Spread:         Duration(DefaultSyncSpread),
		},
		MaxStoreBytes: 8 << 20,
		DNSServers:    []string{},
		Log:           "auto",
	}
}

// ErrConfig is wrapped by every configuration error; the command line exits 2 on it.
var ErrConfig = errors.New("configuration error")

// Error names the file, the key and what is wrong with it; it wraps ErrConfig.
type Error = jsonconfig.Error

// Load reads and checks the configuration file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problem: err.Error(), Kind: ErrConfig, Cause: err}
	}
	return Parse(path, b)
}

// Parse decodes and checks a configuration; name is used in errors. Unknown keys,
// wrong types and invalid values are refused, each naming the key.
func Parse(name string, b []byte) (*Config, error) {
	c := Default()
	if err := decodeConfig(name, b, &c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		err.File = name
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() *Error {
	bad := func(key, format string, args ...any) *Error {
		return &Error{Key: key, Problem: fmt.Sprintf(format, args...), Kind: ErrConfig}
	}
	for _, p := range []struct{ key, val string }{{"data_dir", c.DataDir}, {"key_dir", c.KeyDir}} {
		if !filepath.IsAbs(p.val) {
			return bad(p.key, "%q is not an absolute path", p.val)
		}
	}
	if err := c.Key.validate(bad); err != nil {
		return err
	}
	if c.ServerURL == "" {
		return bad("server_url", "missing: the collector's URL, such as \"https://records.amos.example\"")
	}
	u, err := url.Parse(c.ServerURL)
	switch {
	case err != nil:
		return bad("server_url", "%q is not a URL: %v", c.ServerURL, err)
	case u.Host == "":
		return bad("server_url", "%q has no host", c.ServerURL)
	case u.Scheme == "http" && !c.AllowInsecureHTTP:
		return bad("server_url", "%q is plain http: use https, or set allow_insecure_http (tests only)", c.ServerURL)
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("server_url", "%q: scheme %q, want https", c.ServerURL, u.Scheme)
	case u.Scheme == "https" && c.CAFile == "":
		return bad("ca_file", "missing: an https server_url needs the CA bundle that pins the server")
	case u.RawQuery != "" || u.Fragment != "":
		return bad("server_url", "%q: no query or fragment allowed", c.ServerURL)
	}
	if c.CAFile != "" && !filepath.IsAbs(c.CAFile) {
		return bad("ca_file", "%q is not an absolute path", c.CAFile)
	}
	if c.Bus != "system" && c.Bus != "session" && !strings.Contains(c.Bus, ":") {
		return bad("bus", "%q: want \"system\", \"session\" or a bus address such as \"unix:path=/run/dbus/system_bus_socket\"", c.Bus)
	}
	seen := map[string]bool{}
	for _, s := range c.Sources {
		switch {
		case s != SourceAmosPower && s != SourceLogind && s != SourceEvdev:
			return bad("sources", "unknown source %q: want %q, %q or %q", s, SourceAmosPower, SourceLogind, SourceEvdev)
		case seen[s]:
			return bad("sources", "%q listed twice", s)
		}
		seen[s] = true
	}
	if seen[SourceEvdev] {
		if !filepath.IsAbs(c.EvdevGlob) {
			return bad("evdev_glob", "%q is not an absolute path", c.EvdevGlob)
		}
		if _, err := filepath.Match(c.EvdevGlob, ""); err != nil {
			return bad("evdev_glob", "%q: %v", c.EvdevGlob, err)
		}
	}
	if c.UTCOffsetMinutes < proof.MinUTCOffsetMinutes || c.UTCOffsetMinutes > proof.MaxUTCOffsetMinutes {
		return bad("utc_offset_minutes", "%d, want %d..%d", c.UTCOffsetMinutes, proof.MinUTCOffsetMinutes, proof.MaxUTCOffsetMinutes)
	}
	s := c.Sync
	switch {
	case s.InitialBackoff <= 0:
		return bad("sync.initial_backoff", "%s, want more than 0", time.Duration(s.InitialBackoff))
	case s.MaxBackoff < s.InitialBackoff:
		return bad("sync.max_backoff", "%s is less than initial_backoff %s", time.Duration(s.MaxBackoff), time.Duration(s.InitialBackoff))
	case s.BatchRecords < 1 || s.BatchRecords > proof.MaxBatchRecords:
		return bad("sync.batch_records", "%d, want 1..%d", s.BatchRecords, proof.MaxBatchRecords)
	case s.Timeout <= 0 || time.Duration(s.Timeout) > 10*time.Minute:
		return bad("sync.timeout", "%s, want more than 0 and at most 10m", time.Duration(s.Timeout))
	case s.Spread < 0 || time.Duration(s.Spread) > 12*time.Hour:
		return bad("sync.spread", "%s, want 0 to 12h", time.Duration(s.Spread))
	}
	if c.MaxStoreBytes < 64<<10 || c.MaxStoreBytes > 1<<30 {
		return bad("max_store_bytes", "%d, want 65536..1073741824", c.MaxStoreBytes)
	}
	for _, d := range c.DNSServers {
		host := d
		if h, _, err := net.SplitHostPort(d); err == nil {
			host = h
		}
		if net.ParseIP(host) == nil {
			return bad("dns_servers", "%q is not an IP address or IP:port", d)
		}
	}
	if c.Log != "auto" && c.Log != "stderr" && c.Log != "logd" {
		return bad("log", "%q, want \"auto\", \"stderr\" or \"logd\"", c.Log)
	}
	return nil
}

// validate checks the "key" object.
func (k KeyConfig) validate(bad func(key, format string, args ...any) *Error) *Error {
	switch {
	case k.Backend != KeyBackendFile && k.Backend != KeyBackendKeystore:
		return bad("key.backend", "%q, want %q or %q", k.Backend, KeyBackendFile, KeyBackendKeystore)
	case k.Type != KeyTypeEd25519 && k.Type != KeyTypeP256:
		return bad("key.type", "%q, want %q or %q", k.Type, KeyTypeEd25519, KeyTypeP256)
	case !validAlias(k.Alias):
		return bad("key.alias", "%q, want 1 to 64 of [A-Za-z0-9._-], not starting with '.'", k.Alias)
	}
	return nil
}

// validAlias reports whether alias is a keystore alias: 1 to 64 of [A-Za-z0-9._-], not
// starting with '.'. It is keystore.ValidAlias, which config cannot import (keystore
// dials through sources, which imports config); agent/keystore's tests check that both
// agree.
func validAlias(alias string) bool {
	if len(alias) < 1 || len(alias) > 64 || alias[0] == '.' {
		return false
	}
	for i := 0; i < len(alias); i++ {
		c := alias[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// HasSource reports whether the configuration enables source name.
func (c *Config) HasSource(name string) bool {
	for _, s := range c.Sources {
		if s == name {
			return true
		}
	}
	return false
}
