package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
)

const goldenDir = "../../testdata/proof"

// testNow is the clock of the in-process tests: October 2026 is last month.
func testNow() time.Time { return time.Date(2026, time.November, 5, 4, 0, 0, 0, time.UTC) }

func oct(day int) proof.Date { return proof.NewDate(2026, time.October, day) }

// runCLI runs the command line in-process.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] }, testNow)
	return code, out.String(), errb.String()
}

// tagHex returns a certificate's serial_tag as the sales registry names it.
func tagHex(c *proof.Certificate) string { return hex.EncodeToString(c.SerialTag[:]) }

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// testConfig describes a configuration file written by writeConfig.
type testConfig struct {
	Listen            string         `json:"listen,omitempty"`
	TLSCert           string         `json:"tls_cert,omitempty"`
	TLSKey            string         `json:"tls_key,omitempty"`
	AllowInsecureHTTP bool           `json:"allow_insecure_http,omitempty"`
	DataDir           string         `json:"data_dir"`
	Makers            []testMaker    `json:"makers"`
	PayerTokenSHA256  string         `json:"payer_token_sha256,omitempty"`
	Claims            *testClaims    `json:"claims,omitempty"`
	Extra             map[string]any `json:"-"`
}

type testClaims struct {
	CloseAfterDays   int `json:"close_after_days"`
	UTCOffsetMinutes int `json:"utc_offset_minutes"`
}

type testMaker struct {
	ID          string `json:"id"`
	PublicKey   string `json:"public_key"`
	TokenSHA256 string `json:"token_sha256"`
}

func writeConfig(t *testing.T, c testConfig) string {
	t.Helper()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunTable(t *testing.T) {
	badKey := writeFile(t, "bad.json", "{\n  \"allow_insecure_http\": true,\n  \"listen_addr\": \":1\"\n}\n")
	noTLS := writeFile(t, "notls.json", `{"data_dir": "/tmp/x"}`)
	missingTLS := writeFile(t, "missingtls.json", `{"tls_cert": "/nonexistent/tls.crt", "tls_key": "/nonexistent/tls.key"}`)
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		stdout   string
		stderr   string
		quietOut bool
	}{
		{name: "no command", code: 2, stderr: "usage: amos-collector [--config PATH] COMMAND", quietOut: true},
		{name: "help", args: []string{"help"}, code: 0, stdout: "maker certify --key FILE --maker-id ID --model M --serial-tag HEX --device-pub HEX --out FILE"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "claims --month YYYY-MM [--format csv|json]"},
		{name: "version", args: []string{"version"}, code: 0, stdout: "amos-collector dev commit unknown linux/" + runtime.GOARCH},
		{name: "version with an argument", args: []string{"version", "x"}, code: 2, stderr: `version takes no arguments, got "x"`, quietOut: true},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`, quietOut: true},
		{name: "unknown flag", args: []string{"--bogus", "serve"}, code: 2, stderr: "flag provided but not defined: -bogus", quietOut: true},
		{name: "maker alone", args: []string{"maker"}, code: 2, stderr: "want keygen or certify", quietOut: true},
		{name: "maker unknown", args: []string{"maker", "sign"}, code: 2, stderr: `unknown command "sign"`, quietOut: true},
		{name: "keygen without --out", args: []string{"maker", "keygen"}, code: 2, stderr: "--out PREFIX is required", quietOut: true},
		{name: "certify without --key", args: []string{"maker", "certify", "--maker-id", "a"}, code: 2, stderr: "--key is required", quietOut: true},
		{name: "certify bad maker", args: []string{"maker", "certify", "--key", "k", "--maker-id", "A", "--serial-tag", "00", "--device-pub", "00", "--out", "o"}, code: 2, stderr: `--maker-id "A" is not`, quietOut: true},
		{name: "certify bad serial", args: []string{"maker", "certify", "--key", "k", "--maker-id", "a", "--serial-tag", "00", "--device-pub", "00", "--out", "o"}, code: 2, stderr: `--serial-tag "00" is not 64 hex digits`, quietOut: true},
		{name: "certify bad device key", args: []string{"maker", "certify", "--key", "k", "--maker-id", "a", "--serial-tag", strings.Repeat("0", 64), "--device-pub", "zz", "--out", "o"}, code: 2, stderr: `--device-pub "zz" is neither 64 hex digits (Ed25519) nor 130`, quietOut: true},
		{name: "certify long model", args: []string{"maker", "certify", "--key", "k", "--maker-id", "a", "--model", strings.Repeat("m", 65), "--serial-tag", strings.Repeat("0", 64), "--device-pub", strings.Repeat("0", 64), "--out", "o"}, code: 2, stderr: "--model", quietOut: true},
		{name: "claims without month", args: []string{"claims"}, code: 2, stderr: `claims: --month: month ""`, quietOut: true},
		{name: "claims bad format", args: []string{"claims", "--month", "2026-10", "--format", "xml"}, code: 2, stderr: `--format "xml"`, quietOut: true},
		{name: "claims missing config", args: []string{"--config", "/nonexistent/c.json", "claims", "--month", "2026-10"}, code: 2, stderr: "config /nonexistent/c.json: open", quietOut: true},
		{name: "claims config from env", args: []string{"claims", "--month", "2026-10"}, env: map[string]string{collector.ConfigEnv: "/nonexistent/env.json"}, code: 2, stderr: "config /nonexistent/env.json", quietOut: true},
		{name: "serve unknown key", args: []string{"--config", badKey, "serve"}, code: 2, stderr: "config " + badKey + ":3:3: key listen_addr", quietOut: true},
		{name: "serve unknown key names it", args: []string{"--config", badKey, "serve"}, code: 2, stderr: "key listen_addr: unknown key", quietOut: true},
		{name: "serve without tls", args: []string{"--config", noTLS, "serve"}, code: 2, stderr: "key tls_cert: missing", quietOut: true},
		{name: "serve tls files missing", args: []string{"--config", missingTLS, "serve"}, code: 2, stderr: "keys tls_cert and tls_key", quietOut: true},
		{name: "serve with an argument", args: []string{"serve", "now"}, code: 2, stderr: "serve takes no arguments", quietOut: true},
		{name: "verify without file", args: []string{"verify"}, code: 2, stderr: "verify takes 1 argument(s), got 0", quietOut: true},
		{name: "verify bad config", args: []string{"--config", badKey, "verify", "x"}, code: 2, stderr: "unknown key", quietOut: true},
		{name: "verify with a missing config", args: []string{"--config", "/nonexistent/c.json", "verify", "/nonexistent/b"}, code: 2, stderr: "config /nonexistent/c.json", quietOut: true},
		{name: "help lists registry import", args: []string{"help"}, code: 0, stdout: "registry import FILE"},
		{name: "help lists held list", args: []string{"help"}, code: 0, stdout: "held list --month YYYY-MM [--format csv|json]"},
		{name: "help lists held release", args: []string{"help"}, code: 0, stdout: "held release|deny --month YYYY-MM --device DEVICE_ID --by NAME --why TEXT"},
		{name: "help lists held decisions", args: []string{"help"}, code: 0, stdout: "held decisions --month YYYY-MM"},
		{name: "help lists claims --devices", args: []string{"help"}, code: 0, stdout: "claims --month YYYY-MM [--format csv|json] [--devices]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.env, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			if !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout %q does not contain %q", out, tc.stdout)
			}
			if !strings.Contains(errs, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", errs, tc.stderr)
			}
			if tc.quietOut && out != "" {
				t.Errorf("stdout should be empty, got %q", out)
			}
		})
	}
}

func TestMakerKeygenCertify(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "konka")
	code, out, errs := runCLI(t, nil, "maker", "keygen", "--out", prefix)
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errs)
	}
	seed, err := os.ReadFile(prefix + ".key")
	if err != nil || len(seed) != proof.SeedSize {
		t.Fatalf("key file: %d bytes, %v", len(seed), err)
	}
	if fi, _ := os.Stat(prefix + ".key"); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	pubHex, _ := os.ReadFile(prefix + ".pub")
	pub, err := proof.ParsePublicKey(strings.TrimSpace(string(pubHex)))
	if err != nil {
		t.Fatal(err)
	}
	if signer, _ := proof.NewKeySigner(seed); signer.PublicKey() != pub || !strings.Contains(out, pub.String()) {
		t.Errorf("the .pub file or the output does not match the seed: %s", out)
	}
	if code, _, errs := runCLI(t, nil, "maker", "keygen", "--out", prefix); code != 1 || !strings.Contains(errs, "refusing to overwrite") {
		t.Errorf("second keygen: %d %s", code, errs)
	}
	if again, _ := os.ReadFile(prefix + ".key"); !bytes.Equal(again, seed) {
		t.Error("the key was overwritten")
	}

	dev := collectortest.Key(t, "device for certify")
	serial := sha256.Sum256([]byte("IMEI 1"))
	certFile := filepath.Join(dir, "device.cert")
	args := []string{"maker", "certify", "--key", prefix + ".key", "--maker-id", "konka", "--model", "Amos K1 测试",
		"--serial-tag", hex.EncodeToString(serial[:]), "--device-pub", dev.PublicKey().String(), "--out", certFile}
	code, out, errs = runCLI(t, nil, args...)
	if code != 0 || !strings.Contains(out, dev.PublicKey().DeviceID().String()) {
		t.Fatalf("certify: %d %s %s", code, out, errs)
	}
	b, _ := os.ReadFile(certFile)
	cert, err := proof.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Verify(pub); err != nil {
		t.Error(err)
	}
	if cert.DevicePublicKey != dev.PublicKey() || cert.SerialTag != serial || cert.MakerID != "konka" ||
		cert.Model != "Amos K1 测试" || cert.IssuedAt != testNow().Unix() {
		t.Errorf("certificate %+v", cert)
	}
	if code, _, errs := runCLI(t, nil, args...); code != 1 || !strings.Contains(errs, "refusing to overwrite") {
		t.Errorf("certify over an existing file: %d %s", code, errs)
	}
	short := writeFile(t, "short.key", "0123")
	args[3], args[len(args)-1] = short, filepath.Join(dir, "other.cert")
	if code, _, errs := runCLI(t, nil, args...); code != 1 || !strings.Contains(errs, "4 bytes, want a 32-byte Ed25519 seed") {
		t.Errorf("short key: %d %s", code, errs)
	}
}

// goldenConfig writes a configuration whose registry holds the golden maker.
func goldenConfig(t *testing.T, dataDir string) string {
	t.Helper()
	seed, err := os.ReadFile(filepath.Join(goldenDir, "maker.seed"))
	if err != nil {
		t.Fatal(err)
	}
	maker, _ := proof.NewKeySigner(seed)
	return writeConfig(t, testConfig{AllowInsecureHTTP: true, DataDir: dataDir,
		Makers: []testMaker{{ID: "amos-golden", PublicKey: maker.PublicKey().String(), TokenSHA256: hash("golden")}}})
}

func TestVerifyCommand(t *testing.T) {
	chain := filepath.Join(goldenDir, "chain31.batch")
	cfg := goldenConfig(t, t.TempDir())
	code, out, errs := runCLI(t, nil, "--config", cfg, "verify", chain)
	if code != 0 || strings.Count(out, "\taccepted") != 32 || !strings.Contains(out, "32 records: 32 accepted, 0 duplicate, 0 retry, 0 rejected") {
		t.Errorf("golden chain: %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "not checked") {
		t.Errorf("certificate not checked with a registry:\n%s", out)
	}
	// Without a configuration: certificates are not checked, and it says so.
	env := map[string]string{} // no --config, no $AMOS_COLLECTOR_CONFIG: the default path
	if _, err := os.Stat(collector.DefaultConfigPath); err == nil {
		t.Skipf("%s exists on this machine", collector.DefaultConfigPath)
	}
	code, out, errs = runCLI(t, env, "verify", chain)
	if code != 0 || !strings.Contains(out, "# no configuration at "+collector.DefaultConfigPath) || !strings.Contains(out, "not checked") {
		t.Errorf("without config: %d\n%s%s", code, out, errs)
	}
	tests := []struct {
		file string
		code int
		want string
	}{
		{"invalid/chain-seq-gap.bin", 1, "4\tdevice 64023c4fd302af7ff4955525f32fa4f6ebee462c91c79dc877640db6ab912897 epoch 1 seq 5\tretry chain_gap: the chain's head is seq 3"},
		{"invalid/chain-unknown-maker.bin", 1, "rejected unknown_maker"},
		{"invalid/chain-forged-signature.bin", 1, "rejected bad_signature"},
		{"invalid/batch-dangling-byte.bin", 1, "is not a batch"},
		{"genesis.bin", 1, "is not a batch"},
		{"no-such-file", 1, "no such file"},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, nil, "--config", cfg, "verify", filepath.Join(goldenDir, tc.file))
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%s: exit %d, want %d; output does not contain %q:\n%s%s", tc.file, code, tc.code, tc.want, out, errs)
		}
	}
}

// fillLedger ingests, into the ledger of dataDir, a konka device with 12 active days
// in October and an unattributed one (with other counters: two devices reporting the
// same counters on the same dates are clones).
func fillLedger(t *testing.T, dataDir string, konka *proof.KeySigner) *collectortest.Device {
	t.Helper()
	l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := collector.New(l, collector.Options{Makers: collector.Registry{"konka": konka.PublicKey()}, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	d := collectortest.NewDevice(t, "claims cli")
	d.Cert = collectortest.Certify(t, konka, "konka", d.Key.PublicKey(), "claims cli", testNow().AddDate(0, -3, 0))
	plain := collectortest.NewDevice(t, "claims cli plain")
	recs := [][]byte{d.Genesis(), plain.Genesis()}
	for day := 1; day <= 12; day++ {
		recs = append(recs, d.Active(oct(day)), plain.Day(oct(day), 700, 2))
	}
	rc, err := c.Ingest(recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rc.Results {
		if r.Status != collector.StatusAccepted {
			t.Fatalf("fill: %s", r)
		}
	}
	return d
}

func TestClaimsCommand(t *testing.T) {
	konka, tcl := collectortest.Key(t, "maker konka"), collectortest.Key(t, "maker tcl")
	dataDir := t.TempDir()
	cfg := writeConfig(t, testConfig{AllowInsecureHTTP: true, DataDir: dataDir, Makers: []testMaker{
		{ID: "konka", PublicKey: konka.PublicKey().String(), TokenSHA256: hash("k")},
		{ID: "tcl", PublicKey: tcl.PublicKey().String(), TokenSHA256: hash("t")}}})
	if code, _, errs := runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10"); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("no ledger yet: %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dataDir, ledger.BoltFileName)); err == nil {
		t.Error("claims made a ledger")
	}
	d := fillLedger(t, dataDir, konka)
	// Before its serial tag is registered as sold, the device is unregistered, not paid.
	code, out, errs := runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10", "--format", "csv")
	if code != 0 || out != "maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at\nkonka,0,0,0,0,0,0,1,provisional,\ntcl,0,0,0,0,0,0,0,provisional,\n" {
		t.Errorf("csv before the registry: %d %q %s", code, out, errs)
	}
	sold := writeFile(t, "sold.csv", "serial_tag,maker_id,sold_at,channel\n"+tagHex(d.Cert)+",konka,2026-09-01,taobao\n")
	if code, out, errs := runCLI(t, nil, "--config", cfg, "registry", "import", sold); code != 0 || out != "imported 1 sales from "+sold+" (0 already registered)\n" {
		t.Fatalf("registry import: %d %q %s", code, out, errs)
	}

	code, out, errs = runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10")
	var got collector.Claims
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("json: %d %q %s", code, out, errs)
	}
	if got.Month != "2026-10" || got.Status != claim.StatusProvisional || got.ClosedAt != 0 || got.ClosesAt != time.Date(2026, 11, 11, 0, 0, 0, 0, time.FixedZone("", 8*3600)).Unix() ||
		len(got.Rows) != 2 || got.Devices != nil || strings.Contains(out, `"devices":[`) {
		t.Errorf("json: %s", out)
	}
	for i, want := range []struct {
		maker string
		paid  int
	}{{"konka", 1}, {"tcl", 0}} {
		if r := got.Rows[i]; r.MakerID != want.maker || r.Paid != want.paid || r.EligibleDevices != want.paid || r.AmountCNY != want.paid ||
			r.Held+r.Refused+r.Late+r.Unregistered != 0 {
			t.Errorf("row %d: %+v", i, r)
		}
	}
	code, out, _ = runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10", "--format", "csv")
	if code != 0 || out != "maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at\nkonka,1,1,1,0,0,0,0,provisional,\ntcl,0,0,0,0,0,0,0,provisional,\n" {
		t.Errorf("csv: %d %q", code, out)
	}
	// --devices: what the claim made of each device key.
	code, out, errs = runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10", "--devices")
	var devs devicesView
	if code != 0 || json.Unmarshal([]byte(out), &devs) != nil || devs.Month != "2026-10" || devs.Status != claim.StatusProvisional || len(devs.Devices) != 2 {
		t.Fatalf("--devices: %d %q %s", code, out, errs)
	}
	outcomes := map[string]string{}
	for _, dv := range devs.Devices {
		outcomes[dv.DeviceID] = string(dv.Outcome) + " " + strings.Join(dv.Reasons, ",")
	}
	if outcomes[d.ID().String()] != "paid " || len(outcomes) != 2 {
		t.Errorf("--devices: %v", outcomes)
	}
	code, out, _ = runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10", "--devices", "--format", "csv")
	if code != 0 || !strings.HasPrefix(out, "month,device_id,maker_id,serial_tag,active_days,outcome,") ||
		!strings.Contains(out, "2026-10,"+d.ID().String()+",konka,"+tagHex(d.Cert)+",12,paid,") || !strings.Contains(out, ",ineligible,no_certificate,") {
		t.Errorf("--devices csv: %d %q", code, out)
	}
	// While a server holds the ledger, the offline command says where to ask instead.
	l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if code, _, errs := runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10"); code != 1 || !strings.Contains(errs, "GET /v1/claims?month=2026-10") {
		t.Errorf("ledger in use: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10", "--devices"); code != 1 || !strings.Contains(errs, "GET /v1/claims/devices?month=2026-10") {
		t.Errorf("ledger in use, --devices: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "--config", cfg, "claims", "--month", "2026-10", "--read-only"); code != 1 || !strings.Contains(errs, "GET /v1/claims?month=2026-10") {
		t.Errorf("ledger in use, --read-only: %d %s", code, errs)
	}
}

// lineWatcher is an io.Writer that hands the first line containing want to a channel.
type lineWatcher struct {
	want  string
	lines chan string
	buf   bytes.Buffer
	all   bytes.Buffer
	sent  bool
}

func (w *lineWatcher) Write(b []byte) (int, error) {
	w.all.Write(b)
	w.buf.Write(b)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(b), nil
		}
		if !w.sent && strings.Contains(line, w.want) {
			w.sent = true
			w.lines <- line
		}
	}
}

// addrOf returns the address in "serving https on ADDR (".
func addrOf(t *testing.T, line string) string {
	t.Helper()
	_, rest, ok := strings.Cut(line, " on ")
	addr, _, ok2 := strings.Cut(rest, " (")
	if !ok || !ok2 {
		t.Fatalf("no address in %q", line)
	}
	return addr
}

// TestServeInProcess runs serve in-process over TLS with "today" pinned (run's clock)
// to the end of a leap February, the first of a month after a 28-day February, and both
// sides of a new year; it posts a batch of the previous month (29, 28, 30 and 31 days)
// and a date after today, reads the claims online and offline (claims --month), and
// stops serve with its context: it exits 0 and the ledger keeps the batch.
func TestServeInProcess(t *testing.T) {
	for _, pd := range testenv.PinnedDays(t) {
		t.Run(pd.Today.Format(time.DateOnly), func(t *testing.T) {
			month, err := collector.ParseMonth(pd.Previous)
			if err != nil {
				t.Fatal(err)
			}
			serveInProcess(t, pd.Today, month)
		})
	}
}

func serveInProcess(t *testing.T, today time.Time, month collector.Month) {
	// Noon in UTC+8, the zone of the records: the collector's clock stands still there.
	pinned := today.Add(4 * time.Hour)
	now := func() time.Time { return pinned }
	pki := collectortest.New(t)
	konka := collectortest.Key(t, "maker konka")
	dataDir := t.TempDir()
	// Months close 40 days after their end: the previous month is still open on each
	// pinned day (closing is tested by TestHeldCommands and TestServeClosesDueMonths).
	cfg := writeConfig(t, testConfig{Listen: "127.0.0.1:0", TLSCert: pki.CertFile, TLSKey: pki.KeyFile, DataDir: dataDir,
		Makers: []testMaker{{ID: "konka", PublicKey: konka.PublicKey().String(), TokenSHA256: hash("konka token")}},
		Claims: &testClaims{CloseAfterDays: 40, UTCOffsetMinutes: 480}})
	// The handset is registered as sold before the server starts (the serial tag of
	// collectortest.Certify's label "in-process").
	tag := sha256.Sum256([]byte("in-process"))
	sold := writeFile(t, "sold.json", fmt.Sprintf(`[{"serial_tag":"%x","maker_id":"konka","sold_at":"2025-12-31T23:00:00+08:00","channel":"carrier-1"}]`, tag))
	var regOut, regErr strings.Builder
	if code := run(context.Background(), []string{"--config", cfg, "registry", "import", sold}, &regOut, &regErr,
		func(string) string { return "" }, now); code != 0 || !strings.Contains(regOut.String(), "imported 1 sales") {
		t.Fatalf("registry import: %d %s%s", code, regOut.String(), regErr.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &lineWatcher{want: "serving https on", lines: make(chan string, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfg, "serve"}, io.Discard, w, func(string) string { return "" }, now)
	}()
	var line string
	select {
	case line = <-w.lines:
	case code := <-done:
		t.Fatalf("serve exited %d before serving", code)
	case <-time.After(time.Minute):
		t.Fatal("serve did not start within a minute")
	}
	url := "https://" + addrOf(t, line)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}
	defer client.CloseIdleConnections()
	d := collectortest.NewDevice(t, "in-process")
	d.Cert = collectortest.Certify(t, konka, "konka", d.Key.PublicKey(), "in-process", pinned.AddDate(0, -2, 0))
	recs := [][]byte{d.Genesis()}
	last := month.Last().Day()
	for day := last - 9; day <= last; day++ { // ten active days, the month's last one among them
		recs = append(recs, d.Active(proof.NewDate(month.Year, month.Month, day)))
	}
	tomorrow := proof.DateOf(pinned, 480).Next()
	recs = append(recs, d.Active(tomorrow))
	resp, err := client.Post(url+"/v1/records", proof.BatchContentType, bytes.NewReader(collectortest.Batch(t, recs...)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), `"accepted"`) != 11 || strings.Count(string(body), `"future_date"`) != 1 {
		t.Fatalf("POST (today %s): %d %s", today.Format(time.DateOnly), resp.StatusCode, body)
	}
	if !strings.Contains(string(body), fmt.Sprintf(`"server_time":%d`, pinned.Unix())) {
		t.Errorf("server_time is not the pinned clock's %d: %s", pinned.Unix(), body)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/claims?month=%s", url, month), nil)
	req.Header.Set("Authorization", "Bearer konka token")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"eligible_devices":1`) {
		t.Errorf("claims: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d:\n%s", code, w.all.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop within a minute")
	}
	if !strings.Contains(w.all.String(), "amos-collector: stopped") {
		t.Errorf("log:\n%s", w.all.String())
	}
	var out, errs strings.Builder
	if code := run(context.Background(), []string{"--config", cfg, "claims", "--month", month.String(), "--format", "csv"}, &out, &errs,
		func(string) string { return "" }, now); code != 0 || !strings.Contains(out.String(), "konka,1,") {
		t.Errorf("claims --month %s: exit %d\n%s%s", month, code, out.String(), errs.String())
	}
	l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, _ := collector.New(l, collector.Options{})
	// The future date is kept as a chain link and never counted.
	if r, err := c.Device(d.ID()); err != nil || r.Epochs[0].HeadSeq != 12 || r.Epochs[0].FutureDate != 1 ||
		len(r.Months) != 1 || r.Months[0].Month != month.String() || r.Months[0].ActiveDays != 10 {
		t.Errorf("after stop: %+v %v", r, err)
	}
}
