package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/inputdev"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/sources"
)

// fakeADB implements what oem-check.sh asks of adb, on this machine: an optional
// -s SERIAL (which must be the one device it knows), get-state, shell COMMAND... (run
// by sh -c, as adbd's shell would), and push SRC DST. It logs every call.
const fakeADB = `#!/bin/sh
printf '%s\n' "$*" >>"$FAKE_ADB_LOG"
if [ "$1" = -s ]; then
	if [ "$2" != "$FAKE_ADB_SERIAL" ]; then
		echo "error: device '$2' not found" >&2
		exit 1
	fi
	shift 2
fi
case $1 in
get-state) echo device ;;
shell) shift; exec /bin/sh -c "$*" ;;
push) cp "$2" "$3" && echo "$2: 1 file pushed" ;;
*) echo "fake adb: $1 is not implemented" >&2; exit 1 ;;
esac
`

// oemRig is a real amosd on a private bus, syncing to the TLS fake collector, with a
// provisioned key and maker certificate, and everything oem-check.sh needs in a
// directory that uid 2000 may read too.
type oemRig struct {
	t       *testing.T
	bus     *testenv.Bus
	col     *testenv.Collector
	dir     string
	binDir  string // holds "amosd", first on PATH
	built   string // the amosd binary as built
	cfg     string
	script  string
	adb     string
	adbLog  string
	d       *daemon
	checked int // checks of `amosd selftest --json` with the daemon up
	seed    [32]byte
	cert    []byte // the maker certificate of seed's key
	ca      string // the collector's CA, in dir
}

func newOEMRig(t *testing.T) *oemRig {
	t.Helper()
	r := newOEMBase(t)
	persist := filepath.Join(r.dir, "persist")
	r.provision(persist)
	b, err := json.Marshal(map[string]any{
		"data_dir": filepath.Join(r.dir, "data"), "key_dir": persist,
		"server_url": r.col.URL, "ca_file": r.ca,
		"bus": r.bus.Address, "sources": []string{}, "consent_default": true, "log": "stderr",
		"trusted_uids": []int{0, 1000}, "status_uids": []int{2000},
		"utc_offset_minutes": noonOffset(time.Now()), // no midnight resets the day's count mid-check
	})
	if err != nil {
		t.Fatal(err)
	}
	r.cfg = filepath.Join(r.dir, "amosd.json")
	writeFile(t, r.cfg, string(b), 0o644)

	r.d = startDaemon(t, r.built, r.cfg)
	r.d.waitLog("connected as")
	return r
}

// newOEMBase returns a rig without configuration or daemon: the bus, the collector, the
// amosd binary, oem-check.sh and the fake adb, a device key and its certificate.
func newOEMBase(t *testing.T) *oemRig {
	t.Helper()
	r := &oemRig{t: t, bus: testenv.StartBus(t), col: testenv.StartCollector(t), dir: testenv.SharedDir(t)}
	r.built = testenv.Build(t, "amos.example/amosd/cmd/amosd", "-X main.version=oem-check")
	r.binDir = filepath.Join(r.dir, "bin")
	mkdir(t, r.binDir, 0o755)
	if emu := testenv.Emulator(); len(emu) > 0 {
		// Cross-compiled tests: no binfmt_misc here, so amosd on PATH is a wrapper.
		real := filepath.Join(r.binDir, "amosd.real")
		testenv.CopyFile(t, r.built, real, 0o755)
		writeFile(t, filepath.Join(r.binDir, "amosd"), fmt.Sprintf("#!/bin/sh\nexec %s %q \"$@\"\n", strings.Join(emu, " "), real), 0o755)
	} else {
		testenv.CopyFile(t, r.built, filepath.Join(r.binDir, "amosd"), 0o755)
	}
	r.script = filepath.Join(r.dir, "oem-check.sh")
	testenv.CopyFile(t, filepath.Join("..", "..", "android-build", "oem-check.sh"), r.script, 0o755)
	r.adb = filepath.Join(r.dir, "adb")
	writeFile(t, r.adb, fakeADB, 0o755)
	r.adbLog = filepath.Join(r.dir, "adb.log")
	writeFile(t, r.adbLog, "", 0o666)
	mkdir(t, filepath.Join(r.dir, "remote"), 0o777)

	// The factory: a device key and its maker certificate.
	r.seed = sha256.Sum256([]byte("oem-check test device"))
	dev, err := proof.NewKeySigner(r.seed[:])
	if err != nil {
		t.Fatal(err)
	}
	cert := collectortest.Certify(t, collectortest.Key(t, "maker oem"), "konka", dev.PublicKey(), "IMEI 860000000000077", time.Now())
	if r.cert, err = cert.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	r.ca = filepath.Join(r.dir, "ca.pem")
	testenv.CopyFile(t, r.col.CAFile, r.ca, 0o644)
	return r
}

// provision writes the device key and its maker certificate to key_dir, as the
// factory does.
func (r *oemRig) provision(keyDir string) {
	r.t.Helper()
	mkdir(r.t, keyDir, 0o700)
	writeFile(r.t, filepath.Join(keyDir, "device.key"), string(r.seed[:]), 0o600)
	writeFile(r.t, filepath.Join(keyDir, "device.cert"), string(r.cert), 0o644)
}

// noonOffset returns a reporting zone (minutes east of UTC, -719..720) in which it
// is noon at now.
func noonOffset(now time.Time) int {
	u := now.UTC()
	return 12*60 - (u.Hour()*60 + u.Minute())
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// run runs oem-check.sh with args and env (added to the rig's) as uid (0: as this
// process), and returns its exit code and output.
func (r *oemRig) run(uid uint32, serial string, env []string, args ...string) (int, string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{r.script}, args...)...)
	cmd.Env = append(os.Environ(),
		"PATH="+r.binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AMOSD_CONFIG="+r.cfg, "AMOSD_CHECK_WAIT=2", "AMOSD_REMOTE_DIR="+filepath.Join(r.dir, "remote"),
		"ADB="+r.adb, "ADB_SERIAL=", "FAKE_ADB_LOG="+r.adbLog, "FAKE_ADB_SERIAL="+serial, "AMOSD=")
	cmd.Env = append(cmd.Env, env...)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), out.String()
	case err != nil:
		r.t.Fatalf("oem-check.sh %v: %v (the 3-minute bound?)\n%s", args, err, out.String())
	}
	return 0, out.String()
}

// selftestChecks returns how many checks `amosd selftest --json` makes now.
func (r *oemRig) selftestChecks() int {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := testenv.Command(ctx, r.built, "--config", r.cfg, "selftest", "--json").Output()
	var rep struct {
		Checks []json.RawMessage `json:"checks"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Checks) == 0 {
		r.t.Fatalf("amosd selftest --json: %v\n%s", err, out)
	}
	return len(rep.Checks)
}

// TestOEMCheck runs android-build/oem-check.sh against a real daemon: on this machine
// (--local) and through a fake adb that runs the handset's commands here, as root and
// as the Android shell uid 2000, and with the daemon stopped.
func TestOEMCheck(t *testing.T) {
	r := newOEMRig(t)
	tests := []struct {
		name     string
		uid      uint32
		daemonUp bool
		serial   string // the fake adb's one device
		env      []string
		args     []string
		wantExit int
		want     []string // lines that must be there (prefixes)
		wantAll  bool     // every step passes: no FAIL or SKIP line
	}{
		{name: "local", daemonUp: true, args: []string{"--local"}, wantExit: 0, wantAll: true,
			want: []string{"PASS binary", "PASS version (amosd oem-check ", "PASS selftest certificate (maker konka",
				"PASS selftest server (TLS handshake", "PASS selftest daemon", "PASS report screen_on", "PASS report unlocked",
				"PASS report input", "PASS counting (today_interactive_seconds ", "PASS report locked", "PASS report screen_off",
				"PASS flush (accepted: ", "PASS status (consent true, 0 queued, last sync \"ok: ", "oem-check: "}},
		{name: "adb with serial and push", daemonUp: true, serial: "AMOS0001", args: []string{"-s", "AMOS0001", "--push", filepath.Join(r.binDir, "amosd")}, wantExit: 0, wantAll: true,
			want: []string{"PASS device AMOS0001", "PASS root (adb shell is uid 0)", "PASS push (", "PASS version (amosd oem-check ",
				"PASS selftest daemon", "PASS counting (", "PASS flush", "PASS status (consent true"}},
		{name: "adb without the device", daemonUp: true, serial: "AMOS0001", args: []string{"-s", "AMOS0002"}, wantExit: 1,
			want: []string{"FAIL device: ", "oem-check: 0 passed, 1 failed"}},
		{name: "no adb", daemonUp: true, env: []string{"ADB=" + filepath.Join(r.dir, "no-adb")}, wantExit: 1,
			want: []string{"FAIL adb: no adb at ", "oem-check: 0 passed, 1 failed"}},
		{name: "local as uid 2000", uid: 2000, daemonUp: true, args: []string{"--local"}, wantExit: 1,
			want: []string{"PASS version", "FAIL report screen_on: amosd report screen_on: exit 1: amosd: access denied",
				"SKIP report unlocked", "SKIP counting", "PASS flush", "PASS status (consent true"}},
		{name: "adb as uid 2000", uid: 2000, daemonUp: true, args: nil, wantExit: 1,
			want: []string{"PASS device", "FAIL root: adb shell runs as uid 2000", "FAIL report screen_on: "}},
		{name: "local, daemon stopped", args: []string{"--local"}, wantExit: 1,
			want: []string{"PASS version", "FAIL selftest daemon: nobody owns com.amos.Agent1 — fix: start the daemon",
				"FAIL report screen_on: amosd report screen_on: exit 3: ", "SKIP counting", "FAIL flush: amosd flush: exit 3: ",
				"FAIL status: amosd status --json: exit 3: "}},
	}
	// The fixes that the failures must name.
	fixes := map[string]string{
		"FAIL report screen_on: amosd report screen_on: exit 1: amosd: access denied": "fix: this call needs a trusted uid (trusted_uids",
		"FAIL root: adb shell runs as uid 2000":                                       "fix: adb root",
		"FAIL device: ":                                                               "fix: connect the handset",
		"FAIL adb: no adb at ":                                                        "fix: install Android's platform-tools",
		"FAIL report screen_on: amosd report screen_on: exit 3: ":                     "fix: start the daemon",
		"FAIL flush: amosd flush: exit 3: ":                                           "fix: start the daemon",
		"FAIL status: amosd status --json: exit 3: ":                                  "fix: start the daemon",
	}
	r.checked = r.selftestChecks()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.uid != 0 {
				if os.Geteuid() != 0 {
					t.Skip("running oem-check.sh as uid 2000 needs root")
				}
				testenv.Account(t, int(tt.uid), "amos-shell") // dbus-daemon needs its passwd entry
			}
			if !tt.daemonUp && r.d.cmd.ProcessState == nil {
				if code := r.d.stop(syscall.SIGTERM); code != 0 {
					t.Fatalf("amosd exit %d on SIGTERM\n%s", code, r.d.log.String())
				}
			}
			code, out := r.run(tt.uid, tt.serial, tt.env, tt.args...)
			t.Logf("oem-check.sh %s:\n%s", strings.Join(tt.args, " "), out)
			if code != tt.wantExit {
				t.Errorf("exit %d, want %d", code, tt.wantExit)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for _, w := range tt.want {
				line, ok := findPrefix(lines, w)
				if !ok {
					t.Errorf("no line starts with %q", w)
					continue
				}
				if fix, ok := fixes[w]; ok && !strings.Contains(line, fix) {
					t.Errorf("%q does not say %q", line, fix)
				}
			}
			checkOEMLines(t, lines, tt.wantAll, false, r.checked)
		})
	}
	b, err := os.ReadFile(r.adbLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "-s AMOS0001 shell ") || !strings.Contains(string(b), "-s AMOS0001 push ") {
		t.Errorf("the serial was not passed on to adb; calls:\n%s", b)
	}
	if pushed := filepath.Join(r.dir, "remote", "amosd") + " report input"; !strings.Contains(string(b), pushed) {
		t.Errorf("no call of the pushed binary (%q); calls:\n%s", pushed, b)
	}
}

// checkOEMLines checks the form of oem-check.sh's lines: each is PASS, WARN, FAIL or
// SKIP, or the summary; each FAIL and WARN says its fix. With wantAll no step fails or
// is skipped, warnings only if allowed, and each of the checked checks of amosd
// selftest has its PASS (or WARN) line.
func checkOEMLines(t *testing.T, lines []string, wantAll, warnings bool, checked int) {
	t.Helper()
	selftestLines := 0
	for _, l := range lines {
		switch {
		case (strings.HasPrefix(l, "FAIL ") || strings.HasPrefix(l, "WARN ")) && !strings.Contains(l, " — fix: "):
			t.Errorf("a failure or warning without its fix: %q", l)
		case wantAll && (strings.HasPrefix(l, "FAIL ") || strings.HasPrefix(l, "SKIP ")):
			t.Errorf("want every step to pass: %q", l)
		case strings.HasPrefix(l, "WARN ") && !warnings:
			t.Errorf("want no warning: %q", l)
		}
		if strings.HasPrefix(l, "PASS selftest ") || strings.HasPrefix(l, "WARN selftest ") {
			selftestLines++
		}
		if !strings.HasPrefix(l, "PASS ") && !strings.HasPrefix(l, "WARN ") && !strings.HasPrefix(l, "FAIL ") &&
			!strings.HasPrefix(l, "SKIP ") && !strings.HasPrefix(l, "oem-check: ") {
			t.Errorf("a line of another form: %q", l)
		}
	}
	if wantAll && selftestLines != checked {
		t.Errorf("%d selftest checks passed, want the %d of amosd selftest --json", selftestLines, checked)
	}
}

// findPrefix returns the first line that starts with prefix.
func findPrefix(lines []string, prefix string) (string, bool) {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l, true
		}
	}
	return "", false
}

// androidConfig writes, in dir, the shipped android-build/amosd.json with only what must
// differ on this machine: data_dir, key_dir and evdev_glob in dir, the rig's bus,
// collector and CA, and a reporting zone in which it is noon (no midnight resets the
// day's count mid-check); sources too if not nil. The rest (uids, consent_default,
// sync, log…) is as shipped. It returns the file's path.
func (r *oemRig) androidConfig(dir string, sources []string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "android-build", "amosd.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		r.t.Fatal(err)
	}
	set := map[string]any{
		"data_dir": filepath.Join(dir, "data"), "key_dir": filepath.Join(dir, "persist"),
		"evdev_glob": filepath.Join(dir, "input", "event*"),
		"bus":        r.bus.Address, "server_url": r.col.URL, "ca_file": r.ca,
		"utc_offset_minutes": noonOffset(time.Now()),
	}
	if sources != nil {
		set["sources"] = sources
	}
	for k, v := range set {
		if _, ok := m[k]; !ok {
			r.t.Fatalf("android-build/amosd.json has no key %s any more: update this test", k)
		}
		m[k] = v
	}
	if b, err = json.MarshalIndent(m, "", "  "); err != nil {
		r.t.Fatal(err)
	}
	path := filepath.Join(dir, "amosd.json")
	writeFile(r.t, path, string(b), 0o644)
	return path
}

// TestOEMCheckAndroidConfig runs oem-check.sh --local with the shipped Android
// configuration on a real bus that has no logind, as on every handset: with the power
// manager and an input device there every step passes; listing logind (as the shipped
// file once did) only adds a warning; with none of the listed sources there the check
// and `amosd selftest` fail, naming the sources and what to fix.
func TestOEMCheckAndroidConfig(t *testing.T) {
	r := newOEMBase(t)
	base := r.t
	defer func() { r.t = base }()
	tests := []struct {
		name            string
		sources         []string // nil: as shipped
		power, input    bool     // the power manager owns its name; an input device matches evdev_glob
		wantExit        int
		wantAll         bool // no step fails or is skipped
		warnings        bool // WARN lines allowed
		want            []string
		wantSelftest    []string // lines of `amosd selftest` (text); it exits wantExit too
		notWantSelftest []string
		wantSummary     string
	}{
		{name: "shipped, on a handset", power: true, input: true, wantExit: 0, wantAll: true,
			want: []string{"PASS selftest source amos-power (com.amos.PowerManager owned by :1.",
				"PASS selftest source evdev (1 of 1 devices matching ", "PASS selftest daemon", "PASS selftest server (TLS handshake",
				"PASS counting (today_interactive_seconds ", "PASS flush (accepted: ", "PASS status (consent true, 0 queued, last sync \"ok: "},
			wantSelftest: []string{"ok   source amos-power ", "ok   source evdev "}, notWantSelftest: []string{"logind", "FAIL", "WARN"},
			wantSummary: " passed, 0 failed"},
		{name: "logind listed: a warning", sources: []string{"amos-power", "logind", "evdev"}, power: true, input: true,
			wantExit: 0, wantAll: true, warnings: true,
			want: []string{"PASS selftest source amos-power (", "PASS selftest source evdev (",
				`WARN selftest source logind: nobody owns org.freedesktop.login1 on the bus: this source stays unavailable; amosd counts with amos-power, evdev — fix: remove "logind" from sources if this device has no systemd-logind`,
				"PASS counting (", "PASS flush (", "PASS status (consent true"},
			wantSelftest:    []string{"WARN source logind        nobody owns org.freedesktop.login1 on the bus", `     fix: remove "logind" from sources`},
			notWantSelftest: []string{"FAIL"},
			wantSummary:     " passed, 0 failed, 1 warning"},
		{name: "no listed source available", wantExit: 1,
			want: []string{
				"FAIL selftest source amos-power: nobody owns com.amos.PowerManager on the bus: none of the listed sources (amos-power, evdev) is available, so amosd counts only ReportActivity calls — fix: start the platform's power manager (it owns com.amos.PowerManager), or remove \"amos-power\" from sources",
				"FAIL selftest source evdev: 0 devices match ", "PASS selftest daemon", "PASS counting (", "PASS flush (", "PASS status (consent true"},
			wantSelftest: []string{"FAIL source amos-power   nobody owns com.amos.PowerManager on the bus: none of the listed sources (amos-power, evdev) is available",
				"     fix: start the platform's power manager", "FAIL source evdev        0 devices match ", "     fix: check evdev_glob"},
			wantSummary: " passed, 2 failed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.t = t
			dir := filepath.Join(r.dir, fmt.Sprintf("android%d", i))
			mkdir(t, dir, 0o755)
			mkdir(t, filepath.Join(dir, "input"), 0o755)
			r.provision(filepath.Join(dir, "persist"))
			r.cfg = r.androidConfig(dir, tt.sources)
			if tt.power {
				pm, err := dbus.Connect(r.bus.Address)
				if err != nil {
					t.Fatal(err)
				}
				defer pm.Close()
				if reply, err := pm.RequestName(sources.PowerManagerName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
					t.Fatalf("own %s: %v %v", sources.PowerManagerName, reply, err)
				}
			}
			var dev *inputdev.Device
			if tt.input {
				dev = inputdev.New(t, filepath.Join(dir, "input", "event0"))
			}
			r.d = startDaemon(t, r.built, r.cfg)
			r.d.waitLog("connected as")
			if dev != nil {
				dev.Writer(t) // the daemon has opened the device
			}
			// consent_default is false as shipped: the owner grants consent in setup.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if out, err := testenv.Command(ctx, r.built, "--config", r.cfg, "consent", "on").CombinedOutput(); err != nil {
				t.Fatalf("amosd consent on: %v\n%s", err, out)
			}
			r.checked = r.selftestChecks()

			code, out := r.run(0, "", nil, "--local")
			t.Logf("oem-check.sh --local:\n%s", out)
			if code != tt.wantExit {
				t.Errorf("oem-check.sh: exit %d, want %d", code, tt.wantExit)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for _, w := range tt.want {
				if _, ok := findPrefix(lines, w); !ok {
					t.Errorf("no line starts with %q", w)
				}
			}
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "oem-check: ") || !strings.HasSuffix(last, tt.wantSummary) {
				t.Errorf("summary %q, want it to end with %q", last, tt.wantSummary)
			}
			checkOEMLines(t, lines, tt.wantAll, tt.warnings, r.checked)

			st := testenv.Command(ctx, r.built, "--config", r.cfg, "selftest")
			text, err := st.Output()
			t.Logf("amosd selftest:\n%s", text)
			if got := st.ProcessState.ExitCode(); got != tt.wantExit {
				t.Errorf("amosd selftest: exit %d (%v), want %d", got, err, tt.wantExit)
			}
			// Compared with runs of blanks as one: the names are padded.
			var textLines []string
			for _, l := range strings.Split(string(text), "\n") {
				textLines = append(textLines, strings.Join(strings.Fields(l), " "))
			}
			for _, w := range tt.wantSelftest {
				if _, ok := findPrefix(textLines, strings.Join(strings.Fields(w), " ")); !ok {
					t.Errorf("amosd selftest: no line starts with %q", w)
				}
			}
			for _, w := range tt.notWantSelftest {
				if strings.Contains(string(text), w) {
					t.Errorf("amosd selftest says %q", w)
				}
			}
			if code := r.d.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("amosd exit %d on SIGTERM\n%s", code, r.d.log.String())
			}
		})
	}
}
