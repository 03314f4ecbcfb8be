package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
)

// runTool runs a binary to completion and returns its output.
func runTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := testenv.Command(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return string(out)
}

// offsetToMidnight returns a reporting zone (minutes east of UTC) whose next midnight
// is between 40 and 100 seconds away, so that a real daemon closes a real day soon.
func offsetToMidnight(now time.Time) int {
	for off := proof.MinUTCOffsetMinutes; off <= proof.MaxUTCOffsetMinutes; off++ {
		local := now.UTC().Add(time.Duration(off) * time.Minute)
		next := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, time.UTC)
		if left := next.Sub(local); left >= 40*time.Second && left <= 100*time.Second {
			return off
		}
	}
	panic("no zone has its midnight in 40 to 100 seconds")
}

// TestEndToEndWithCollector runs the real amosd against the real amos-collector over
// TLS on loopback: the factory certifies the device key, the owner uses the phone
// (real D-Bus signals), local midnight closes the day, the daemon uploads it, and the
// maker finds the day in /v1/devices/{id}.
func TestEndToEndWithCollector(t *testing.T) {
	bus := testenv.StartBus(t)
	amosd := testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=e2e")
	collector := testenv.Build(t, "amos.example/amosd/cmd/amos-collector", "-X main.version=e2e")
	dir := t.TempDir()
	pki := collectortest.New(t)
	caFile, certFile, keyFile := pki.CAFile, pki.CertFile, pki.KeyFile

	// The factory: a maker key, the device key, a certificate binding them.
	runTool(t, collector, "maker", "keygen", "--out", filepath.Join(dir, "konka"))
	makerPub, err := os.ReadFile(filepath.Join(dir, "konka.pub"))
	if err != nil {
		t.Fatal(err)
	}
	offset := offsetToMidnight(time.Now())
	day := proof.DateOf(time.Now(), offset) // the date the coming midnight closes
	persist, data := filepath.Join(dir, "persist"), filepath.Join(dir, "data")
	writeJSON := func(name string, v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := "konka-secret-token"
	sum := sha256.Sum256([]byte(token))
	colCfg := writeJSON("collector.json", map[string]any{
		"listen": "127.0.0.1:0", "tls_cert": certFile, "tls_key": keyFile, "data_dir": filepath.Join(dir, "ledger"),
		"makers":             []map[string]string{{"id": "konka", "public_key": strings.TrimSpace(string(makerPub)), "token_sha256": hex.EncodeToString(sum[:])}},
		"payer_token_sha256": hex.EncodeToString(make([]byte, 32)),
	})
	// The collector says where it listens.
	col := exec.Command(collector, "--config", colCfg, "serve")
	if emu := testenv.Emulator(); len(emu) > 0 {
		col = exec.Command(emu[0], append(emu[1:], collector, "--config", colCfg, "serve")...)
	}
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
	var hostport string
	select {
	case hostport = <-addr:
	case <-time.After(time.Minute):
		t.Fatal("amos-collector did not say where it listens")
	}

	cfgPath := writeJSON("amosd.json", map[string]any{
		"data_dir": data, "key_dir": persist, "server_url": "https://" + hostport, "ca_file": caFile,
		"bus": bus.Address, "sources": []string{"amos-power"}, "consent_default": true, "log": "stderr",
		"utc_offset_minutes": offset, "sync": map[string]any{"spread": "0s"}, // the day goes at once
	})
	var ident struct {
		DeviceID  string `json:"device_id"`
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal([]byte(runTool(t, amosd, "--config", cfgPath, "identity", "--json")), &ident); err != nil {
		t.Fatal(err)
	}
	serial := sha256.Sum256([]byte("IMEI 860000000000042"))
	runTool(t, collector, "maker", "certify", "--key", filepath.Join(dir, "konka.key"), "--maker-id", "konka",
		"--model", "Amos T1", "--serial-tag", hex.EncodeToString(serial[:]), "--device-pub", ident.PublicKey,
		"--out", filepath.Join(persist, "device.cert"))

	// The phone: the owner uses it before local midnight.
	pm, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if _, err := pm.RequestName("com.amos.PowerManager", dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	emit := func(member string, args ...any) {
		if err := pm.Emit("/com/amos/PowerManager", "com.amos.PowerManager1."+member, args...); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, amosd, cfgPath)
	d.waitLog("sync: ok: 1 accepted") // the genesis, with the maker certificate
	d.waitLog("event: amos-power available")
	emit("ScreenChanged", true)
	d.waitLog("event: amos-power screen_on")
	emit("LockChanged", false)
	d.waitLog("event: amos-power unlocked")
	emit("UserActivity")
	time.Sleep(2 * time.Second) // two seconds of real use
	emit("ScreenChanged", false)
	d.waitLog("event: amos-power screen_off")
	if proof.DateOf(time.Now(), offset) != day {
		t.Fatalf("midnight came before the use was over: the machine is too slow for this test")
	}
	d.waitLog("minted epoch 1 seq 2: " + day.String()) // local midnight
	d.waitLogN("sync: ok: 1 accepted", 2)
	if code := d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("amosd exit %d", code)
	}
	t.Logf("amosd:\n%s", d.log.String())

	// The maker's view of the device.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}
	req, _ := http.NewRequest("GET", "https://"+hostport+"/v1/devices/"+ident.DeviceID, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dev struct {
		Attributed bool   `json:"attributed"`
		MakerID    string `json:"maker_id"`
		Epochs     []struct {
			Epoch    uint32 `json:"epoch"`
			HeadSeq  uint64 `json:"head_seq"`
			LastDate string `json:"last_date"`
		} `json:"epochs"`
		Months []struct {
			Month        string `json:"month"`
			ReportedDays int    `json:"reported_days"`
		} `json:"months"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dev); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/devices: %d %v", resp.StatusCode, err)
	}
	t.Logf("device: %+v", dev)
	month := fmt.Sprintf("%04d-%02d", day.Year(), int(day.Month()))
	if !dev.Attributed || dev.MakerID != "konka" || len(dev.Epochs) != 1 || dev.Epochs[0].HeadSeq != 2 ||
		!strings.Contains(dev.Epochs[0].LastDate, fmt.Sprintf("%02d", day.Day())) || len(dev.Months) != 1 ||
		dev.Months[0].Month != month || dev.Months[0].ReportedDays != 1 {
		t.Fatalf("the collector does not show the day %s: %+v", day, dev)
	}
}
