package linuxbuild

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/rigs/testenv"
)

const (
	errAccessDenied = "org.freedesktop.DBus.Error.AccessDenied"
	// dbus-daemon's message when its policy refuses a message; amosd's own refusal
	// says "uid N may not call".
	busRefusal = "Rejected send message"
)

// TestPolicyOwnership: under the policy of com.amos.Agent1.conf, nobody (65534) cannot own
// the name and amosd says why and exits; root and the service user amosd can.
func TestPolicyOwnership(t *testing.T) {
	needRoot(t)
	root, nobody, svc := lookup(t, "root"), lookup(t, "65534"), lookup(t, serviceUser)
	r := newRig(t, "")
	conn := r.connect()
	w := watchOwner(t, conn)

	// nobody: refused by the bus, a clear error, exit 1, no owner.
	dir := r.shared
	d := r.startDaemon(nobody, r.writeConfig("nobody.json", privateDir(t, dir, "nobody-data", nobody), privateDir(t, dir, "nobody-persist", nobody)))
	if code := d.exitCode(2 * time.Minute); code != 1 {
		t.Fatalf("amosd as nobody: exit %d, want 1:\n%s", code, d.log.String())
	}
	log := d.log.String()
	t.Logf("amosd as nobody:\n%s", log)
	for _, want := range []string{"the bus policy does not let this user own com.amos.Agent1 (uid 65534)", "com.amos.Agent1.conf", "not allowed to own"} {
		if !strings.Contains(log, want) {
			t.Errorf("amosd as nobody does not say %q:\n%s", want, log)
		}
	}
	if o := owner(t, conn); o != "" {
		t.Fatalf("%s is owned by %s after amosd as nobody exited", dbusapi.Name, o)
	}

	// root and the service user: owners, until SIGTERM releases the name.
	for _, a := range []account{root, svc} {
		d := r.startDaemon(a, r.writeConfig(a.name+".json", privateDir(t, dir, a.name+"-data", a), privateDir(t, dir, a.name+"-persist", a)))
		o := w.wait(2*time.Minute, d.exited, d.log.String)
		var uid uint32
		if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, o).Store(&uid); err != nil {
			t.Fatal(err)
		}
		if uid != a.uid {
			t.Fatalf("%s is owned by uid %d, want %s (%d)", dbusapi.Name, uid, a.name, a.uid)
		}
		if code := d.stop(); code != 0 {
			t.Fatalf("amosd as %s: SIGTERM: exit %d\n%s", a.name, code, d.log.String())
		}
		if o := w.wait(time.Minute, nil, d.log.String); o != "" {
			t.Fatalf("after SIGTERM, %s is owned by %s", dbusapi.Name, o)
		}
		t.Logf("amosd as %s (uid %d) owned %s and released it on SIGTERM", a.name, a.uid, dbusapi.Name)
	}
}

// TestPolicyCallsAndSignals runs amosd as its service user under the policy and calls it
// as root (trusted), as the phone's user 1000 (status), as amos-shell (2000) and nobody
// (65534); then checks that only the owner's RecordMinted reaches a listener.
func TestPolicyCallsAndSignals(t *testing.T) {
	needRoot(t)
	svc := lookup(t, serviceUser)
	phone, shell, nobody := lookup(t, strconv.Itoa(phoneUID)), lookup(t, "2000"), lookup(t, "65534")
	r := newRig(t, "")
	conn := r.connect()
	w := watchOwner(t, conn)
	d := r.startDaemon(svc, r.writeConfig("amosd.json", privateDir(t, r.shared, "data", svc), privateDir(t, r.shared, "persist", svc)))
	daemonName := w.wait(2*time.Minute, d.exited, d.log.String)

	// A listener of every signal of the interface, as the phone's UI would be.
	listener := r.connect()
	for _, iface := range []string{dbusapi.Iface, markerIface} {
		if err := listener.AddMatchSignal(dbus.WithMatchInterface(iface)); err != nil {
			t.Fatal(err)
		}
	}
	sigs := make(chan *dbus.Signal, 256)
	listener.Signal(sigs)

	// root is trusted: every method, from this process. Consent granted mints the
	// genesis, which the daemon announces with RecordMinted.
	obj := conn.Object(dbusapi.Name, dbusapi.Path)
	if err := obj.CallWithContext(testenv.Context(t, time.Minute), dbusapi.Iface+".SetConsent", 0, true).Err; err != nil {
		t.Fatalf("root SetConsent: %v", err)
	}
	waitSignal(t, sigs, "the daemon's RecordMinted", func(s *dbus.Signal) (bool, error) {
		return s.Sender == daemonName && s.Name == dbusapi.Iface+".RecordMinted", nil
	})
	var st map[string]dbus.Variant
	if err := obj.CallWithContext(testenv.Context(t, time.Minute), dbusapi.Iface+".Status", 0).Store(&st); err != nil || st["device_id"].Value() == nil {
		t.Fatalf("root Status: %v %v", err, st)
	}
	if err := obj.CallWithContext(testenv.Context(t, time.Minute), dbusapi.Iface+".ReportActivity", 0, "input").Err; err != nil {
		t.Fatalf("root ReportActivity: %v", err)
	}

	// Who else may call what: the bus refuses what the policy does not grant, before
	// amosd sees it.
	cases := []struct {
		who    account
		action string
		want   string // "ok", or the refusal
	}{
		{phone, "Status", "ok"},
		{phone, "Flush", "ok"}, // uploads the genesis to the test's collector
		{phone, "Introspect", "ok"},
		{phone, "ReportActivity", busRefusal},
		{phone, "SetConsent", busRefusal},
		{shell, "Status", busRefusal},
		{shell, "Flush", busRefusal},
		{nobody, "Status", busRefusal},
		{nobody, "Introspect", busRefusal},
		{nobody, "ReportActivity", busRefusal},
	}
	for _, c := range cases {
		got := r.helper(c.who, c.action)
		switch {
		case c.want == "ok" && got != "ok":
			t.Errorf("%s (uid %d) %s: %s, want an answer", c.who.name, c.who.uid, c.action, got)
		case c.want != "ok" && !(strings.HasPrefix(got, "error "+errAccessDenied+":") && strings.Contains(got, c.want)):
			t.Errorf("%s (uid %d) %s: %s, want AccessDenied by the bus (%q)", c.who.name, c.who.uid, c.action, got, c.want)
		default:
			t.Logf("%s (uid %d) %s: %s", c.who.name, c.who.uid, c.action, got)
		}
	}
	if _, records := r.coll.Counts(); records != 1 {
		t.Errorf("the collector holds %d records after the phone user's Flush, want the genesis", records)
	}

	// Forgeries: from another connection of root (which may send the interface's
	// signals, but does not own the name: the listener's receive rule drops them), and
	// from amos-shell (whose send the bus refuses).
	forger := r.connect()
	if err := forger.Emit(dbusapi.Path, dbusapi.Iface+".RecordMinted", uint32(7), uint64(7), uint32(7)); err != nil {
		t.Fatal(err)
	}
	if err := forger.Emit("/marker", markerIface+".Done"); err != nil {
		t.Fatal(err)
	}
	expectDropped(t, sigs, "root, not the owner", forger.Names()[0])
	got := r.helper(shell, "emit")
	name, ok := strings.CutPrefix(got, "sent ")
	if !ok {
		t.Fatalf("amos-shell emit: %s", got)
	}
	expectDropped(t, sigs, "amos-shell", name)

	if code := d.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, d.log.String())
	}
}

// waitSignal reads sigs until match says so, for a minute at most.
func waitSignal(t *testing.T, sigs <-chan *dbus.Signal, what string, match func(*dbus.Signal) (bool, error)) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case s := <-sigs:
			ok, err := match(s)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
		case <-deadline:
			t.Fatalf("no %s in a minute", what)
		}
	}
}

// expectDropped reads sigs until the marker of sender, and fails if a RecordMinted of
// sender came before it.
func expectDropped(t *testing.T, sigs <-chan *dbus.Signal, who, sender string) {
	t.Helper()
	waitSignal(t, sigs, "marker from "+who, func(s *dbus.Signal) (bool, error) {
		if s.Sender != sender {
			return false, nil
		}
		if s.Name == dbusapi.Iface+".RecordMinted" {
			return false, fmt.Errorf("a RecordMinted forged by %s (%s) reached the listener", who, sender)
		}
		return s.Name == markerIface+".Done", nil
	})
	t.Logf("RecordMinted forged by %s (%s) did not reach the listener; its marker did", who, sender)
}

// TestActivation: with no amosd running, a call to com.amos.Agent1 makes dbus-daemon start
// amosd from this folder's activation file, with only Exec= pointed at the test's
// binary and configuration. The test bus is of <type>system</type>, but without the
// setuid dbus-daemon-launch-helper (which reads only the installed system.conf and
// services): dbus-daemon itself spawns Exec, as it does on a bus with no helper.
func TestActivation(t *testing.T) {
	needRoot(t)
	root := lookup(t, "root")
	services := filepath.Join(t.TempDir(), "system-services")
	if err := os.Mkdir(services, 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, services)
	cfg := r.writeConfig("amosd.json", privateDir(t, r.shared, "data", root), privateDir(t, r.shared, "persist", root))

	// The activation file, with Exec= rewritten (through the emulator under test-arm).
	text := readFile(t, activationFile)
	exec := unitKey(t, text, "D-BUS Service", "Exec")
	want := installedBinary + " --config " + installedConfig + " run"
	if exec != want {
		t.Fatalf("%s: Exec=%s, want %s", activationFile, exec, want)
	}
	argv := append(testenv.Emulator(), r.bin, "--config", cfg, "run")
	if len(argv) > 4 {
		// dbus-daemon execs Exec='s first word as a path, without a PATH search.
		emu, err := osexec.LookPath(argv[0])
		if err != nil {
			t.Fatalf("emulator %s: %v", argv[0], err)
		}
		argv[0] = emu
	}
	text = strings.Replace(text, "Exec="+exec, "Exec="+strings.Join(argv, " "), 1)
	if err := os.WriteFile(filepath.Join(services, activationFile), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	conn := r.connect()
	if o := owner(t, conn); o != "" {
		t.Fatalf("%s is owned by %s before activation", dbusapi.Name, o)
	}

	// A plain call, auto-start allowed: the bus starts amosd and delivers the call.
	var st map[string]dbus.Variant
	obj := conn.Object(dbusapi.Name, dbusapi.Path)
	if err := obj.CallWithContext(testenv.Context(t, 2*time.Minute), dbusapi.Iface+".Status", 0).Store(&st); err != nil {
		t.Fatalf("Status with activation: %v", err)
	}
	if st["version"].Value() != "linux-build" {
		t.Fatalf("Status answered by version %v, want the test's amosd", st["version"].Value())
	}
	o := owner(t, conn)
	var pid uint32
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, o).Store(&pid); err != nil {
		t.Fatal(err)
	}
	w := watchOwner(t, conn)
	t.Cleanup(func() {
		// The activated amosd is the bus's child, not ours: stop it by its pid.
		if err := syscall.Kill(int(pid), syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM to the activated amosd (pid %d): %v", pid, err)
			return
		}
		if o := w.wait(time.Minute, nil, func() string { return "" }); o != "" {
			t.Errorf("after SIGTERM, %s is owned by %s", dbusapi.Name, o)
		}
	})
	// dbus-daemon gives the services it starts the DBUS_STARTER_* variables.
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\x00"+string(env), "\x00DBUS_STARTER_BUS_TYPE=system\x00") {
		t.Fatalf("amosd (pid %d) was not started by the system bus: environment %q", pid, env)
	}
	t.Logf("dbus-daemon started amosd (pid %d) on a call to %s: %s", pid, dbusapi.Name, strings.Join(argv, " "))
}
