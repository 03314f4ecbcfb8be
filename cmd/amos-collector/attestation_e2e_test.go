package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
)

// TestBinaryAttestation runs the real server with konka's attestation required, a
// development root as the only trusted root and a status list file: a P-256 handset
// whose key its hardware attested (its genesis carries the chain) is paid; one whose
// key was made in software is refused not_attested; GET /v1/devices shows each
// verdict; GET /metrics exports the list's age.
func TestBinaryAttestation(t *testing.T) {
	bin := testenv.BuildTagged(t, "amos.example/amosd/cmd/amos-collector", "amosfakeclock")
	today := time.Date(2027, time.March, 1, 0, 0, 0, 0, time.UTC)
	shift := today.Sub(time.Now().UTC().Truncate(24 * time.Hour))
	env := append(os.Environ(), "AMOS_COLLECTOR_CLOCK_SHIFT="+shift.String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		cmd := testenv.Command(ctx, bin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("amos-collector %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}
	dir := t.TempDir()
	run("maker", "keygen", "--out", filepath.Join(dir, "konka"))
	konkaPub, err := os.ReadFile(filepath.Join(dir, "konka.pub"))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := devattest.New(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), "amos e2e")
	if err != nil {
		t.Fatal(err)
	}
	rootFile, statusFile := filepath.Join(dir, "root.pem"), filepath.Join(dir, "status.json")
	os.WriteFile(rootFile, auth.RootPEM(), 0o644)
	os.WriteFile(statusFile, []byte(`{"entries":{}}`), 0o644)
	pki := collectortest.New(t)
	cfg, _ := json.MarshalIndent(map[string]any{
		"listen": "127.0.0.1:0", "tls_cert": pki.CertFile, "tls_key": pki.KeyFile, "data_dir": filepath.Join(dir, "data"),
		"makers": []map[string]any{{"id": "konka", "public_key": strings.TrimSpace(string(konkaPub)), "token_sha256": hash("konka token"),
			"attestation": "required", "boot_keys": []string{hex.EncodeToString(devattest.BootKey("amos e2e"))}}},
		"payer_token_sha256": hash("payer token"),
		"attestation":        map[string]any{"google_roots": false, "roots": []string{rootFile}, "status_list": statusFile},
	}, "", "  ")
	cfgFile := filepath.Join(dir, "config.json")
	os.WriteFile(cfgFile, cfg, 0o600)

	// The factory: two P-256 keys certified by the binary; the hardware attests one.
	month := today.AddDate(0, -1, 0)
	sales := "serial_tag,maker_id,sold_at,channel\n"
	var devs []*collectortest.Device
	for i, label := range []string{"attested", "software"} {
		d := collectortest.NewP256Device(t, label)
		serial := fmt.Sprintf("%064x", i+1)
		certFile := filepath.Join(dir, label+".cert")
		run("maker", "certify", "--key", filepath.Join(dir, "konka.key"), "--maker-id", "konka", "--model", "Amos E2E",
			"--serial-tag", serial, "--device-pub", d.Key.PublicKey().String(), "--out", certFile)
		b, _ := os.ReadFile(certFile)
		if d.Cert, err = proof.ParseCertificate(b); err != nil || d.Cert.DevicePublicKey != d.Key.PublicKey() {
			t.Fatalf("%s: the certificate of a P-256 key: %v", label, err)
		}
		if label == "attested" {
			pub, _ := d.Key.PublicKey().ECDSA()
			if d.Chain, err = auth.Attest(pub, devattest.Options{Challenge: proof.AttestationChallenge("konka", d.Cert.SerialTag)}); err != nil {
				t.Fatal(err)
			}
		}
		sales += serial + ",konka,2027-01-15,taobao\n"
		devs = append(devs, d)
	}
	salesFile := filepath.Join(dir, "sales.csv")
	os.WriteFile(salesFile, []byte(sales), 0o600)
	run("--config", cfgFile, "registry", "import", salesFile)

	srv := startServer(t, ctx, bin, cfgFile, env)
	cl := &client{t: t, shift: shift, c: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}}
	defer cl.c.CloseIdleConnections()
	for i, d := range devs {
		recs := [][]byte{d.Genesis()}
		for day := 1; day <= 12; day++ { // each phone its own counters: identical ones are clones, held
			recs = append(recs, d.Day(proof.NewDate(month.Year(), month.Month(), day), 900+uint32(i)*37, 3))
		}
		if v, err := cl.post(srv.url, recs); err != nil || !all(v, "accepted") {
			t.Fatalf("upload: %v %v", v, err)
		}
	}
	var rep struct {
		KeyType     string `json:"key_type"`
		Attestation *struct {
			Accepted      bool   `json:"accepted"`
			SecurityLevel string `json:"security_level"`
		} `json:"attestation"`
	}
	for i, want := range []string{"p256 accepted TrustedEnvironment", "p256 none"} {
		code, body := cl.get(srv.url+"/v1/devices/"+devs[i].ID().String(), "payer token")
		rep.Attestation = nil
		if err := json.Unmarshal([]byte(body), &rep); code != 200 || err != nil {
			t.Fatalf("device %d: %d %s", i, code, body)
		}
		got := rep.KeyType + " none"
		if a := rep.Attestation; a != nil && a.Accepted {
			got = rep.KeyType + " accepted " + a.SecurityLevel
		}
		if got != want {
			t.Errorf("device %d: %s, want %s (%s)", i, got, want, body)
		}
	}
	code, body := cl.get(srv.url+"/v1/claims?month="+month.Format("2006-01"), "payer token")
	if code != 200 || !strings.Contains(body, `"paid":1,"held":0,"refused":1,`) || !strings.Contains(body, `"attested":1,`) || !strings.Contains(body, `"not_attested":1`) {
		t.Errorf("claims: %d %s", code, body)
	}
	code, body = cl.get(srv.url+"/metrics", "")
	if code != 200 || !strings.Contains(body, "amos_attestation_status_stale 0\n") || !strings.Contains(body, "amos_attestation_status_age_seconds ") {
		t.Errorf("metrics: %d %s", code, body)
	}
	srv.cmd.Process.Signal(os.Interrupt)
	if code := srv.wait(t); code != 0 {
		t.Errorf("serve exited %d:\n%s", code, srv.logText())
	}
}
