package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
)

// cliRig runs a real amosd daemon on a private bus, and the amosd command line as
// separate processes, as root or as other uids.
type cliRig struct {
	t    *testing.T
	bus  *testenv.Bus
	bin  string // a copy of amosd that every uid may run
	dir  string // world-readable: config and binary
	cfg  string
	data string
	d    *daemon
}

func newCLIRig(t *testing.T) *cliRig {
	t.Helper()
	r := &cliRig{t: t, bus: testenv.StartBus(t)}
	r.dir = testenv.SharedDir(t)
	r.bin = filepath.Join(r.dir, "amosd")
	testenv.CopyFile(t, testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=cli-test"), r.bin, 0o755)
	r.data = filepath.Join(r.dir, "data")
	r.cfg = r.writeConfig("amosd.json", r.data, filepath.Join(r.dir, "persist"))
	return r
}

func (r *cliRig) writeConfig(name, data, persist string) string {
	cfg := map[string]any{
		"data_dir": data, "key_dir": persist,
		"server_url": "http://127.0.0.1:9", "allow_insecure_http": true,
		"bus": r.bus.Address, "sources": []string{}, "consent_default": true, "log": "stderr",
		"trusted_uids": []int{0, 1000}, "status_uids": []int{2000},
	}
	b, _ := json.Marshal(cfg)
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *cliRig) startDaemon() {
	r.d = startDaemon(r.t, r.bin, r.cfg)
	r.d.waitLog("connected as")
}

// run runs `amosd --config cfg args…` as uid (0: root) and returns the exit code and
// the output.
func (r *cliRig) run(uid uint32, args ...string) (int, string, string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := testenv.Command(ctx, r.bin, append([]string{"--config", r.cfg}, args...)...)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func (r *cliRig) expect(uid uint32, code int, fragment string, args ...string) string {
	r.t.Helper()
	got, out, errs := r.run(uid, args...)
	if got != code || !strings.Contains(out+errs, fragment) {
		r.t.Fatalf("uid %d amosd %v: exit %d (want %d), want %q in\nstdout: %s\nstderr: %s", uid, args, got, code, fragment, out, errs)
	}
	return out
}

func TestCommandLineAndAccessControl(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running clients as uid 2000 and 65534 needs root")
	}
	// dbus-daemon refuses a client whose uid has no passwd entry.
	testenv.Account(t, 2000, "amos-shell")
	testenv.Account(t, 65534, "nobody")
	r := newCLIRig(t)
	r.expect(0, 3, "is amosd running?", "status") // no daemon yet
	r.startDaemon()

	// Root is trusted: everything.
	out := r.expect(0, 0, "version:", "status")
	t.Logf("amosd status:\n%s", out)
	r.expect(0, 0, "reported screen_on", "report", "screen_on")
	r.expect(0, 0, "reported unlocked", "report", "unlocked")
	r.expect(0, 0, "reported input", "report", "input")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.expect(0, 0, "{", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range statusKeys {
		if _, ok := st[k]; !ok && k != "last_recovery" { // only once a store was recovered
			t.Errorf("status --json lacks %q", k)
		}
	}
	if _, ok := st["last_recovery"]; ok {
		t.Errorf("status --json has last_recovery without a recovery: %v", st["last_recovery"])
	}
	if st["consent"] != true || st["queued"] != float64(1) || st["epoch"] != float64(1) || st["version"] != "cli-test" {
		t.Errorf("status after a scripted start: %v", st)
	}

	// uid 2000 (Android shell, adb) may read status and flush, nothing else.
	r.expect(2000, 0, "device_id:", "status")
	r.expect(2000, 1, "access denied", "report", "input")
	r.expect(2000, 1, "access denied", "consent", "off")
	if _, _, errs := r.run(2000, "flush"); strings.Contains(errs, "access denied") {
		t.Errorf("uid 2000 was denied Flush: %s", errs)
	}
	// Anyone else gets nothing.
	r.expect(65534, 1, "access denied", "status")
	r.expect(65534, 1, "access denied", "flush")
	r.expect(65534, 1, "access denied", "report", "input")

	// Over D-Bus directly: an unknown event is InvalidArgs, introspection works, and a
	// new genesis after revoking and granting consent is announced by RecordMinted.
	conn, err := dbus.Connect(r.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	obj := conn.Object("com.amos.Agent1", "/com/amos/Agent1")
	call := obj.Call("com.amos.Agent1.ReportActivity", 0, "dance")
	var derr dbus.Error
	if !errors.As(call.Err, &derr) || derr.Name != "org.freedesktop.DBus.Error.InvalidArgs" {
		t.Errorf("ReportActivity(dance): %v", call.Err)
	}
	var xml string
	if err := obj.Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err != nil || !strings.Contains(xml, `<method name="ReportActivity">`) || !strings.Contains(xml, `<signal name="RecordMinted">`) {
		t.Errorf("introspection: %v\n%s", err, xml)
	}
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("com.amos.Agent1"), dbus.WithMatchMember("RecordMinted")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 8)
	conn.Signal(sigs)
	r.expect(0, 0, "consent off", "consent", "off")
	r.expect(0, 0, "consent on", "consent", "on")
	select {
	case sig := <-sigs:
		if len(sig.Body) != 3 || sig.Body[0] != uint32(2) || sig.Body[1] != uint64(1) || sig.Body[2] != uint32(0) {
			t.Errorf("RecordMinted%v, want the genesis of epoch 2", sig.Body)
		}
	case <-time.After(30 * time.Second):
		t.Error("no RecordMinted signal")
	}

	// A second daemon on the same bus refuses to run twice.
	other := r.writeConfig("other.json", filepath.Join(r.dir, "data2"), filepath.Join(r.dir, "persist2"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out2, err := testenv.Command(ctx, r.bin, "--config", other, "run").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out2), "another amosd running") {
		t.Errorf("second daemon: %v\n%s", err, out2)
	}

	// selftest, identity, and inspect of a store in use.
	_, selftest, _ := r.run(0, "selftest")
	t.Logf("amosd selftest:\n%s", selftest)
	r.expect(0, 1, "FAIL certificate", "selftest")
	var report struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Check string `json:"check"`
			OK    bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.expect(0, 1, `"checks"`, "selftest", "--json")), &report); err != nil || report.OK || len(report.Checks) < 6 {
		t.Errorf("selftest --json: %v %+v", err, report)
	}
	id := r.expect(0, 0, "device_id:", "identity")
	if !strings.Contains(id, st["device_id"].(string)) {
		t.Errorf("identity and status disagree:\n%s", id)
	}
	r.expect(0, 1, "in use by a running amosd", "inspect", "--data", r.data)

	// Stopped: not reachable (exit 3), and the store can be inspected.
	if code := r.d.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("daemon exit %d", code)
	}
	r.expect(0, 3, "is amosd running?", "status")
	r.expect(0, 0, "genesis (reason 2", "inspect", "--data", r.data)
	var rep struct {
		Queue []struct{ Epoch uint32 } `json:"queue"`
	}
	if err := json.Unmarshal([]byte(r.expect(0, 0, "chain_head", "inspect", "--data", r.data, "--json")), &rep); err != nil || len(rep.Queue) != 1 || rep.Queue[0].Epoch != 2 {
		t.Errorf("inspect --json: %v %+v", err, rep)
	}
	_, raw, _ := r.run(0, "inspect", "--data", r.data, "--raw")
	recs, err := proof.DecodeBatch([]byte(raw))
	if err != nil || len(recs) != 1 {
		t.Fatalf("inspect --raw is not a wire batch: %v", err)
	}
	if rec, err := proof.Decode(recs[0]); err != nil || rec.Kind() != proof.KindGenesis {
		t.Fatalf("inspect --raw record: %v", err)
	}
}
