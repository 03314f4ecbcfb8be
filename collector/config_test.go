package collector

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	hexA = "1111111111111111111111111111111111111111111111111111111111111111"
	hexB = "2222222222222222222222222222222222222222222222222222222222222222"
	hexC = "3333333333333333333333333333333333333333333333333333333333333333"
)

func TestSampleConfigs(t *testing.T) {
	for _, name := range []string{"collector.json", "collector-dev.json"} {
		c, err := LoadConfig(filepath.Join("..", "testdata", "collector", name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.Registry()) != len(c.Makers) || len(c.TokenHashes()) != len(c.Makers) {
			t.Errorf("%s: registry %v", name, c.Registry())
		}
	}
	c, _ := LoadConfig(filepath.Join("..", "testdata", "collector", "collector.json"))
	if h := c.TokenHashes()["konka"]; h != sha256.Sum256([]byte("example konka token")) {
		t.Errorf("konka token hash %x", h)
	}
	if h, ok := c.PayerTokenHash(); !ok || h != sha256.Sum256([]byte("example payer token")) {
		t.Errorf("payer token hash %x %v", h, ok)
	}
	if !c.UsesTLS() || c.Eligibility != DefaultEligibility() || c.Limits != DefaultLimits() {
		t.Errorf("config %+v", c)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("min.json", []byte(`{"allow_insecure_http": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8443" || c.DataDir != "/var/lib/amos-collector" || c.Eligibility != DefaultEligibility() ||
		c.Limits != DefaultLimits() || len(c.Registry()) != 0 || c.UsesTLS() {
		t.Errorf("defaults %+v", c)
	}
	if _, ok := c.PayerTokenHash(); ok {
		t.Error("a payer token without one configured")
	}
	// A partial nested object keeps the other defaults.
	c, err = ParseConfig("e.json", []byte(`{"allow_insecure_http": true, "eligibility": {"min_active_days": 5}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Eligibility != (Eligibility{120, 1, 5}) {
		t.Errorf("eligibility %+v", c.Eligibility)
	}
}

func TestConfigErrors(t *testing.T) {
	maker := func(id, pub, tok string) string {
		return `{"id": "` + id + `", "public_key": "` + pub + `", "token_sha256": "` + tok + `"}`
	}
	tests := []struct {
		name, json   string
		key, problem string
		line         int
	}{
		{"empty", ``, "", "empty file", 0},
		{"syntax", "{\n  \"listen\": ,\n}", "", "JSON syntax", 2},
		{"truncated", `{"listen": "a:1"`, "", "unexpected end", 1},
		{"two values", `{"allow_insecure_http": true} {}`, "", "more than one JSON value", 1},
		{"unknown key", "{\n\"allow_insecure_http\": true,\n\"tls_certificate\": \"/x\"}", "tls_certificate", "unknown key", 3},
		{"unknown nested key", `{"allow_insecure_http": true, "limits": {"max_inflight": 3}}`, "max_inflight", "unknown key", 1},
		{"wrong type", `{"allow_insecure_http": "yes"}`, "allow_insecure_http", "want bool", 1},
		{"wrong nested type", `{"allow_insecure_http": true, "eligibility": {"min_unlocks": "1"}}`, "eligibility.min_unlocks", "want int", 1},
		{"no tls", `{}`, "tls_cert", "allow_insecure_http", 0},
		{"key without cert", `{"tls_key": "/k"}`, "tls_cert", "set both", 0},
		{"cert without key", `{"tls_cert": "/c"}`, "tls_key", "set both", 0},
		{"relative cert", `{"tls_cert": "c.pem", "tls_key": "/k"}`, "tls_cert", "not an absolute path", 0},
		{"relative data_dir", `{"allow_insecure_http": true, "data_dir": "data"}`, "data_dir", "not an absolute path", 0},
		{"listen no port", `{"allow_insecure_http": true, "listen": "localhost"}`, "listen", "not host:port", 0},
		{"listen bad port", `{"allow_insecure_http": true, "listen": "localhost:https"}`, "listen", "port", 0},
		{"listen big port", `{"allow_insecure_http": true, "listen": ":70000"}`, "listen", "port", 0},
		{"maker id", `{"allow_insecure_http": true, "makers": [` + maker("Konka", hexA, hexB) + `]}`, "makers[0].id", "not a maker_id", 0},
		{"maker twice", `{"allow_insecure_http": true, "makers": [` + maker("a", hexA, hexB) + `,` + maker("a", hexA, hexC) + `]}`, "makers[1].id", "listed twice", 0},
		{"maker key short", `{"allow_insecure_http": true, "makers": [` + maker("a", hexA[:62], hexB) + `]}`, "makers[0].public_key", "64 hex digits", 0},
		{"maker key not hex", `{"allow_insecure_http": true, "makers": [` + maker("a", strings.Repeat("z", 64), hexB) + `]}`, "makers[0].public_key", "not hex", 0},
		{"maker token", `{"allow_insecure_http": true, "makers": [` + maker("a", hexA, "") + `]}`, "makers[0].token_sha256", "64 hex digits", 0},
		{"shared token", `{"allow_insecure_http": true, "makers": [` + maker("a", hexA, hexB) + `,` + maker("b", hexA, hexB) + `]}`, "makers[1].token_sha256", "same token as makers[0]", 0},
		{"payer token", `{"allow_insecure_http": true, "payer_token_sha256": "abc"}`, "payer_token_sha256", "64 hex digits", 0},
		{"payer shares a token", `{"allow_insecure_http": true, "makers": [` + maker("a", hexA, hexB) + `], "payer_token_sha256": "` + hexB + `"}`, "payer_token_sha256", "same token", 0},
		{"seconds", `{"allow_insecure_http": true, "eligibility": {"min_interactive_seconds": 86401}}`, "eligibility.min_interactive_seconds", "0..86400", 0},
		{"unlocks", `{"allow_insecure_http": true, "eligibility": {"min_unlocks": -1}}`, "eligibility.min_unlocks", "0..65535", 0},
		{"days", `{"allow_insecure_http": true, "eligibility": {"min_active_days": 0}}`, "eligibility.min_active_days", "1..31", 0},
		{"inflight", `{"allow_insecure_http": true, "limits": {"max_inflight_batches": 0}}`, "limits.max_inflight_batches", "1..100000", 0},
		{"rate", `{"allow_insecure_http": true, "limits": {"device_batches_per_minute": -3}}`, "limits.device_batches_per_minute", "1..100000", 0},
		{"connections", `{"allow_insecure_http": true, "limits": {"max_connections": 15}}`, "limits.max_connections", "16..1000000", 0},
		{"uncertified budget", `{"allow_insecure_http": true, "limits": {"uncertified_devices_per_hour": -1}}`, "limits.uncertified_devices_per_hour", "-1, want 0 (none)..1000000", 0},
		{"uncertified budget high", `{"allow_insecure_http": true, "limits": {"uncertified_devices_per_hour": 1000001}}`, "limits.uncertified_devices_per_hour", "want 0 (none)..1000000", 0},
		{"ledger not a url", `{"allow_insecure_http": true, "ledger": "/var/lib/amos.db"}`, "ledger", `want "" (the bbolt ledger in data_dir) or a postgres:// or postgresql:// URL`, 0},
		{"ledger no host", `{"allow_insecure_http": true, "ledger": "postgres:///amos"}`, "ledger", "names no host", 0},
		{"attestation mode", `{"allow_insecure_http": true, "makers": [` + attMaker(`"attestation": "always"`) + `]}`, "makers[0].attestation", "want required, preferred or off", 0},
		{"boot key not hex", `{"allow_insecure_http": true, "makers": [` + attMaker(`"attestation": "required", "boot_keys": ["`+hexA+`", "zz"]`) + `]}`, "makers[0].boot_keys[1]", "16 to 64 bytes of hex", 0},
		{"boot key short", `{"allow_insecure_http": true, "makers": [` + attMaker(`"boot_keys": ["00ff"]`) + `]}`, "makers[0].boot_keys[0]", "16 to 64 bytes", 0},
		{"patch level month 13", `{"allow_insecure_http": true, "makers": [` + attMaker(`"min_os_patch_level": 202613`) + `]}`, "makers[0].min_os_patch_level", "202613 is not YYYYMM", 0},
		{"patch level a date", `{"allow_insecure_http": true, "makers": [` + attMaker(`"min_os_patch_level": 20260105`) + `]}`, "makers[0].min_os_patch_level", "not YYYYMM", 0},
		{"serial tag key", `{"allow_insecure_http": true, "makers": [` + attMaker(`"serial_tag_key": "abc"`) + `]}`, "makers[0].serial_tag_key", "16 to 64 bytes", 0},
		{"relative root", `{"allow_insecure_http": true, "attestation": {"roots": ["roots.pem"]}}`, "attestation.roots[0]", "not an absolute path", 0},
		{"status list http", `{"allow_insecure_http": true, "attestation": {"status_list": "http://example.com/status"}}`, "attestation.status_list", "https:// URL", 0},
		{"status refresh", `{"allow_insecure_http": true, "attestation": {"status_refresh_minutes": 0}}`, "attestation.status_refresh_minutes", "1..1440", 0},
		{"status max age", `{"allow_insecure_http": true, "attestation": {"status_max_age_hours": 721}}`, "attestation.status_max_age_hours", "1..720", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("/etc/c.json", []byte(tc.json))
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
				t.Fatalf("err %v, want a *ConfigError", err)
			}
			if ce.File != "/etc/c.json" || ce.Key != tc.key || !strings.Contains(ce.Problem, tc.problem) || (tc.line != 0 && ce.Line != tc.line) {
				t.Errorf("%q: file %q key %q line %d problem %q; want key %q line %d problem containing %q",
					err, ce.File, ce.Key, ce.Line, ce.Problem, tc.key, tc.line, tc.problem)
			}
			if !strings.HasPrefix(err.Error(), "config /etc/c.json") {
				t.Errorf("message %q does not name the file", err)
			}
		})
	}
}

// attMaker is a valid maker entry with more keys.
func attMaker(more string) string {
	return `{"id": "a", "public_key": "` + hexA + `", "token_sha256": "` + hexB + `", ` + more + `}`
}

// TestAttestationConfig: a maker's policy and the trust set as the configuration gives
// them; an absent maker is off; a roots file that is not PEM is named in the error.
func TestAttestationConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	js := `{"allow_insecure_http": true, "makers": [` + attMaker(`"attestation": "required", "boot_keys": ["`+hexA+`"], "min_os_patch_level": 202601, "serial_tag_key": "`+hexC+`"`) + `],
	  "attestation": {"google_roots": false, "status_list": "https://android.googleapis.com/attestation/status"}}`
	c, err := ParseConfig("c.json", []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	p := c.MakerAttestation("a")
	if p.Mode != AttestationRequired || len(p.BootKeys) != 1 || p.MinPatchLevel != 202601 || len(p.SerialTagKey) != 32 {
		t.Errorf("maker a: %+v", p)
	}
	if p := c.MakerAttestation("nobody"); p.Mode != AttestationOff {
		t.Errorf("unknown maker: %+v", p)
	}
	policy, src, err := c.NewAttestation(time.Now, nil)
	if err != nil || policy == nil || src == nil || src.Location() != "https://android.googleapis.com/attestation/status" {
		t.Fatalf("NewAttestation: %v %v %v", policy, src, err)
	}
	if policy.Mode("a") != AttestationRequired || policy.Mode("b") != AttestationOff {
		t.Errorf("modes %s %s", policy.Mode("a"), policy.Mode("b"))
	}
	d := DefaultConfig()
	if !d.Attestation.GoogleRoots || d.Attestation.StatusMaxAgeHours != 48 || d.Attestation.StatusRefreshMinutes != 60 {
		t.Errorf("defaults %+v", d.Attestation)
	}
	c, err = ParseConfig("c.json", []byte(`{"allow_insecure_http": true, "attestation": {"roots": ["`+bad+`"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.NewAttestation(time.Now, nil); err == nil || !strings.Contains(err.Error(), "attestation.roots[0]") || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad roots file: %v", err)
	}
}

func TestLoadConfigMissing(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "none.json"))
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("err %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	tok := sha256.Sum256([]byte("t"))
	body := `{"allow_insecure_http": true, "makers": [{"id": "m", "public_key": "` + hexA + `", "token_sha256": "` + hex.EncodeToString(tok[:]) + `"}]}`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenHashes()["m"] != tok {
		t.Error("token hash")
	}
}

// TestLedgerKey: the ledger key is empty (bbolt in data_dir) or a postgres:// or
// postgresql:// URL with a host or a host= parameter; no message about it shows the
// password, the user info or a password parameter.
func TestLedgerKey(t *testing.T) {
	parse := func(ledger string) (*Config, error) {
		b, err := json.Marshal(map[string]any{"allow_insecure_http": true, "ledger": ledger})
		if err != nil {
			t.Fatal(err)
		}
		return ParseConfig("c.json", b)
	}
	for _, ok := range []string{
		"",
		"postgres://amos:s3cret@db.example:5432/amos?sslmode=verify-full",
		"postgresql://db.example/amos",
		"POSTGRES://db.example/amos",
		"postgres://db1.example:5432,db2.example:5432/amos?target_session_attrs=read-write",
		"postgres:///amos?host=/var/run/postgresql",
		"postgres://[::1]:5432/amos",
	} {
		c, err := parse(ok)
		if err != nil {
			t.Errorf("%q: %v", ok, err)
			continue
		}
		if c.LedgerURL() != ok {
			t.Errorf("LedgerURL() %q, want %q", c.LedgerURL(), ok)
		}
	}
	const secret = "s3cret"
	for _, tc := range []struct{ ledger, problem string }{
		{"mysql://amos:" + secret + "@db/amos", "postgres:// or postgresql:// URL"},
		{"host=db user=amos password=" + secret, "postgres:// or postgresql:// URL"},
		{"postgres:amos:" + secret + "@db", "postgres:// or postgresql:// URL"},
		{"postgres://amos:" + secret + "%zz@db/amos", "not a URL"},
		{"postgres://amos:" + secret + "@db:port/amos", "not a URL"},
		{"postgres://amos:12#" + secret + "@db/amos", "fragment"},
		{"postgres://amos:12/" + secret + "@db/amos", "an @ after the host"},
		{"postgres://amos:12?" + secret + "@db/amos", "an @ after the host"},
		{"postgres://amos:" + secret + "@/amos?password=" + secret + "&sslpassword=" + secret, "names no host"},
		{"postgresql://", "names no host"},
	} {
		_, err := parse(tc.ledger)
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) || ce.Key != "ledger" || !strings.Contains(ce.Problem, tc.problem) {
			t.Errorf("%q: %v, want key ledger: …%s…", tc.ledger, err, tc.problem)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "amos:") {
			t.Errorf("%q: the message shows the user info or password: %v", tc.ledger, err)
		}
	}
	for in, want := range map[string]string{
		"postgres://amos:" + secret + "@db:5432/amos?sslmode=require&password=" + secret: "postgres://xxxxx@db:5432/amos?password=xxxxx&sslmode=require",
		"postgresql://db/amos":                 "postgresql://db/amos",
		"mysql://amos:" + secret + "@db/amos":  "(not shown)",
		"postgres://amos:1#" + secret + "@db/": "(not shown)",
		"postgres://amos:" + secret + "%zz@db": "(not shown)",
	} {
		if got := redactLedgerURL(in); got != want {
			t.Errorf("redactLedgerURL(%q) = %q, want %q", in, got, want)
		}
	}
}
