// Command guest is /init of the firmware image that vm-test boots under QEMU: it brings
// up the handset's services, plays the owner, and reports the state after power cuts.
//
// The handset's device key lives in its keystore (amosd's key.backend keystore): here
// amos-keystored, the DEVELOPMENT reference implementation of com.amos.Keystore1
// (software keys, a development attestation root; never on a real handset), which
// init starts on the system bus before amosd, with its keys and authority on the data
// disk where the factory (the host) left them.
//
// Modes (kernel command line amos.mode=): "run" uses the phone until the host cuts the
// power; "check" lets amosd drain its queue, stops it, and prints one line
// "VMTEST RESULT {json}" with amosd's status, selftest and identity, the offline
// inspection of its store, and the collector's view of the device (its attestation
// verdict) and of the month's claim, then with amos.adb=PORT answers adb on that port
// until the host is done (oem.go); "idle" leaves the phone idle for an hour and prints
// "VMTEST IDLE {json}" with amosd's memory and wake-ups (idle.go). Every other line for
// the host starts with "vm: ".
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// Paths of the image (initramfs) and of the disk mounted at /data.
const (
	modulesList   = "/etc/vm/modules"
	busConfig     = "/etc/vm/bus.conf"
	busAddress    = "unix:path=/run/dbus/system_bus_socket"
	amosdConfig   = "/etc/vm/amosd.json"
	dataDisk      = "/dev/vda"
	clockFile     = "/data/vm/clock"
	resultFile    = "/data/vm/result.json"
	collectorConf = "/data/collector/collector.json"
	collectorCA   = "/data/collector/ca.pem"
	collectorTok  = "/data/collector/token"
	collectorURL  = "https://127.0.0.1:8443"
	keystored     = "/usr/bin/amos-keystored"
	keystoreState = "/data/keystore"           // the keys, one directory per uid
	keystoreAuth  = "/data/keystore-authority" // the development attestation authority
	offsetMinutes = 480                        // amosd.json's utc_offset_minutes
	// bootLead is how long before a local midnight a boot sets the clock: what the
	// services (bus, keystore, collector, amosd) take to start under QEMU's emulation,
	// about 5 s on armv7, with room to spare; the owner uses the phone for the rest.
	bootLead = 12 * time.Second
)

func main() {
	g := &guest{out: os.Stdout, start: time.Now()}
	err := g.run()
	if err != nil {
		g.say("FAILED: %v", err)
	}
	g.stopAll()
	unix.Sync()
	if os.Getpid() == 1 {
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	if err != nil {
		os.Exit(1)
	}
}

type guest struct {
	out   io.Writer
	start time.Time
	mode  string
	procs []*exec.Cmd
	conn  *dbus.Conn
	sigs  chan *dbus.Signal
	// amosdLines gets amosd's log lines, for the guest to wait on what it reports.
	amosdLines chan string
	// sawMint: a RecordMinted since the owner's use began.
	sawMint bool
	// sawSynced: an upload after that mint that left nothing queued.
	sawSynced bool
	// refused: uploads the collector's address refused (amos.mode=idle).
	refused atomic.Int64
	// kbd: the keyboard plugged in while the phone lies idle (amos.mode=idle).
	kbd *keyboard
	// adbPort: amos.adb=, the port of the adb phase after the check (oem.go).
	adbPort string
	// midnight: the local midnight this boot's owner uses the phone across (amos.mode=run).
	midnight time.Time
}

func (g *guest) say(format string, args ...any) {
	fmt.Fprintf(g.out, "vm: [%6.2f] %s\n", time.Since(g.start).Seconds(), fmt.Sprintf(format, args...))
}

func (g *guest) run() error {
	if err := g.boot(); err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	if err := g.services(); err != nil {
		return fmt.Errorf("services: %w", err)
	}
	switch g.mode {
	case "run":
		return g.use()
	case "check":
		if err := g.check(); err != nil {
			return err
		}
		if g.adbPort != "" {
			return g.oemPhase(g.adbPort)
		}
		return nil
	case "idle":
		return g.idleReport()
	}
	return fmt.Errorf("amos.mode=%q: want run, check or idle", g.mode)
}

// boot mounts the file systems, loads the modules, brings up loopback, mounts the data
// disk and sets the clock where the last boot left it.
func (g *guest) boot() error {
	for _, m := range []struct{ src, dir, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/run", "tmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.src, m.dir, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "amos.mode="); ok {
			g.mode = v
		}
		if v, ok := strings.CutPrefix(f, "amos.adb="); ok {
			g.adbPort = v
		}
	}
	var uname unix.Utsname
	unix.Uname(&uname)
	g.say("kernel %s %s, mode %s", unix.ByteSliceToString(uname.Release[:]), unix.ByteSliceToString(uname.Machine[:]), g.mode)
	if err := g.loadModules(); err != nil {
		return err
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := waitPath(dataDisk, 30*time.Second); err != nil {
		return err
	}
	os.MkdirAll("/data", 0o755)
	if err := unix.Mount(dataDisk, "/data", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s on /data: %w", dataDisk, err)
	}
	b, err := os.ReadFile(clockFile)
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", clockFile, err)
	}
	start := time.Unix(sec, 0)
	if now := time.Now(); now.After(start) {
		start = now
	}
	if g.mode == "run" {
		// The phone was off until bootLead before a midnight (reporting zone): the
		// services start, its owner uses it once more that day, then amosd closes the
		// day.
		zone := time.FixedZone("amos", offsetMinutes*60)
		l := start.In(zone)
		g.midnight = time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, zone)
		if !g.midnight.Add(-bootLead).After(start) {
			g.midnight = g.midnight.AddDate(0, 0, 1)
		}
		start = g.midnight.Add(-bootLead)
	}
	if err := setClock(start); err != nil {
		return err
	}
	if err := g.saveClock(); err != nil { // the next boot is a day later, even after a cut now
		return err
	}
	g.say("clock set to %s", time.Now().UTC().Format(time.RFC3339))
	return nil
}

func (g *guest) loadModules() error {
	b, err := os.ReadFile(modulesList)
	if err != nil {
		return err
	}
	for _, p := range strings.Fields(string(b)) {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load %s: %w", p, err)
		}
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// waitPath waits for a device node that a driver is about to create, on inotify.
func waitPath(path string, limit time.Duration) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CREATE); err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	buf := make([]byte, 4096)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s did not appear in %v", path, limit)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(fds, int(left/time.Millisecond)+1)
		unix.Read(fd, buf)
	}
}

func setClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("set the clock: %w", err)
	}
	return nil
}

// services starts dbus-daemon, the keystore, the collector and amosd, and waits until
// each is ready.
func (g *guest) services() error {
	os.MkdirAll("/run/dbus", 0o755)
	bus := exec.Command("/usr/bin/dbus-daemon", "--nofork", "--print-address=1", "--config-file="+busConfig)
	if _, err := g.startReady(bus, "dbus-daemon", "unix:", nil); err != nil {
		return err
	}
	// The platform's keystore, before amosd: amosd reads its key there at start.
	ks := exec.Command(keystored, "--bus", busAddress, "--state", keystoreState, "--authority", keystoreAuth)
	if _, err := g.startReady(ks, "", "", func(line string) bool { return strings.Contains(line, "serving com.amos.Keystore1") }); err != nil {
		return err
	}
	if g.mode == "idle" {
		if err := g.refuseUploads(); err != nil {
			return err
		}
	} else {
		col := exec.Command("/usr/bin/amos-collector", "--config", collectorConf, "serve")
		if _, err := g.startReady(col, "collector", "", func(line string) bool { return strings.Contains(line, "127.0.0.1:8443") }); err != nil {
			return err
		}
	}
	conn, err := dbus.Connect(busAddress, dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		return fmt.Errorf("connect to the bus: %w", err)
	}
	g.conn = conn
	g.sigs = make(chan *dbus.Signal, 256)
	conn.Signal(g.sigs)
	for _, m := range [][]dbus.MatchOption{
		{dbus.WithMatchInterface("com.amos.Agent1")},
		{dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, "com.amos.Agent1")},
	} {
		if err := conn.AddMatchSignal(m...); err != nil {
			return fmt.Errorf("add match: %w", err)
		}
	}
	if g.mode == "idle" {
		// As on a phone: the power manager is up and a keyboard is plugged in, before
		// amosd starts; then nobody touches them.
		if _, err := g.conn.RequestName("com.amos.PowerManager", dbus.NameFlagDoNotQueue); err != nil {
			return fmt.Errorf("own com.amos.PowerManager: %w", err)
		}
		if g.kbd, err = newKeyboard(); err != nil {
			return fmt.Errorf("uinput: %w", err)
		}
	}
	return g.startAmosd()
}

// startAmosd starts amosd and waits until it owns its name on the bus.
func (g *guest) startAmosd() error {
	amosd := exec.Command("/usr/bin/amosd", "--config", amosdConfig, "run")
	g.amosdLines = make(chan string, 4096)
	if err := g.startLogged(amosd, ""); err != nil {
		return err
	}
	return g.waitSignal(60*time.Second, "amosd on the bus", func(s *dbus.Signal) bool {
		return s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3 && s.Body[2] != ""
	})
}

// startLogged starts cmd with its stdout and stderr copied to the console, each line
// prefixed (amosd prefixes its own).
func (g *guest) startLogged(cmd *exec.Cmd, prefix string) error {
	_, err := g.startReady(cmd, prefix, "", nil)
	return err
}

// startReady starts cmd, copies its output to the console and waits for the first
// line starting with first (on stdout) or accepted by ready (on either), if given.
func (g *guest) startReady(cmd *exec.Cmd, prefix, first string, ready func(string) bool) (string, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	g.procs = append(g.procs, cmd)
	got := make(chan string, 2)
	copyLines := func(r io.Reader, check func(string) bool) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if prefix != "" {
				fmt.Fprintf(g.out, "%s: %s\n", prefix, line)
			} else {
				fmt.Fprintln(g.out, line)
			}
			if cmd.Path == "/usr/bin/amosd" && g.amosdLines != nil {
				select {
				case g.amosdLines <- line:
				default:
				}
			}
			if check != nil && check(line) {
				select {
				case got <- line:
				default:
				}
			}
		}
	}
	outCheck, errCheck := ready, ready
	if first != "" {
		outCheck = func(l string) bool { return strings.HasPrefix(l, first) }
	}
	go copyLines(stdout, outCheck)
	go copyLines(stderr, errCheck)
	if first == "" && ready == nil {
		return "", nil
	}
	select {
	case line := <-got:
		return line, nil
	case <-time.After(60 * time.Second):
		return "", fmt.Errorf("%s did not get ready in 60 s", cmd.Path)
	}
}

// waitSignal prints amosd's signals as they come and returns when match accepts one.
func (g *guest) waitSignal(limit time.Duration, what string, match func(*dbus.Signal) bool) error {
	timeout := time.After(limit)
	for {
		select {
		case s := <-g.sigs:
			g.note(s)
			if match(s) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no %s in %v", what, limit)
		}
	}
}

// note prints the signals the host counts.
func (g *guest) note(s *dbus.Signal) {
	switch s.Name {
	case "com.amos.Agent1.RecordMinted":
		g.sawMint = true
		if len(s.Body) == 3 {
			g.say("minted epoch=%v seq=%v date=%v", s.Body[0], s.Body[1], s.Body[2])
		}
	case "com.amos.Agent1.Synced":
		if len(s.Body) == 2 && g.sawMint && s.Body[1] == uint32(0) {
			g.sawSynced = true
		}
		if len(s.Body) == 2 {
			g.say("synced accepted=%v queued=%v", s.Body[0], s.Body[1])
		}
	}
}

// use plays the owner: a few seconds of use across midnight (reporting zone) through
// the power manager's signals and a real input device, while amosd closes the day,
// mints its record and uploads it. Then the phone lies idle until the power is cut.
func (g *guest) use() error {
	if _, err := g.conn.RequestName("com.amos.PowerManager", dbus.NameFlagDoNotQueue); err != nil {
		return fmt.Errorf("own com.amos.PowerManager: %w", err)
	}
	// amosd adds its match rules after it has taken its own name: signals sent before
	// that are lost, as they would be on a phone. The owner starts once amosd says
	// the power manager is there.
	if err := g.waitAmosd("event: amos-power available", time.Minute); err != nil {
		return err
	}
	kbd, err := newKeyboard()
	if err != nil {
		return fmt.Errorf("uinput: %w", err)
	}
	defer kbd.Close()
	emit := func(member string, args ...any) error {
		return g.conn.Emit("/com/amos/PowerManager", "com.amos.PowerManager1."+member, args...)
	}
	zone := time.FixedZone("amos", offsetMinutes*60)
	now := time.Now().In(zone)
	midnight := g.midnight
	if left := time.Until(midnight); left < time.Second {
		// The owner would use the phone after the midnight the boot aimed at, and the
		// next one is a day away: say so now rather than wait for the power cut.
		return fmt.Errorf("the services were ready only %v before the midnight the boot aimed at (%v after the clock was set): over bootLead %v",
			left.Round(time.Millisecond), (bootLead - left).Round(time.Millisecond), bootLead)
	}
	g.say("running")
	g.say("phase tally day=%s", now.Format("2006-01-02"))
	if err := emit("ScreenChanged", true); err != nil {
		return err
	}
	if err := emit("LockChanged", false); err != nil {
		return err
	}
	minted := false
	for tap := 0; time.Now().Before(midnight.Add(2 * time.Second)); tap++ {
		if err := kbd.Tap(); err != nil {
			return err
		}
		if tap%5 == 0 {
			if err := emit("UserActivity"); err != nil {
				return err
			}
		}
		if !minted && time.Until(midnight) < 500*time.Millisecond {
			g.say("phase mint")
			minted = true
		}
		g.idle(200 * time.Millisecond) // the owner's pace; amosd's signals are printed meanwhile
	}
	if err := emit("LockChanged", true); err != nil {
		return err
	}
	if err := emit("ScreenChanged", false); err != nil {
		return err
	}
	if !g.sawMint {
		if err := g.waitSignal(60*time.Second, "RecordMinted", func(*dbus.Signal) bool { return g.sawMint }); err != nil {
			return err
		}
	}
	g.say("phase sync")
	if !g.sawSynced {
		if err := g.waitSignal(60*time.Second, "Synced with nothing queued", func(*dbus.Signal) bool { return g.sawSynced }); err != nil {
			return err
		}
	}
	if err := g.saveClock(); err != nil {
		return err
	}
	g.say("phase idle")
	return g.waitSignal(10*time.Minute, "power cut", func(*dbus.Signal) bool { return false })
}

// waitAmosd waits for a line of amosd's log that contains s.
func (g *guest) waitAmosd(s string, limit time.Duration) error {
	timeout := time.After(limit)
	for {
		select {
		case line := <-g.amosdLines:
			if strings.Contains(line, s) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("amosd did not log %q in %v", s, limit)
		}
	}
}

// wakeups returns the context switches of every process, by pid and name.
func wakeups() map[string]int64 {
	out := map[string]int64{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		status, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		name := ""
		var n int64
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "Name:":
				name = f[1]
			case "voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:":
				v, _ := strconv.ParseInt(f[1], 10, 64)
				n += v
			}
		}
		// Threads: a Go process's wake-ups are its threads'.
		tasks, _ := filepath.Glob(d + "/task/[0-9]*")
		if len(tasks) > 1 {
			n = 0
			for _, tdir := range tasks {
				ts, _ := os.ReadFile(tdir + "/status")
				for _, line := range strings.Split(string(ts), "\n") {
					if f := strings.Fields(line); len(f) == 2 && (f[0] == "voluntary_ctxt_switches:" || f[0] == "nonvoluntary_ctxt_switches:") {
						v, _ := strconv.ParseInt(f[1], 10, 64)
						n += v
					}
				}
			}
		}
		out[filepath.Base(d)+"/"+name] = n
	}
	return out
}

// idle waits d, printing amosd's signals meanwhile.
func (g *guest) idle(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	g.waitSignal(d, "", func(*dbus.Signal) bool { return false })
	return nil
}

// saveClock keeps the time on the disk: the next boot starts from it, not from the
// host's real-time clock, which the virtual days have left behind.
func (g *guest) saveClock() error {
	return writeSync(clockFile, strconv.FormatInt(time.Now().Unix(), 10)+"\n")
}

func writeSync(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// check drains amosd's queue, stops it, and reports what the store and the collector hold.
func (g *guest) check() error {
	obj := g.conn.Object("com.amos.Agent1", "/com/amos/Agent1")
	result := map[string]any{}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var accepted, queued uint32
		if err := obj.Call("com.amos.Agent1.Flush", 0).Store(&accepted, &queued); err != nil {
			return fmt.Errorf("calling Flush: %w", err)
		}
		g.say("flush accepted=%d queued=%d", accepted, queued)
		if queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the queue did not drain in 5 minutes (%d queued)", queued)
		}
		// A Flush during a server back-off is answered at once: wait for the upload.
		g.waitSignal(60*time.Second, "Synced", func(s *dbus.Signal) bool { return s.Name == "com.amos.Agent1.Synced" })
	}
	var status map[string]dbus.Variant
	if err := obj.Call("com.amos.Agent1.Status", 0).Store(&status); err != nil {
		return fmt.Errorf("calling Status: %w", err)
	}
	st := map[string]any{}
	for k, v := range status {
		st[k] = v.Value()
	}
	result["status"] = st
	// The handset's own view of its key (the keystore) while amosd runs. It fails (exit
	// 1) for the sources that check mode leaves absent: the JSON says what it checked.
	self, err := amosdJSON("selftest", "--json")
	if err != nil {
		return err
	}
	result["selftest"] = self
	// Stop amosd as init would, then read its store offline.
	amosd := g.procs[len(g.procs)-1]
	amosd.Process.Signal(syscall.SIGTERM)
	if err := amosd.Wait(); err != nil {
		return fmt.Errorf("amosd after SIGTERM: %w", err)
	}
	g.procs = g.procs[:len(g.procs)-1]
	out, err := exec.Command("/usr/bin/amosd", "--config", amosdConfig, "inspect", "--data", "/data/amos", "--json").Output()
	if err != nil {
		return fmt.Errorf("amosd inspect: %w", err)
	}
	result["inspect"] = json.RawMessage(out)
	ident, err := amosdJSON("identity", "--json")
	if err != nil {
		return err
	}
	result["identity"] = ident
	id := fmt.Sprint(st["device_id"])
	dev, err := collectorGet("/v1/devices/" + id)
	if err != nil {
		return err
	}
	result["device"] = json.RawMessage(dev)
	// The claim of the month of the device's last accepted date: its attestation.
	var view struct {
		Epochs []struct {
			LastDate string `json:"last_date"`
		} `json:"epochs"`
	}
	json.Unmarshal(dev, &view)
	if len(view.Epochs) > 0 && len(view.Epochs[0].LastDate) >= 7 {
		claim, err := collectorGet("/v1/claims/devices?month=" + view.Epochs[0].LastDate[:7])
		if err != nil {
			return err
		}
		result["claim"] = json.RawMessage(claim)
	}
	b, _ := json.Marshal(result)
	if err := writeSync(resultFile, string(b)+"\n"); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "VMTEST RESULT %s\n", b)
	return nil
}

// amosdJSON runs an amosd command that prints JSON and returns what it printed; exit
// 1 (a failed check of selftest) is not an error when the output is JSON.
func amosdJSON(args ...string) (json.RawMessage, error) {
	out, err := exec.Command("/usr/bin/amosd", append([]string{"--config", amosdConfig}, args...)...).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1 && json.Valid(out)) {
		return nil, fmt.Errorf("amosd %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("amosd %s printed no JSON: %s", strings.Join(args, " "), out)
	}
	return out, nil
}

// collectorGet asks the collector, as the maker, for path: its view of the device, or
// of the month's claim.
func collectorGet(path string) ([]byte, error) {
	ca, err := os.ReadFile(collectorCA)
	if err != nil {
		return nil, err
	}
	token, err := os.ReadFile(collectorTok)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", collectorURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("collector GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("collector GET %s: %s %s (%v)", path, resp.Status, b, err)
	}
	return b, nil
}

func (g *guest) stopAll() {
	for i := len(g.procs) - 1; i >= 0; i-- {
		p := g.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.Process.Kill()
		}
	}
}

// keyboard is a uinput device with one key: what amosd's evdev source reads is the
// kernel's own input path.
type keyboard struct{ f *os.File }

const (
	evSyn       = 0x00
	evKey       = 0x01
	keyA        = 30
	uiSetEvBit  = 0x40045564 // _IOW('U', 100, int)
	uiSetKeyBit = 0x40045565 // _IOW('U', 101, int)
	uiDevSetup  = 0x405c5503 // _IOW('U', 3, struct uinput_setup), 92 bytes
	uiDevCreate = 0x5501     // _IO('U', 1)
)

func newKeyboard() (*keyboard, error) {
	if err := waitPath("/dev/uinput", 10*time.Second); err != nil {
		return nil, err
	}
	f, err := os.OpenFile("/dev/uinput", os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	fd := f.Fd()
	ioctl := func(req, arg uintptr) error {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, arg); e != 0 {
			return e
		}
		return nil
	}
	var setup [92]byte
	binary.LittleEndian.PutUint16(setup[0:], 0x06)   // BUS_VIRTUAL
	binary.LittleEndian.PutUint16(setup[2:], 0x414d) // vendor "AM"
	binary.LittleEndian.PutUint16(setup[4:], 0x0001)
	copy(setup[8:88], "amos vm-test keyboard")
	for _, c := range []struct{ req, arg uintptr }{
		{uiSetEvBit, evKey}, {uiSetKeyBit, keyA}, {uiDevSetup, uintptr(unsafe.Pointer(&setup))}, {uiDevCreate, 0},
	} {
		if err := ioctl(c.req, c.arg); err != nil {
			f.Close()
			return nil, fmt.Errorf("ioctl %#x: %w", c.req, err)
		}
	}
	return &keyboard{f: f}, nil
}

// Tap presses and releases the key, with the SYN reports a real keyboard sends.
func (k *keyboard) Tap() error {
	for _, v := range []int32{1, 0} {
		if err := k.write(evKey, keyA, v); err != nil {
			return err
		}
		if err := k.write(evSyn, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// write sends one struct input_event: a struct timeval (whose size is the arch's),
// type, code, value; the kernel stamps the time itself.
func (k *keyboard) write(typ, code uint16, value int32) error {
	tv := int(unsafe.Sizeof(unix.Timeval{}))
	b := make([]byte, tv+8)
	binary.LittleEndian.PutUint16(b[tv:], typ)
	binary.LittleEndian.PutUint16(b[tv+2:], code)
	binary.LittleEndian.PutUint32(b[tv+4:], uint32(value))
	_, err := k.f.Write(b)
	return err
}

func (k *keyboard) Close() error { return k.f.Close() }
