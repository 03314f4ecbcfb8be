package linuxbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/rigs/keystoretest"
	"amos.example/amosd/rigs/testenv"
)

// keystorePolicyFile is the development policy of com.amos.Keystore1 (amos-keystored as
// root).
const keystorePolicyFile = "com.amos.Keystore1.conf"

// TestKeystorePolicy: on a Debian-like system bus with this folder's two policy files,
// amos-keystored as root owns com.amos.Keystore1 and nobody (65534) cannot; amosd as its
// service user makes its attested key there at the factory (amosd identity); the
// phone's user 1000 is refused by the bus.
func TestKeystorePolicy(t *testing.T) {
	needRoot(t)
	if _, err := osexec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed (apt-get install dbus-daemon)")
	}
	svc, phone, nobody := lookup(t, serviceUser), lookup(t, strconv.Itoa(phoneUID)), lookup(t, "65534")
	shared := testenv.SharedDir(t)
	agentPolicy, keystorePolicy := here(t, policyFile), here(t, keystorePolicyFile)
	conf := strings.Replace(systemBusConfig(filepath.Join(shared, "bus"), "", agentPolicy),
		"<include>"+agentPolicy+"</include>", "<include>"+agentPolicy+"</include>\n  <include>"+keystorePolicy+"</include>", 1)
	confPath := filepath.Join(t.TempDir(), "system.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bus := testenv.StartBusConfig(t, confPath)
	keystored := filepath.Join(shared, "amos-keystored")
	testenv.CopyFile(t, testenv.Build(t, "amos.example/amosd/cmd/amos-keystored"), keystored, 0o755)
	amosd := filepath.Join(shared, "amosd")
	testenv.CopyFile(t, testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=linux-build"), amosd, 0o755)

	run := func(a account, bin string, args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := testenv.Command(ctx, bin, args...)
		a.as(cmd)
		out, err := cmd.CombinedOutput()
		var ee *osexec.ExitError
		switch {
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		case err != nil:
			t.Fatalf("%s as %s: %v\n%s", filepath.Base(bin), a.name, err, out)
		}
		return string(out), 0
	}

	// nobody may not own the name.
	nobodyState := privateDir(t, shared, "nobody-keystore", nobody)
	out, code := run(nobody, keystored, "--bus", bus.Address, "--state", filepath.Join(nobodyState, "keys"))
	if code != 1 || !strings.Contains(out, "does not let uid 65534 own com.amos.Keystore1") {
		t.Fatalf("amos-keystored as nobody: exit %d\n%s", code, out)
	}

	// root runs it, for amosd's service user.
	ks := testenv.Command(testenv.Context(t, 5*time.Minute), keystored, "--bus", bus.Address, "--state", filepath.Join(t.TempDir(), "keys"),
		"--allow-uid", strconv.Itoa(int(svc.uid)), "--allow-uid", strconv.Itoa(int(phone.uid)))
	var ksLog lockedBuffer
	ks.Stderr = &ksLog
	if err := ks.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Process.Kill(); ks.Wait(); t.Logf("amos-keystored:\n%s", ksLog.String()) })
	keystoretest.WaitName(t, bus.Address, keystore.Name, 30*time.Second)

	config := func(a account, name string) string {
		var cfg map[string]any
		if err := json.Unmarshal([]byte(readFile(t, configFile)), &cfg); err != nil {
			t.Fatal(err)
		}
		cfg["data_dir"], cfg["key_dir"], cfg["bus"] = privateDir(t, shared, name+"-data", a), privateDir(t, shared, name+"-persist", a), bus.Address
		cfg["server_url"], cfg["allow_insecure_http"], cfg["sources"] = "http://127.0.0.1:9", true, []string{}
		cfg["key"] = map[string]any{"backend": "keystore"}
		delete(cfg, "ca_file")
		b, _ := json.Marshal(cfg)
		p := filepath.Join(shared, name+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tag := strings.Repeat("5a", 32)
	out, code = run(svc, amosd, "--config", config(svc, "amosd"), "identity", "--json", "--maker-id", "konka", "--serial-tag", tag)
	var ident struct {
		Backend     string `json:"backend"`
		ChainLength int    `json:"chain_length"`
		Generated   bool   `json:"generated"`
	}
	if err := json.Unmarshal([]byte(out), &ident); err != nil || code != 0 || !ident.Generated || ident.Backend != "keystore" || ident.ChainLength != 3 {
		t.Fatalf("amosd identity as %s: exit %d, %v\n%s", svc.name, code, err, out)
	}
	if !strings.Contains(ksLog.String(), "uid "+strconv.Itoa(int(svc.uid))+": generated key") {
		t.Errorf("the key was not made for uid %d:\n%s", svc.uid, ksLog.String())
	}

	// The phone's user: the keystore would serve it, the bus policy does not let it call.
	out, code = run(phone, amosd, "--config", config(phone, "phone"), "identity", "--json", "--maker-id", "konka", "--serial-tag", tag)
	if code != 2 || !strings.Contains(out, "Rejected send message") || !strings.Contains(out, keystore.ErrAccessDenied.Error()) {
		t.Fatalf("amosd identity as uid %d: exit %d, want the bus's refusal:\n%s", phone.uid, code, out)
	}
	if bytes.Contains([]byte(ksLog.String()), []byte("uid "+strconv.Itoa(int(phone.uid))+":")) {
		t.Errorf("the keystore saw a call of uid %d", phone.uid)
	}
}
