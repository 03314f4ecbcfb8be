package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
)

// server is a running `amos-collector serve` process.
type server struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

// startServer starts the binary and waits for its "serving https on ADDR" line.
func startServer(t *testing.T, ctx context.Context, bin, cfg string, env []string) *server {
	t.Helper()
	s := &server{cmd: testenv.Command(ctx, bin, "--config", cfg, "serve"), done: make(chan error, 1)}
	s.cmd.Env = env
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if !sent && strings.Contains(sc.Text(), "serving https on ") {
				lines <- sc.Text()
				sent = true
			}
		}
		close(lines)
		s.done <- s.cmd.Wait()
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("the server exited before serving:\n%s", s.logText())
		}
		s.url = "https://" + addrOf(t, line)
	case <-time.After(2 * time.Minute):
		t.Fatalf("the server did not start within 2 minutes:\n%s", s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// wait returns the exit code once the process has exited.
func (s *server) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-s.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return -int(ws.Signal())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(2 * time.Minute):
		t.Fatalf("the server did not exit within 2 minutes:\n%s", s.logText())
		return 0
	}
}

// client is a TLS client that trusts only the test CA.
type client struct {
	t     *testing.T
	c     *http.Client
	shift time.Duration // the server's clock is the machine's plus shift
}

// post sends a batch; it returns the verdicts, or an error if no answer came.
func (c *client) post(url string, records [][]byte) ([]string, error) {
	resp, err := c.c.Post(url+"/v1/records", proof.BatchContentType, bytes.NewReader(collectortest.Batch(c.t, records...)))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var rc collector.Receipt
	if err := json.Unmarshal(body, &rc); err != nil {
		return nil, err
	}
	if len(rc.Results) != len(records) {
		return nil, fmt.Errorf("%d results for %d records", len(rc.Results), len(records))
	}
	if d := time.Now().Add(c.shift).Sub(time.Unix(rc.ServerTime, 0)); d < -time.Minute || d > time.Minute {
		return nil, fmt.Errorf("server_time %d is %v away", rc.ServerTime, d)
	}
	out := make([]string, len(rc.Results))
	for i, r := range rc.Results {
		out[i] = strings.TrimSpace(string(r.Status) + " " + string(r.Reason))
	}
	return out, nil
}

func (c *client) get(url, token string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// send makes a request with a body.
func (c *client) send(method, url, token, contentType string, body []byte) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// claimFigures returns the month, the status and each row's figures of a claim's
// JSON, or why it does not decode.
func claimFigures(body string) string {
	var c collector.Claims
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		return err.Error()
	}
	var rows []string
	for _, r := range c.Rows {
		rows = append(rows, fmt.Sprintf("%s paid %d eligible %d CNY %d held %d refused %d late %d unregistered %d",
			r.MakerID, r.Paid, r.EligibleDevices, r.AmountCNY, r.Held, r.Refused, r.Late, r.Unregistered))
	}
	return c.Month + " " + c.Status + " " + strings.Join(rows, "; ")
}

func all(verdicts []string, want string) bool {
	for _, v := range verdicts {
		if v != want {
			return false
		}
	}
	return len(verdicts) > 0
}

// TestBinaryEndToEnd runs the real binary, built as the Makefile builds it (through
// QEMU when the suite runs cross-compiled): maker keys and certificates made by its
// own commands, the sold handsets registered offline (`registry import`) and through
// the server (POST /v1/registry), `serve` over TLS with a CA made here, batches
// POSTed by a client that pins that CA, a SIGKILL in the middle of the stream and a
// restart that loses nothing, devices and claims read with each token, SIGTERM, and
// then the offline
// `claims`, `held list` and `verify` commands on what the server stored.
func TestBinaryEndToEnd(t *testing.T) {
	// A fake-clock build: "today" is 2027-03-01 (the time of day stays the machine's).
	bin := testenv.BuildTagged(t, "amos.example/amosd/cmd/amos-collector", "amosfakeclock", "-X main.version=v9.8.7-test", "-X main.commit=0123456789ab")
	today := time.Date(2027, time.March, 1, 0, 0, 0, 0, time.UTC)
	shift := today.Sub(time.Now().UTC().Truncate(24 * time.Hour))
	clockEnv := append(os.Environ(), "AMOS_COLLECTOR_CLOCK_SHIFT="+shift.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	runBin := func(args ...string) (int, string, string) {
		cmd := testenv.Command(ctx, bin, args...)
		cmd.Env = clockEnv
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errb.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	if code, out, _ := runBin("version"); code != 0 || !strings.HasPrefix(out, "amos-collector v9.8.7-test commit 0123456789ab linux/") {
		t.Errorf("version: %d %q", code, out)
	}

	// The makers' keys, by the binary.
	dir := t.TempDir()
	pub := map[string]string{}
	for _, m := range []string{"konka", "tcl"} {
		if code, out, errs := runBin("maker", "keygen", "--out", filepath.Join(dir, m)); code != 0 {
			t.Fatalf("keygen %s: %d %s %s", m, code, out, errs)
		}
		b, err := os.ReadFile(filepath.Join(dir, m+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		pub[m] = strings.TrimSpace(string(b))
	}
	// certify is the factory step: the binary signs each device key.
	certify := func(d *collectortest.Device, maker, serial string) {
		t.Helper()
		out := filepath.Join(dir, d.ID().String()+".cert")
		code, stdout, errs := runBin("maker", "certify", "--key", filepath.Join(dir, maker+".key"), "--maker-id", maker,
			"--model", "Amos E2E", "--serial-tag", serial, "--device-pub", d.Key.PublicKey().String(), "--out", out)
		if code != 0 {
			t.Fatalf("certify: %d %s %s", code, stdout, errs)
		}
		b, _ := os.ReadFile(out)
		if d.Cert, _ = proof.ParseCertificate(b); d.Cert == nil {
			t.Fatalf("certificate %s does not parse", out)
		}
	}

	pki := collectortest.New(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, testConfig{Listen: "127.0.0.1:0", TLSCert: pki.CertFile, TLSKey: pki.KeyFile, DataDir: dataDir,
		Makers: []testMaker{{ID: "konka", PublicKey: pub["konka"], TokenSHA256: hash("konka e2e token")},
			{ID: "tcl", PublicKey: pub["tcl"], TokenSHA256: hash("tcl e2e token")}},
		PayerTokenSHA256: hash("payer e2e token")})
	cl := &client{t: t, shift: shift, c: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}}
	defer cl.c.CloseIdleConnections()

	// The fleet: 8 konka devices and 4 tcl devices, each uploading its genesis and the
	// first 12 days of last month (February 2027, by the server's shifted clock) in 3
	// batches. Each phone has its own counters (phones reporting the same ones on the
	// same dates are clones, held).
	month := today.AddDate(0, -1, 0)
	var devices []*collectortest.Device
	var batches [][][]byte
	konkaSales := "serial_tag,maker_id,sold_at,channel\n"
	var tclSales []map[string]string
	for i := range 12 {
		maker := "konka"
		if i >= 8 {
			maker = "tcl"
		}
		d := collectortest.NewDevice(t, fmt.Sprint("e2e ", i))
		serial := fmt.Sprintf("%064x", i+1)
		certify(d, maker, serial)
		if maker == "konka" {
			konkaSales += serial + ",konka,2027-01-15,taobao\n"
		} else {
			tclSales = append(tclSales, map[string]string{"serial_tag": serial, "maker_id": "tcl", "sold_at": "2027-01-20T15:30:00+08:00", "channel": "carrier-1"})
		}
		devices = append(devices, d)
		recs := [][]byte{d.Genesis()}
		for day := 1; day <= 12; day++ {
			recs = append(recs, d.Day(proof.NewDate(month.Year(), month.Month(), day), 900+uint32(i)*10, 3))
		}
		batches = append(batches, recs[:5], recs[5:9], recs[9:])
	}

	// The konka handsets are registered as sold before the server starts (offline, the
	// ledger is made by the import); the tcl ones through the server below.
	konkaFile := filepath.Join(dir, "konka-sales.csv")
	if err := os.WriteFile(konkaFile, []byte(konkaSales), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runBin("--config", cfg, "registry", "import", konkaFile); code != 0 || out != "imported 8 sales from "+konkaFile+" (0 already registered)\n" {
		t.Fatalf("registry import: %d %q %s", code, out, errs)
	}

	srv := startServer(t, ctx, bin, cfg, clockEnv)
	// The offline import is refused while the server holds the ledger: it names the way.
	if code, _, errs := runBin("--config", cfg, "registry", "import", konkaFile); code != 1 || !strings.Contains(errs, "POST /v1/registry") {
		t.Errorf("registry import while serving: %d %s", code, errs)
	}
	// A second server on the same data_dir is refused: the ledger is locked.
	if code, _, errs := runBin("--config", cfg, "serve"); code != 1 || !strings.Contains(errs, "in use") {
		t.Errorf("second serve: %d %s", code, errs)
	}

	// Stream the batches; after the 10th answer, SIGKILL the server while the next
	// POSTs are on their way.
	acked := map[int]bool{}
	killAfter := make(chan struct{})
	posted := make(chan struct{})
	var kill sync.Once
	go func() {
		defer close(posted)
		defer kill.Do(func() { close(killAfter) }) // a stream that ends early fails below, not hangs
		for i, b := range batches {
			v, err := cl.post(srv.url, b)
			if err != nil {
				t.Logf("batch %d: %v", i, err)
				return // the server is gone
			}
			if !all(v, "accepted") {
				t.Errorf("batch %d: %v", i, v)
			}
			acked[i] = true
			if len(acked) == 10 {
				kill.Do(func() { close(killAfter) })
			}
		}
	}()
	<-killAfter
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t); code != -int(syscall.SIGKILL) {
		t.Errorf("killed server exited %d", code)
	}
	<-posted
	if len(acked) < 10 {
		t.Fatalf("only %d batches acknowledged", len(acked))
	}
	t.Logf("%d of %d batches acknowledged before the SIGKILL", len(acked), len(batches))

	// Restart, and re-send everything, as devices do with their queues: acknowledged
	// batches are duplicates, every other batch is all accepted or all duplicates (one
	// transaction per batch), and nothing is missing.
	cl.c.CloseIdleConnections()
	srv = startServer(t, ctx, bin, cfg, clockEnv)
	for i, b := range batches {
		v, err := cl.post(srv.url, b)
		if err != nil {
			t.Fatalf("batch %d after restart: %v", i, err)
		}
		switch {
		case acked[i] && !all(v, "duplicate"):
			t.Errorf("acknowledged batch %d after restart: %v", i, v)
		case !acked[i] && !all(v, "accepted") && !all(v, "duplicate"):
			t.Errorf("batch %d after restart is neither all accepted nor all duplicate: %v", i, v)
		}
	}

	// The payer registers the tcl handsets through the server; a maker may not.
	tclJSON, err := json.Marshal(map[string]any{"sales": tclSales})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token string
		code  int
		body  string
	}{
		{"tcl e2e token", 403, ""},
		{"payer e2e token", 200, `{"added":4,"unchanged":0}`},
		{"payer e2e token", 200, `{"added":0,"unchanged":4}`},
	} {
		code, body := cl.send("POST", srv.url+"/v1/registry", tc.token, "application/json", tclJSON)
		if code != tc.code || (tc.body != "" && strings.TrimSpace(body) != tc.body) {
			t.Errorf("POST /v1/registry with %q: %d %s", tc.token, code, body)
		}
	}

	// Devices and claims, with each token.
	kd, td := devices[0], devices[8]
	code, body := cl.get(srv.url+"/v1/devices/"+kd.ID().String(), "konka e2e token")
	var rep collector.DeviceReport
	if code != 200 || json.Unmarshal([]byte(body), &rep) != nil || rep.Epochs[0].HeadSeq != 13 || rep.Months[0].ActiveDays != 12 || !rep.Attributed {
		t.Errorf("konka's device: %d %s", code, body)
	}
	if code, body := cl.get(srv.url+"/v1/devices/"+td.ID().String(), "konka e2e token"); code != 404 {
		t.Errorf("tcl's device seen by konka: %d %s", code, body)
	}
	if code, _ := cl.get(srv.url+"/v1/devices/"+td.ID().String(), "payer e2e token"); code != 200 {
		t.Errorf("payer: %d", code)
	}
	if code, _ := cl.get(srv.url+"/v1/devices/"+td.ID().String(), ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	m := fmt.Sprintf("%04d-%02d", month.Year(), int(month.Month()))
	const wantAll = "2027-02 provisional konka paid 8 eligible 8 CNY 8 held 0 refused 0 late 0 unregistered 0; tcl paid 4 eligible 4 CNY 4 held 0 refused 0 late 0 unregistered 0"
	for _, tc := range []struct{ token, want string }{
		{"konka e2e token", "2027-02 provisional konka paid 8 eligible 8 CNY 8 held 0 refused 0 late 0 unregistered 0"},
		{"tcl e2e token", "2027-02 provisional tcl paid 4 eligible 4 CNY 4 held 0 refused 0 late 0 unregistered 0"},
		{"payer e2e token", wantAll},
	} {
		if code, body := cl.get(srv.url+"/v1/claims?month="+m, tc.token); code != 200 || claimFigures(body) != tc.want {
			t.Errorf("claims with %q: %d %s\n%s", tc.token, code, claimFigures(body), body)
		}
	}
	if code, body := cl.get(srv.url+"/v1/claims?month="+m+"&format=csv", "tcl e2e token"); code != 200 ||
		body != "maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at\ntcl,4,4,4,0,0,0,0,provisional,\n" {
		t.Errorf("csv: %d %q", code, body)
	}
	if code, _ := cl.get(srv.url+"/v1/claims?month="+m, "guess"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, body := cl.get(srv.url+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, body := cl.get(srv.url+"/console/signin", ""); code != 200 || !strings.Contains(body, `<form method="post" action="/console/signin">`) {
		t.Errorf("the console's sign-in form: %d %s", code, body)
	}

	// SIGTERM: a clean stop, exit 0.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t); code != 0 {
		t.Errorf("SIGTERM: exit %d\n%s", code, srv.logText())
	}
	if !strings.Contains(srv.logText(), "amos-collector: stopped") {
		t.Errorf("log:\n%s", srv.logText())
	}

	// Offline, on what the server stored.
	if code, out, errs := runBin("--config", cfg, "claims", "--month", m); code != 0 || claimFigures(out) != wantAll {
		t.Errorf("offline claims: %d %s %s", code, out, errs)
	}
	if code, out, errs := runBin("--config", cfg, "claims", "--month", m, "--devices", "--format", "csv"); code != 0 ||
		strings.Count(out, ",paid,") != 12 || strings.Count(out, "\n") != 13 {
		t.Errorf("offline claims --devices: %d %s %s", code, out, errs)
	}
	if code, out, errs := runBin("--config", cfg, "held", "list", "--month", m); code != 0 || out != `{"month":"`+m+`","status":"provisional","devices":[]}`+"\n" {
		t.Errorf("offline held list: %d %s %s", code, out, errs)
	}
	var whole [][]byte
	for _, b := range batches[:3] {
		whole = append(whole, b...)
	}
	file := filepath.Join(t.TempDir(), "device0.batch")
	if err := os.WriteFile(file, collectortest.Batch(t, whole...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runBin("--config", cfg, "verify", file); code != 0 || !strings.Contains(out, "13 records: 13 accepted") {
		t.Errorf("verify: %d %s %s", code, out, errs)
	}
}
