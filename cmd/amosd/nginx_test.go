package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/rigs/nginxtest"
	"amos.example/amosd/rigs/testenv"
)

// TestSyncThroughNginx runs the real amosd against the real amos-collector behind
// Debian's nginx in the configuration of docs/operations.md ("Behind nginx"): nginx
// holds the certificate the phone pins, the collector serves plain http on loopback,
// and the daemon's first sync (its genesis) is accepted through the proxy.
func TestSyncThroughNginx(t *testing.T) {
	nginxtest.Require(t)
	bus := testenv.StartBus(t)
	amosd := testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=e2e")
	collector := testenv.Build(t, "amos.example/amosd/cmd/amos-collector", "-X main.version=e2e")
	dir := t.TempDir()
	pki := collectortest.New(t)

	runTool(t, collector, "maker", "keygen", "--out", filepath.Join(dir, "konka"))
	makerPub, err := os.ReadFile(filepath.Join(dir, "konka.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeJSON := func(name string, v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sum := sha256.Sum256([]byte("konka-secret-token"))
	colCfg := writeJSON("collector.json", map[string]any{
		"listen": "127.0.0.1:0", "allow_insecure_http": true, "data_dir": filepath.Join(dir, "ledger"),
		"makers":             []map[string]string{{"id": "konka", "public_key": strings.TrimSpace(string(makerPub)), "token_sha256": hex.EncodeToString(sum[:])}},
		"payer_token_sha256": hex.EncodeToString(make([]byte, 32)),
		"limits":             map[string]any{"address_requests_per_second": 0}, // every connection is nginx's
	})
	col := exec.Command(collector, "--config", colCfg, "serve")
	stderr, _ := col.StderrPipe()
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.Process.Kill(); col.Wait() })
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`on (127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("collector: %s", sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var upstream string
	select {
	case upstream = <-addr:
	case <-time.After(time.Minute):
		t.Fatal("amos-collector did not say where it listens")
	}
	ng := nginxtest.Start(t, nginxtest.Options{Upstream: upstream, CertFile: pki.CertFile, KeyFile: pki.KeyFile})

	persist := filepath.Join(dir, "persist")
	cfgPath := writeJSON("amosd.json", map[string]any{
		"data_dir": filepath.Join(dir, "data"), "key_dir": persist, "server_url": "https://" + ng.Addr, "ca_file": pki.CAFile,
		"bus": bus.Address, "sources": []string{"amos-power"}, "consent_default": true, "log": "stderr",
		"sync": map[string]any{"spread": "0s"},
	})
	var ident struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal([]byte(runTool(t, amosd, "--config", cfgPath, "identity", "--json")), &ident); err != nil {
		t.Fatal(err)
	}
	serial := sha256.Sum256([]byte("IMEI 860000000000043"))
	runTool(t, collector, "maker", "certify", "--key", filepath.Join(dir, "konka.key"), "--maker-id", "konka",
		"--model", "Amos T1", "--serial-tag", hex.EncodeToString(serial[:]), "--device-pub", ident.PublicKey,
		"--out", filepath.Join(persist, "device.cert"))

	d := startDaemon(t, amosd, cfgPath)
	d.waitLog("sync: ok: 1 accepted") // the genesis, through nginx
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("amosd exit %d", code)
	}
	if reqs := ng.WaitRequests(t, 1); reqs[0].Status != 200 || reqs[0].Protocol != "HTTP/1.1" {
		t.Fatalf("nginx logged %+v, want a 200 over HTTP/1.1", reqs)
	}
}
