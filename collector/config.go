package collector

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"amos.example/amosd/collector/attestpolicy"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/internal/jsonconfig"
	"amos.example/amosd/internal/jsonconfig/jsondecode"
	"amos.example/amosd/proof"
)

// DefaultConfigPath is where the collector's configuration is read from when neither
// --config nor $AMOS_COLLECTOR_CONFIG names one.
const DefaultConfigPath = "/etc/amos-collector/config.json"

// ConfigEnv names the variable that overrides DefaultConfigPath.
const ConfigEnv = "AMOS_COLLECTOR_CONFIG"

// Config is the collector's configuration file (docs/operations.md).
type Config struct {
	Listen            string            `json:"listen"`
	TLSCert           string            `json:"tls_cert"`
	TLSKey            string            `json:"tls_key"`
	AllowInsecureHTTP bool              `json:"allow_insecure_http"`
	DataDir           string            `json:"data_dir"`
	Ledger            string            `json:"ledger"` // "": bbolt in data_dir; else a PostgreSQL URL
	Makers            []MakerConfig     `json:"makers"`
	PayerTokenSHA256  string            `json:"payer_token_sha256"`
	Eligibility       Eligibility       `json:"eligibility"`
	Claims            ClaimsConfig      `json:"claims"`
	Limits            Limits            `json:"limits"`
	Attestation       AttestationConfig `json:"attestation"`

	registry    Registry
	attestation map[string]MakerAttestation
}

// MakerConfig is one entry of the makers registry.
type MakerConfig struct {
	ID          string `json:"id"`
	PublicKey   string `json:"public_key"`   // Ed25519, 64 hex digits
	TokenSHA256 string `json:"token_sha256"` // SHA-256 of its bearer token, 64 hex digits
	// The maker's attestation policy: attestation, boot_keys, min_os_patch_level,
	// serial_tag_key (docs/attestation.md).
	attestpolicy.MakerConfig
}

// Eligibility holds the thresholds of docs/operations.md.
type Eligibility struct {
	MinInteractiveSeconds int `json:"min_interactive_seconds"`
	MinUnlocks            int `json:"min_unlocks"`
	MinActiveDays         int `json:"min_active_days"`
}

// DefaultEligibility returns docs/operations.md's defaults: 120 s, 1 unlock, 10 days.
func DefaultEligibility() Eligibility {
	return Eligibility{MinInteractiveSeconds: 120, MinUnlocks: 1, MinActiveDays: 10}
}

// Active reports whether an activity record's counters make its date an active day.
func (e Eligibility) Active(a *proof.ActivityDay) bool {
	return int(a.InteractiveSeconds) >= e.MinInteractiveSeconds && int(a.Unlocks) >= e.MinUnlocks
}

func (e Eligibility) validate() *ConfigError {
	bad := func(key, format string, args ...any) *ConfigError {
		return &ConfigError{Key: "eligibility." + key, Problem: fmt.Sprintf(format, args...), Kind: ErrConfig}
	}
	switch {
	case e.MinInteractiveSeconds < 0 || e.MinInteractiveSeconds > 86400:
		return bad("min_interactive_seconds", "%d, want 0..86400", e.MinInteractiveSeconds)
	case e.MinUnlocks < 0 || e.MinUnlocks > 65535:
		return bad("min_unlocks", "%d, want 0..65535", e.MinUnlocks)
	case e.MinActiveDays < 1 || e.MinActiveDays > 31:
		return bad("min_active_days", "%d, want 1..31", e.MinActiveDays)
	}
	return nil
}

// ClaimsConfig says when months close and in which zone (docs/eligibility.md).
type ClaimsConfig struct {
	CloseAfterDays   int `json:"close_after_days"`
	UTCOffsetMinutes int `json:"utc_offset_minutes"`
}

// Schedule returns the months' closing schedule.
func (c ClaimsConfig) Schedule() claim.Schedule {
	return claim.Schedule{AfterDays: c.CloseAfterDays, OffsetMinutes: c.UTCOffsetMinutes}
}

// Options returns the collector options the configuration sets; the caller adds the
// clock and the workers.
func (c *Config) Options() Options {
	o := Options{Makers: c.Registry(), Eligibility: c.Eligibility, Schedule: c.Claims.Schedule(),
		UncertifiedDevicesPerHour: c.Limits.UncertifiedDevicesPerHour}
	if o.UncertifiedDevicesPerHour == 0 {
		o.UncertifiedDevicesPerHour = -1 // the file's 0 admits none; the Options' 0 is the default
	}
	return o
}

// Limits bound the load the server takes (docs/operations.md).
type Limits struct {
	MaxInflightBatches     int `json:"max_inflight_batches"`
	DeviceBatchesPerMinute int `json:"device_batches_per_minute"`
	MaxConnections         int `json:"max_connections"`
	// Per remote address (IPv4, or IPv6 /64) on POST /v1/records: requests a second
	// (0: off), the bucket's size, and how many addresses are tracked at most.
	AddressRequestsPerSecond int `json:"address_requests_per_second"`
	AddressBurst             int `json:"address_burst"`
	MaxAddresses             int `json:"max_addresses"`
	// New devices whose genesis no registered maker certified, admitted an hour (a
	// token bucket on the collector's clock, per process); 0: none.
	UncertifiedDevicesPerHour int `json:"uncertified_devices_per_hour"`
}

// DefaultLimits returns docs/operations.md's defaults: 64 batches in flight, 30 a minute
// per device, 4,096 connections, 10 requests a second per address (burst 40, 65,536
// addresses tracked).
func DefaultLimits() Limits {
	return Limits{MaxInflightBatches: 64, DeviceBatchesPerMinute: 30, MaxConnections: 4096,
		AddressRequestsPerSecond: 10, AddressBurst: 40, MaxAddresses: 65536, UncertifiedDevicesPerHour: DefaultUncertifiedDevicesPerHour}
}

// Registry maps maker_id to the maker's registered Ed25519 key.
type Registry map[string]proof.PublicKey

// Keys returns the registry as proof's lookup function; nil for a nil registry.
func (r Registry) Keys() proof.MakerKeys {
	if r == nil {
		return nil
	}
	return func(id string) (proof.PublicKey, bool) {
		k, ok := r[id]
		return k, ok
	}
}

// DefaultConfig returns the configuration every key of a file is laid over.
func DefaultConfig() Config {
	return Config{
		Listen:      "127.0.0.1:8443",
		DataDir:     "/var/lib/amos-collector",
		Makers:      []MakerConfig{},
		Eligibility: DefaultEligibility(),
		Claims:      ClaimsConfig{CloseAfterDays: 10, UTCOffsetMinutes: 480},
		Limits:      DefaultLimits(),
		Attestation: DefaultAttestationConfig(),
	}
}

// Registry returns the makers registry of a validated configuration.
func (c *Config) Registry() Registry { return c.registry }

// TokenHashes returns the SHA-256 of each maker's bearer token by maker_id.
func (c *Config) TokenHashes() map[string][32]byte {
	m := make(map[string][32]byte, len(c.Makers))
	for _, mk := range c.Makers {
		var h [32]byte
		hex.Decode(h[:], []byte(mk.TokenSHA256)) // checked by validate
		m[mk.ID] = h
	}
	return m
}

// PayerTokenHash returns the SHA-256 of the payer's token, false if none is set.
func (c *Config) PayerTokenHash() ([32]byte, bool) {
	var h [32]byte
	if c.PayerTokenSHA256 == "" {
		return h, false
	}
	hex.Decode(h[:], []byte(c.PayerTokenSHA256))
	return h, true
}

// UsesTLS reports whether the server serves https.
func (c *Config) UsesTLS() bool { return c.TLSCert != "" }

// ConfigError names the file, the key and what is wrong with it; it wraps ErrConfig.
type ConfigError = jsonconfig.Error

// LoadConfig reads and checks the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Problem: err.Error(), Kind: ErrConfig, Cause: err}
	}
	return ParseConfig(path, b)
}

// ParseConfig decodes and checks a configuration; name is used in errors. Unknown
// keys, wrong types and invalid values are refused, each naming the key.
func ParseConfig(name string, b []byte) (*Config, error) {
	c := DefaultConfig()
	if err := jsondecode.Decode(name, b, &c, ErrConfig); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		err.File = name
		return nil, err
	}
	return &c, nil
}

func parseHex32(s string) ([32]byte, error) {
	var v [32]byte
	if len(s) != 64 {
		return v, fmt.Errorf("%q: want 64 hex digits, got %d characters", s, len(s))
	}
	if _, err := hex.Decode(v[:], []byte(s)); err != nil {
		return v, fmt.Errorf("%q is not hex: %v", s, err)
	}
	return v, nil
}

func (c *Config) validate() *ConfigError {
	bad := func(key, format string, args ...any) *ConfigError {
		return &ConfigError{Key: key, Problem: fmt.Sprintf(format, args...), Kind: ErrConfig}
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return bad("listen", "%q is not host:port: %v", c.Listen, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return bad("listen", "%q: port %q is not a number 0..65535", c.Listen, port)
	}
	if net.ParseIP(host) == nil && strings.ContainsAny(host, " /\t") {
		return bad("listen", "%q: host %q is not an address or a name", c.Listen, host)
	}
	switch {
	case c.TLSCert == "" && c.TLSKey != "":
		return bad("tls_cert", "missing while tls_key is set: set both or neither")
	case c.TLSCert != "" && c.TLSKey == "":
		return bad("tls_key", "missing while tls_cert is set: set both or neither")
	case c.TLSCert == "" && !c.AllowInsecureHTTP:
		return bad("tls_cert", "missing: set tls_cert and tls_key, or allow_insecure_http (tests only) to serve plain http")
	}
	for _, p := range []struct{ key, val string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if p.val != "" && !filepath.IsAbs(p.val) {
			return bad(p.key, "%q is not an absolute path", p.val)
		}
	}
	if !filepath.IsAbs(c.DataDir) {
		return bad("data_dir", "%q is not an absolute path", c.DataDir)
	}
	if err := validateLedger(c.Ledger); err != nil {
		return err
	}
	c.registry = Registry{}
	c.attestation = map[string]MakerAttestation{}
	tokens := map[[32]byte]string{}
	for i, m := range c.Makers {
		key := fmt.Sprintf("makers[%d]", i)
		if !proof.ValidMakerID(m.ID) {
			return bad(key+".id", "%q is not a maker_id [a-z0-9-]{1,32}", m.ID)
		}
		if _, dup := c.registry[m.ID]; dup {
			return bad(key+".id", "maker %q listed twice", m.ID)
		}
		pub, err := parseHex32(m.PublicKey)
		if err != nil {
			return bad(key+".public_key", "%v", err)
		}
		tok, err := parseHex32(m.TokenSHA256)
		if err != nil {
			return bad(key+".token_sha256", "%v", err)
		}
		if other, dup := tokens[tok]; dup {
			return bad(key+".token_sha256", "same token as %s", other)
		}
		tokens[tok] = key
		c.registry[m.ID] = proof.Ed25519Key(pub)
		att, cerr := m.MakerConfig.Parse(key, ErrConfig)
		if cerr != nil {
			return cerr
		}
		c.attestation[m.ID] = att
	}
	if c.PayerTokenSHA256 != "" {
		tok, err := parseHex32(c.PayerTokenSHA256)
		if err != nil {
			return bad("payer_token_sha256", "%v", err)
		}
		if other, dup := tokens[tok]; dup {
			return bad("payer_token_sha256", "same token as %s", other)
		}
	}
	if err := c.Eligibility.validate(); err != nil {
		return err
	}
	switch cl := c.Claims; {
	case cl.CloseAfterDays < 0 || cl.CloseAfterDays > 60:
		return bad("claims.close_after_days", "%d, want 0..60", cl.CloseAfterDays)
	case cl.UTCOffsetMinutes < proof.MinUTCOffsetMinutes || cl.UTCOffsetMinutes > proof.MaxUTCOffsetMinutes:
		return bad("claims.utc_offset_minutes", "%d, want %d..%d", cl.UTCOffsetMinutes, proof.MinUTCOffsetMinutes, proof.MaxUTCOffsetMinutes)
	}
	switch l := c.Limits; {
	case l.MaxInflightBatches < 1 || l.MaxInflightBatches > 100000:
		return bad("limits.max_inflight_batches", "%d, want 1..100000", l.MaxInflightBatches)
	case l.DeviceBatchesPerMinute < 1 || l.DeviceBatchesPerMinute > 100000:
		return bad("limits.device_batches_per_minute", "%d, want 1..100000", l.DeviceBatchesPerMinute)
	case l.MaxConnections < 16 || l.MaxConnections > 1000000:
		return bad("limits.max_connections", "%d, want 16..1000000", l.MaxConnections)
	case l.AddressRequestsPerSecond < 0 || l.AddressRequestsPerSecond > 100000:
		return bad("limits.address_requests_per_second", "%d, want 0 (off)..100000", l.AddressRequestsPerSecond)
	case l.AddressBurst < 1 || l.AddressBurst > 100000:
		return bad("limits.address_burst", "%d, want 1..100000", l.AddressBurst)
	case l.MaxAddresses < 16 || l.MaxAddresses > 1000000:
		return bad("limits.max_addresses", "%d, want 16..1000000", l.MaxAddresses)
	case l.UncertifiedDevicesPerHour < 0 || l.UncertifiedDevicesPerHour > MaxUncertifiedDevicesPerHour:
		return bad("limits.uncertified_devices_per_hour", "%d, want 0 (none)..%d", l.UncertifiedDevicesPerHour, MaxUncertifiedDevicesPerHour)
	}
	return c.Attestation.Validate(ErrConfig)
}
