// Package linuxbuild tests the packaging of amosd for Linux phones in this folder: the
// systemd unit, the D-Bus policy and activation file, and the configuration, against the
// real dbus-daemon, systemd-analyze and amosd binary.
package linuxbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/rigs/testenv"
)

// The files of this folder, and where they are installed.
const (
	unitFile       = "amosd.service"
	backoffDropIn  = "amosd.service.d/restart-backoff.conf"
	configFile     = "amosd.json"
	policyFile     = "com.amos.Agent1.conf"
	activationFile = "com.amos.Agent1.service"
	sysusersFile   = "amosd.sysusers"

	installedBinary = "/usr/bin/amosd"
	installedConfig = "/etc/amosd/amosd.json"
	serviceUser     = "amosd"
	phoneUID        = 1000 // status_uids of amosd.json
)

// here returns the absolute path of a file of this folder.
func here(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(here(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unitKeys returns the values of key in section of a systemd unit or a D-Bus service
// file, in order.
func unitKeys(text, section, key string) []string {
	var out []string
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			cur = strings.Trim(line, "[]")
		case cur == section:
			if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
				out = append(out, strings.TrimSpace(v))
			}
		}
	}
	return out
}

// unitKey returns the one value of key in section, failing the test if there is not
// exactly one.
func unitKey(t testing.TB, text, section, key string) string {
	t.Helper()
	v := unitKeys(text, section, key)
	if len(v) != 1 {
		t.Fatalf("[%s] %s= is set %d times, want once", section, key, len(v))
	}
	return v[0]
}

// account is a user the tests run processes as.
type account struct {
	name     string
	uid, gid uint32
	groups   []uint32 // supplementary groups
}

// lookup returns the passwd entry of a user name or numeric uid. dbus-daemon refuses
// clients without one, and resolves the users of a policy by their entries.
func lookup(t testing.TB, who string) account {
	t.Helper()
	var u *user.User
	switch who {
	case serviceUser: // made from our sysusers.d file, as a package makes it
		u = testenv.ServiceAccount(t, who, here(t, sysusersFile))
	case strconv.Itoa(phoneUID):
		u = testenv.Account(t, phoneUID, "amos-phone")
	case "2000":
		u = testenv.Account(t, 2000, "amos-shell")
	default:
		var err error
		if u, err = user.Lookup(who); err != nil {
			if u, err = user.LookupId(who); err != nil {
				t.Fatalf("user %s has no passwd entry: %v", who, err)
			}
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	a := account{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatalf("groups of %s: %v", who, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != a.gid {
			a.groups = append(a.groups, uint32(n))
		}
	}
	return a
}

// as makes cmd run as a (root: unchanged).
func (a account) as(cmd *exec.Cmd) {
	if a.uid == 0 {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}}
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test runs amosd and its clients as other uids")
	}
}

// privateDir returns a directory in dir owned by a with mode 0700, as systemd's
// StateDirectory= makes /var/lib/amos and /var/lib/amos-persist.
func privateDir(t testing.TB, dir, name string, a account) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, int(a.uid), int(a.gid)); err != nil {
		t.Fatal(err)
	}
	return p
}

// rig is a private system bus with the policy of a Debian system bus that includes
// this folder's com.amos.Agent1.conf, and the amosd binary and files that every uid
// can read.
type rig struct {
	t      *testing.T
	bus    *testenv.Bus
	shared string // world-readable: binary, configs, CA
	bin    string // amosd
	coll   *testenv.Collector
	ca     string // the collector's CA, readable by every uid
}

// newRig starts the bus; services is the activation directory ("" for none).
func newRig(t *testing.T, services string) *rig {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed (apt-get install dbus-daemon)")
	}
	r := &rig{t: t, shared: testenv.SharedDir(t)}
	conf := filepath.Join(t.TempDir(), "system.conf")
	if err := os.WriteFile(conf, []byte(systemBusConfig(filepath.Join(r.shared, "bus"), services, here(t, policyFile))), 0o644); err != nil {
		t.Fatal(err)
	}
	r.bus = testenv.StartBusConfig(t, conf)
	r.bin = filepath.Join(r.shared, "amosd")
	testenv.CopyFile(t, testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=linux-build"), r.bin, 0o755)
	r.coll = testenv.StartCollector(t)
	r.ca = filepath.Join(r.shared, "ca.pem")
	testenv.CopyFile(t, r.coll.CAFile, r.ca, 0o644)
	return r
}

// systemBusConfig is Debian's /usr/share/dbus-1/system.conf (dbus 1.14) with what a test
// cannot have left out: no <user>, <fork>, pidfile, syslog or launch helper, a socket in
// a temporary directory (StartBusConfig's --address takes precedence over <listen>),
// services from one directory, and instead of the system.d
// directories, the policy file of this folder by its absolute path.
func systemBusConfig(socket, services, policy string) string {
	servicedir := ""
	if services != "" {
		servicedir = "<servicedir>" + services + "</servicedir>"
	}
	return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=` + socket + `</listen>
  ` + servicedir + `
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>` + policy + `</include>
</busconfig>
`
}

// writeConfig writes this folder's amosd.json with the paths of a test, and returns its
// path in the shared directory.
func (r *rig) writeConfig(name, data, persist string) string {
	r.t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal([]byte(readFile(r.t, configFile)), &cfg); err != nil {
		r.t.Fatal(err)
	}
	cfg["data_dir"], cfg["key_dir"], cfg["bus"] = data, persist, r.bus.Address
	cfg["server_url"], cfg["ca_file"] = r.coll.URL, r.ca
	b, err := json.Marshal(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	p := filepath.Join(r.shared, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// connect opens a connection of the test process (root) to the rig's bus.
func (r *rig) connect() *dbus.Conn {
	r.t.Helper()
	conn, err := dbus.Connect(r.bus.Address)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { conn.Close() })
	return conn
}

// owner returns the unique name that owns com.amos.Agent1, "" if none.
func owner(t testing.TB, conn *dbus.Conn) string {
	t.Helper()
	var o string
	err := conn.BusObject().CallWithContext(testenv.Context(t, 30*time.Second), "org.freedesktop.DBus.GetNameOwner", 0, dbusapi.Name).Store(&o)
	var derr dbus.Error
	if errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// ownerWatch follows NameOwnerChanged of com.amos.Agent1.
type ownerWatch struct {
	t    testing.TB
	sigs chan *dbus.Signal
}

func watchOwner(t testing.TB, conn *dbus.Conn) *ownerWatch {
	t.Helper()
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, dbusapi.Name)); err != nil {
		t.Fatal(err)
	}
	w := &ownerWatch{t: t, sigs: make(chan *dbus.Signal, 64)}
	conn.Signal(w.sigs)
	t.Cleanup(func() { conn.RemoveSignal(w.sigs) })
	return w
}

// wait returns the next owner announced ("" when the name is released), or fails when
// there is none in d or exited yields first.
func (w *ownerWatch) wait(d time.Duration, exited <-chan struct{}, log func() string) string {
	w.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case s := <-w.sigs:
			if s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3 {
				return s.Body[2].(string)
			}
		case <-exited:
			w.t.Fatalf("amosd exited before the owner of %s changed:\n%s", dbusapi.Name, log())
		case <-deadline:
			w.t.Fatalf("the owner of %s did not change in %s:\n%s", dbusapi.Name, d, log())
		}
	}
}

// lockedBuffer collects a child's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is an `amosd run` started by the test.
type daemon struct {
	t      testing.TB
	cmd    *exec.Cmd
	log    lockedBuffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

func (r *rig) startDaemon(a account, cfg string) *daemon {
	r.t.Helper()
	d := &daemon{t: r.t, exited: make(chan struct{})}
	d.cmd = testenv.Command(context.Background(), r.bin, "--config", cfg, "run")
	a.as(d.cmd)
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if err := d.cmd.Start(); err != nil {
		r.t.Fatalf("start amosd as %s: %v", a.name, err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.exited) }()
	r.t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Kill()
			<-d.exited
		}
	})
	return d
}

// exitCode waits up to d for the daemon to exit by itself.
func (d *daemon) exitCode(dur time.Duration) int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(dur):
		d.t.Fatalf("amosd still runs after %s:\n%s", dur, d.log.String())
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	if d.err != nil {
		d.t.Fatal(d.err)
	}
	return 0
}

// stop sends SIGTERM and returns the exit code.
func (d *daemon) stop() int {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	return d.exitCode(time.Minute)
}

// helper runs TestHelperProcess of a copy of this test binary as a, against the bus at
// address, and returns its one line of output.
func (r *rig) helper(a account, action string) string {
	r.t.Helper()
	bin := filepath.Join(r.shared, "linuxbuild.test")
	if _, err := os.Stat(bin); err != nil {
		exe, err := os.Executable()
		if err != nil {
			r.t.Fatal(err)
		}
		testenv.CopyFile(r.t, exe, bin, 0o755)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := testenv.Command(ctx, bin, "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=1m")
	cmd.Env = append(os.Environ(), helperActionEnv+"="+action, helperBusEnv+"="+r.bus.Address)
	a.as(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "helper: ") {
			return strings.TrimPrefix(line, "helper: ")
		}
	}
	r.t.Fatalf("helper %s as %s: %v\nstdout:\n%s\nstderr:\n%s", action, a.name, err, out, stderr.String())
	return ""
}

const (
	helperActionEnv = "AMOSD_LINUXBUILD_HELPER"
	helperBusEnv    = "AMOSD_LINUXBUILD_BUS"
	markerIface     = "com.example.Marker"
)

// TestHelperProcess is a client of com.amos.Agent1 run by the tests as another uid; it
// does nothing otherwise. It prints one line "helper: …": "ok", "error NAME: MESSAGE",
// or for "emit", "sent UNIQUE-NAME".
func TestHelperProcess(t *testing.T) {
	action := os.Getenv(helperActionEnv)
	if action == "" {
		t.Skip("the client process of the bus policy tests")
	}
	say := func(format string, args ...any) { fmt.Printf("helper: "+format+"\n", args...) }
	conn, err := dbus.Connect(os.Getenv(helperBusEnv))
	if err != nil {
		say("connect %v", err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	obj := conn.Object(dbusapi.Name, dbusapi.Path)
	var call *dbus.Call
	switch action {
	case "Status", "Flush":
		call = obj.CallWithContext(ctx, dbusapi.Iface+"."+action, 0)
	case "ReportActivity":
		call = obj.CallWithContext(ctx, dbusapi.Iface+".ReportActivity", 0, "input")
	case "SetConsent":
		call = obj.CallWithContext(ctx, dbusapi.Iface+".SetConsent", 0, true)
	case "Introspect":
		call = obj.CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0)
	case "emit":
		// A forged RecordMinted, then a marker on the same connection: the bus keeps
		// the order of one sender's messages, so a listener that sees the marker would
		// have seen the forgery first. A call to the bus makes sure both reached it.
		if err := conn.Emit(dbusapi.Path, dbusapi.Iface+".RecordMinted", uint32(7), uint64(7), uint32(7)); err != nil {
			say("emit %v", err)
			return
		}
		if err := conn.Emit("/marker", markerIface+".Done"); err != nil {
			say("emit marker %v", err)
			return
		}
		if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetId", 0).Err; err != nil {
			say("GetId %v", err)
			return
		}
		say("sent %s", conn.Names()[0])
		return
	default:
		say("unknown action %q", action)
		return
	}
	var derr dbus.Error
	switch {
	case errors.As(call.Err, &derr):
		msg := ""
		if len(derr.Body) > 0 {
			msg = fmt.Sprint(derr.Body[0])
		}
		say("error %s: %s", derr.Name, msg)
	case call.Err != nil:
		say("failed %v", call.Err)
	default:
		say("ok")
	}
}
