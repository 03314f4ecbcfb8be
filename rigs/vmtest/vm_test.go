package vmtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/rigs/adbd"
)

// TestPowerCuts is `make vm-test`: for each handset architecture it builds the firmware
// image, then
//
//   - cuts: boots it under full-system QEMU on an ext4 virtio disk, cuts the power
//     (SIGKILL of QEMU) at random moments while the owner uses the phone and amosd
//     tallies, mints and uploads, boots again on the same disk, and at the end checks
//     that the store opens cleanly, the chain is unbroken, the collector holds every
//     record the device minted exactly once, and the device is attested: amosd signs
//     with key.backend keystore, in amos-keystored (the DEVELOPMENT reference keystore:
//     software keys), whose key the factory (buildDisk) generated with `amosd
//     identity`, and the collector, which requires attestation for konka and trusts
//     only the development authority's root, accepted the chain its genesis carried;
//     then, on the check boot, android-build/oem-check.sh runs over the host's real adb
//     (rigs/adbd in the guest, a loopback port forwarded by QEMU): all pass on the
//     good phone, and the expected failures with consent off, a wrong CA and the
//     daemon stopped (oem_test.go);
//   - idle: boots it on a disk holding a full day of tally and 1,000 queued records and
//     measures amosd's memory and wake-ups in an idle hour (idle_test.go): README.md's
//     idle budgets as the phone sees them.
//
// AMOSD_VMTEST=1 runs it; VMTEST_CUTS_ARM64, VMTEST_CUTS_ARMV7 set the number of cuts,
// VMTEST_SEED the random moments, VMTEST_ARCH one architecture only; -run
// 'TestPowerCuts/.*/idle' the idle budgets only.
func TestPowerCuts(t *testing.T) {
	if os.Getenv("AMOSD_VMTEST") == "" {
		t.Skip("boots full-system QEMU images for minutes: run `make vm-test` (AMOSD_VMTEST=1)")
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "mke2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install -y apt dpkg e2fsprogs (scripts/ensure-tools.sh)", tool)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("VMTEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("VMTEST_SEED=%d", seed)
	for _, arch := range Arches() {
		if only := os.Getenv("VMTEST_ARCH"); only != "" && only != arch.Name {
			continue
		}
		cuts := map[string]int{"arm64": 24, "armv7": 12}[arch.Name]
		if s := os.Getenv("VMTEST_CUTS_" + strings.ToUpper(arch.Name)); s != "" {
			cuts, _ = strconv.Atoi(s)
		}
		t.Run(arch.Name, func(t *testing.T) {
			// The architectures boot side by side: each guest is one emulated CPU,
			// counted in instructions (-icount), so the other does not change its
			// figures, and CI waits for the longer one only.
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
			defer cancel()
			im := prepare(t, ctx, arch)
			t.Run("cuts", func(t *testing.T) {
				powerCuts(t, ctx, arch, im, cuts, mrand.New(mrand.NewPCG(seed, uint64(len(arch.Name)))))
			})
			t.Run("idle", func(t *testing.T) { idleBudgets(t, ctx, arch, im) })
		})
	}
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func powerCuts(t *testing.T, ctx context.Context, arch Arch, im *image, cuts int, rng *mrand.Rand) {
	kernel, img, logs := im.kernel, im.initramfs, im.logs
	dk := buildDisk(t, ctx, t.TempDir(), time.Now(), nil)
	disk := dk.Path

	minted := map[string]int{} // "epoch/seq" → how many boots announced it
	phases := map[string]int{}
	var toRunning []time.Duration
	start := time.Now()
	for i := 1; i <= cuts; i++ {
		b := boot(t, ctx, arch, kernel, img, disk, "run", filepath.Join(logs, fmt.Sprintf("boot-%02d.log", i)))
		// Each boot is one day's last seconds: the owner uses the phone across
		// midnight, amosd mints the day and uploads it (the record's whole path in about
		// five seconds). The cut comes while the services start, while the owner
		// uses the phone, around midnight, or during the upload, a quarter each.
		var phase string
		switch rng.IntN(4) {
		case 0:
			b.waitLine(t, "vm: ", 3*time.Minute)
			phase = b.cutAfter(t, time.Duration(rng.Int64N(int64(1500*time.Millisecond))))
			if phase == "" || phase == "running" {
				phase = "boot"
			}
		case 1:
			toRunning = append(toRunning, b.waitLine(t, "] running", 3*time.Minute))
			phase = b.cutAfter(t, time.Duration(rng.Int64N(int64(4*time.Second))))
		case 2:
			toRunning = append(toRunning, b.waitLine(t, "] running", 3*time.Minute))
			b.waitLine(t, "] phase mint", time.Minute) // half a second before midnight
			phase = b.cutAfter(t, time.Duration(rng.Int64N(int64(3*time.Second))))
		case 3:
			// The upload: it starts as the record is minted and takes a few
			// hundred milliseconds (TLS, the collector's fsync, amosd's ack).
			toRunning = append(toRunning, b.waitLine(t, "] running", 3*time.Minute))
			b.waitLine(t, "] minted epoch=", time.Minute)
			phase = b.cutAfter(t, time.Duration(rng.Int64N(int64(400*time.Millisecond))))
		}
		phases[phase]++
		for _, m := range b.minted() {
			minted[m]++
		}
		t.Logf("%s: cut %d/%d in phase %q; %d records announced so far", arch.Name, i, cuts, phase, len(minted))
	}
	// The check boot has a network whose host forwards a loopback port to the guest's
	// adb port: after its result, oem-check.sh runs over the host's real adb (oem_test.go).
	host := adbd.StartHost(t)
	port := freePort(t)
	b := boot(t, ctx, arch, kernel, img, disk, "check amos.adb="+guestADBPort, filepath.Join(logs, "check.log"), adbNIC(port)...)
	b.waitLine(t, "VMTEST RESULT ", 10*time.Minute)
	t.Run("oem-check", func(t *testing.T) { oemOverADB(t, arch, im, b, host, port) })
	b.waitExit(t, 2*time.Minute)
	for _, m := range b.minted() {
		minted[m]++
	}
	res := b.result(t)
	verify(t, res, minted)
	verifyAttested(t, res, dk)
	var sum time.Duration
	for _, d := range toRunning {
		sum += d
	}
	avg := time.Duration(0)
	if len(toRunning) > 0 {
		avg = sum / time.Duration(len(toRunning))
	}
	var ph []string
	for p, n := range phases {
		ph = append(ph, fmt.Sprintf("%s %d", p, n))
	}
	sort.Strings(ph)
	t.Logf("FIGURES %s: %d power cuts (%s), %d boots, records minted %d (epoch %d head seq %d), collector head seq %d, reported days %d, queue %d, dead-letter %d, power-on to running %.1f s average, %s in all",
		arch.Name, cuts, strings.Join(ph, ", "), cuts+1, res.Inspect.Head.Seq, res.Inspect.Head.Epoch, res.Inspect.Head.Seq,
		res.collectorHead(), res.reportedDays(), len(res.Inspect.Queue), len(res.Inspect.Dead), avg.Seconds(), time.Since(start).Round(time.Second))
	if a := res.Device.Attestation; a != nil {
		claim := "none (no accepted day)"
		if c := res.claimOf(dk.DeviceID); c.DeviceID != "" {
			claim = fmt.Sprintf("%s %s, outcome %s %v, attestation %q", res.Claim.Month, res.Claim.Status, c.Outcome, c.Reasons, c.Attestation)
		}
		t.Logf("FIGURES %s attestation: key.backend %s (amos-keystored, DEVELOPMENT keystore), %s key, chain of %d; the collector's verdict: accepted %v, %s, OS patch level %d, %d chain serials; the claim: %s",
			arch.Name, res.Identity.Backend, res.Device.KeyType, res.Identity.ChainLength, a.Accepted, a.SecurityLevel, a.OSPatchLevel, len(a.Serials), claim)
	}
}

// image is a built firmware image.
type image struct {
	kernel, initramfs string
	amosd             string // the image's amosd, for oem-check.sh --push
	logs              string // out/vm/<arch>, emptied
}

// prepare fetches the packages (or takes them from the cache) and builds the initramfs.
func prepare(t *testing.T, ctx context.Context, arch Arch) *image {
	t.Helper()
	if _, err := exec.LookPath(arch.QEMU); err != nil {
		t.Fatalf("%s is missing: apt-get install -y qemu-system-arm (scripts/ensure-tools.sh)", arch.QEMU)
	}
	repo := repoRoot(t)
	im := &image{logs: filepath.Join(repo, "out", "vm", arch.Name)}
	os.RemoveAll(im.logs)
	if err := os.MkdirAll(im.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	deb := &Debian{Arch: arch, Cache: filepath.Join(repo, ".cache", "vm", arch.DebArch), Log: t.Logf}
	root, kernel, err := deb.Root(ctx)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	im.kernel = kernel
	im.initramfs = buildImage(t, ctx, arch, root, work)
	im.amosd = filepath.Join(work, "bin-"+arch.Name, "amosd")
	t.Logf("%s: kernel %s, image %s", arch.Name, filepath.Base(kernel), size(im.initramfs))
	return im
}

func size(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(st.Size())/(1<<20))
}

// buildFor compiles a main package for the handset, as `make cross` does.
func buildFor(t *testing.T, ctx context.Context, goarch, goarm, pkg, out string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "nethttpomithttp2", "-gcflags=all=-l", "-ldflags", "-s -w -X main.version=vm-test", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s for %s: %v\n%s", pkg, goarch, err, b)
	}
}

// buildImage writes the initramfs: our init, amosd, amos-keystored (the development
// keystore), the collector, dbus-daemon with its libraries, busybox, the kernel
// modules, and the configuration. The bus is a system bus with the test policy of
// testdata/dbus/system-like.conf (everything runs as root) and, in its system.d, the
// keystore's policy that linux-build ships for development images,
// com.amos.Keystore1.conf: root owns com.amos.Keystore1 and may call it.
func buildImage(t *testing.T, ctx context.Context, arch Arch, root, work string) string {
	t.Helper()
	bins := filepath.Join(work, "bin-"+arch.Name)
	os.MkdirAll(bins, 0o755)
	for _, p := range []string{"cmd/amosd", "cmd/amos-keystored", "cmd/amos-collector", "rigs/vmtest/guest"} {
		buildFor(t, ctx, arch.GOARCH, arch.GOARM, "amos.example/amosd/"+p, filepath.Join(bins, filepath.Base(p)))
	}
	mods, err := ModuleOrder(root, Modules())
	if err != nil {
		t.Fatal(err)
	}
	libs, err := LibClosure(root, "/usr/bin/dbus-daemon")
	if err != nil {
		t.Fatal(err)
	}
	busConf, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata", "dbus", "system-like.conf"))
	if err != nil {
		t.Fatal(err)
	}
	busConf = []byte(strings.Replace(string(busConf), "<listen>unix:tmpdir=/tmp</listen>", "<listen>unix:path=/run/dbus/system_bus_socket</listen>", 1))
	busConf = []byte(strings.Replace(string(busConf), "</busconfig>", "  <includedir>"+systemD+"</includedir>\n</busconfig>", 1))
	amosdConf, _ := json.MarshalIndent(map[string]any{
		"data_dir": "/data/amos", "key_dir": "/data/persist", "server_url": "https://127.0.0.1:8443",
		"ca_file": "/data/collector/ca.pem", "bus": "unix:path=/run/dbus/system_bus_socket",
		"sources": []string{"amos-power", "evdev"}, "evdev_glob": "/dev/input/event*",
		"utc_offset_minutes": offsetMinutes, "consent_default": true, "log": "stderr",
		// The device key is in the keystore (amos-keystored here), made at the factory.
		"key": map[string]any{"backend": "keystore"},
		// spread 0: the day goes right after midnight, where the cuts wait for it.
		"sync": map[string]any{"initial_backoff": "2s", "max_backoff": "20s", "batch_records": 256, "timeout": "30s", "spread": "0s"},
	}, "", "  ")
	machineID := make([]byte, 16)
	rand.Read(machineID)

	files := append(append([]string{"/init", "/bin/busybox", "/usr/bin/amosd", "/usr/bin/amos-keystored", "/usr/bin/amos-collector", "/usr/bin/dbus-daemon",
		"/etc/passwd", "/etc/group", "/etc/machine-id", "/etc/vm/modules", "/etc/vm/bus.conf", "/etc/vm/amosd.json", keystorePolicy}, mods...), libs...)
	out := filepath.Join(work, "initramfs-"+arch.Name+".cpio")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	a := NewInitramfs(f)
	for _, d := range append(Dirs(files), "/proc", "/sys", "/dev", "/run", "/tmp", "/data", "/sbin") {
		a.Dir(d, 0o755)
	}
	a.Copy("/init", filepath.Join(bins, "guest"))
	a.Copy("/usr/bin/amosd", filepath.Join(bins, "amosd"))
	a.Copy("/usr/bin/amos-keystored", filepath.Join(bins, "amos-keystored"))
	a.Copy(keystorePolicy, filepath.Join(repoRoot(t), "linux-build", filepath.Base(keystorePolicy)))
	a.Copy("/usr/bin/amos-collector", filepath.Join(bins, "amos-collector"))
	a.Copy("/bin/busybox", filepath.Join(root, "bin", "busybox"))
	a.Symlink("/bin/sh", "busybox")
	a.Copy("/usr/bin/dbus-daemon", filepath.Join(root, "usr", "bin", "dbus-daemon"))
	for _, p := range append(mods, libs...) {
		a.Copy(p, filepath.Join(root, p))
	}
	a.File("/etc/passwd", 0o644, []byte("root:x:0:0:root:/:/bin/sh\nmessagebus:x:100:101::/:/bin/false\n"))
	a.File("/etc/group", 0o644, []byte("root:x:0:\ninput:x:101:\nmessagebus:x:102:\n"))
	a.File("/etc/machine-id", 0o444, []byte(hex.EncodeToString(machineID)+"\n"))
	a.File("/etc/vm/modules", 0o644, []byte(strings.Join(mods, "\n")+"\n"))
	a.File("/etc/vm/bus.conf", 0o644, busConf)
	a.File("/etc/vm/amosd.json", 0o644, amosdConf)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// offsetMinutes is the reporting zone of the image's amosd.json.
const offsetMinutes = 480

// systemD is the image's directory of bus policy files, as Debian's; keystorePolicy
// the keystore's there.
const (
	systemD        = "/usr/share/dbus-1/system.d"
	keystorePolicy = systemD + "/com.amos.Keystore1.conf"
)

// vm is one boot of the image.
type vm struct {
	cmd   *exec.Cmd
	start time.Time
	lines chan string
	done  chan struct{}
	log   []string // every console line so far, guarded by reading only after done or from the reader
	mu    chan struct{}
}

// boot powers the image on: mode is amos.mode's value, then any further kernel
// parameters; extra are more QEMU options.
func boot(t *testing.T, ctx context.Context, arch Arch, kernel, img, disk, mode, logPath string, extra ...string) *vm {
	t.Helper()
	args := append(append(append([]string{}, arch.Machine...), extra...),
		"-m", "512", "-smp", "1", "-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", img,
		"-append", "console="+arch.Console+" panic=-1 quiet amos.mode="+mode,
		"-drive", "file="+disk+",format=raw,if=none,id=d0,cache=writeback",
		"-device", "virtio-blk-device,drive=d0")
	cmd := exec.CommandContext(ctx, arch.QEMU, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{cmd: cmd, start: time.Now(), lines: make(chan string, 4096), done: make(chan struct{}), mu: make(chan struct{}, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(v.done)
		defer logf.Close()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintf(logf, "[%6.1f] %s\n", time.Since(v.start).Seconds(), line)
			v.mu <- struct{}{}
			v.log = append(v.log, line)
			<-v.mu
			select {
			case v.lines <- line:
			default:
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-v.done })
	return v
}

func (v *vm) snapshot() []string {
	v.mu <- struct{}{}
	defer func() { <-v.mu }()
	return append([]string(nil), v.log...)
}

func (v *vm) tail(n int) string {
	l := v.snapshot()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// waitLine waits for a console line containing s and returns how long after power-on
// it came. A guest that fails, or a QEMU that exits, ends the test.
func (v *vm) waitLine(t *testing.T, s string, limit time.Duration) time.Duration {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case line := <-v.lines:
			if strings.Contains(line, "vm: ") && strings.Contains(line, "FAILED") {
				t.Fatalf("the guest failed: %s\n%s", line, v.tail(60))
			}
			if strings.Contains(line, s) {
				return time.Since(v.start)
			}
		case <-v.done:
			t.Fatalf("QEMU exited before %q:\n%s", s, v.tail(60))
		case <-timeout:
			t.Fatalf("no %q on the console in %v:\n%s", s, limit, v.tail(60))
		}
	}
}

var phaseRE = regexp.MustCompile(`vm: \[[ 0-9.]+\] (?:phase (\w+)|(running))`)

// cutAfter lets the guest run for d, then kills QEMU: the power cut. It returns the
// phase the guest last announced.
func (v *vm) cutAfter(t *testing.T, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case line := <-v.lines:
			if strings.Contains(line, "vm: ") && strings.Contains(line, "FAILED") {
				t.Fatalf("the guest failed: %s\n%s", line, v.tail(60))
			}
		case <-v.done:
			t.Fatalf("QEMU exited before its power cut:\n%s", v.tail(60))
		case <-timeout:
			v.cmd.Process.Kill() // SIGKILL: nothing of the guest's is flushed
			<-v.done
			phase := ""
			for _, l := range v.snapshot() {
				switch m := phaseRE.FindStringSubmatch(l); {
				case m != nil:
					phase = m[1] + m[2]
				case phase == "mint" && strings.Contains(l, "] minted epoch="):
					phase = "upload" // minted, not yet acknowledged
				case phase == "upload" && strings.Contains(l, "] synced ") && strings.HasSuffix(l, "queued=0"):
					phase = "uploaded"
				}
			}
			return phase
		}
	}
}

func (v *vm) waitExit(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-v.done:
	case <-time.After(limit):
		t.Fatalf("the guest did not power off in %v:\n%s", limit, v.tail(40))
	}
}

var mintedRE = regexp.MustCompile(`vm: \[[ 0-9.]+\] minted epoch=(\d+) seq=(\d+)`)

// minted returns "epoch/seq" of every RecordMinted the guest saw.
func (v *vm) minted() []string {
	var out []string
	for _, l := range v.snapshot() {
		if m := mintedRE.FindStringSubmatch(l); m != nil {
			out = append(out, m[1]+"/"+m[2])
		}
	}
	return out
}

// result is the guest's check: amosd's status, its store inspected offline, and the
// collector's view of the device.
type result struct {
	Status  map[string]any `json:"status"`
	Inspect struct {
		Head *struct {
			Epoch uint32 `json:"epoch"`
			Seq   uint64 `json:"seq"`
		} `json:"chain_head"`
		Queue    []json.RawMessage `json:"queue"`
		Dead     []json.RawMessage `json:"dead_letter"`
		Evicted  uint64            `json:"evicted_queued"`
		Recovery json.RawMessage   `json:"last_recovery"`
	} `json:"inspect"`
	Device struct {
		DeviceID    string `json:"device_id"`
		PublicKey   string `json:"public_key"`
		KeyType     string `json:"key_type"`
		Attributed  bool   `json:"attributed"`
		MakerID     string `json:"maker_id"`
		Attestation *struct {
			Accepted      bool     `json:"accepted"`
			Reason        string   `json:"reason"`
			Detail        string   `json:"detail"`
			SecurityLevel string   `json:"security_level"`
			OSPatchLevel  int      `json:"os_patch_level"`
			Epoch         uint32   `json:"epoch"`
			Serials       []string `json:"serials"`
		} `json:"attestation"`
		AttestationRevoked string `json:"attestation_revoked"`
		Epochs             []struct {
			Epoch    uint32 `json:"epoch"`
			HeadSeq  uint64 `json:"head_seq"`
			LastDate string `json:"last_date"`
		} `json:"epochs"`
		Months []struct {
			Month        string `json:"month"`
			ReportedDays int    `json:"reported_days"`
		} `json:"months"`
	} `json:"device"`
	// Claim is the collector's claim of the month of the device's last accepted date, as
	// its maker sees it (GET /v1/claims/devices).
	Claim struct {
		Month   string        `json:"month"`
		Status  string        `json:"status"`
		Devices []claimDevice `json:"devices"`
	} `json:"claim"`
	// Identity is `amosd identity --json` in the guest, against its keystore.
	Identity struct {
		DeviceID    string `json:"device_id"`
		PublicKey   string `json:"public_key"`
		KeyType     string `json:"key_type"`
		Backend     string `json:"backend"`
		ChainLength int    `json:"chain_length"`
		Generated   bool   `json:"generated"`
		Certificate string `json:"certificate"`
		MakerID     string `json:"maker_id"`
	} `json:"identity"`
	// Selftest is `amosd selftest --json` in the guest while amosd ran.
	Selftest struct {
		Checks []struct {
			Check  string `json:"check"`
			OK     bool   `json:"ok"`
			Warn   bool   `json:"warn"`
			Detail string `json:"detail"`
		} `json:"checks"`
	} `json:"selftest"`
}

// claimDevice is one device of a month's claim.
type claimDevice struct {
	DeviceID    string   `json:"device_id"`
	MakerID     string   `json:"maker_id"`
	Outcome     string   `json:"outcome"`
	Reasons     []string `json:"reasons"`
	Attestation string   `json:"attestation"`
}

// claimOf returns the claim's row of a device (zero if it has none).
func (r *result) claimOf(id string) claimDevice {
	for _, d := range r.Claim.Devices {
		if d.DeviceID == id {
			return d
		}
	}
	return claimDevice{}
}

func (v *vm) result(t *testing.T) *result {
	t.Helper()
	for _, l := range v.snapshot() {
		if j, ok := strings.CutPrefix(l, "VMTEST RESULT "); ok {
			var r result
			if err := json.Unmarshal([]byte(j), &r); err != nil {
				t.Fatalf("VMTEST RESULT: %v\n%s", err, j)
			}
			return &r
		}
	}
	t.Fatalf("no VMTEST RESULT:\n%s", v.tail(40))
	return nil
}

func (r *result) collectorHead() uint64 {
	var h uint64
	for _, e := range r.Device.Epochs {
		h = max(h, e.HeadSeq)
	}
	return h
}

func (r *result) reportedDays() int {
	n := 0
	for _, m := range r.Device.Months {
		n += m.ReportedDays
	}
	return n
}

// verify checks the end state: a clean store (never recovered, epoch 1), nothing left
// to send and nothing refused, the collector's chain head equal to the device's, every
// record announced during the run inside that chain, and each day counted once.
func verify(t *testing.T, r *result, minted map[string]int) {
	t.Helper()
	in := r.Inspect
	switch {
	case in.Head == nil:
		t.Fatal("the store has no chain head")
	case len(in.Recovery) > 0 && string(in.Recovery) != "null":
		t.Errorf("the store was recovered from corruption: %s", in.Recovery)
	case in.Head.Epoch != 1:
		t.Errorf("chain head in epoch %d: the chain was restarted", in.Head.Epoch)
	}
	if len(in.Queue) != 0 || len(in.Dead) != 0 || in.Evicted != 0 {
		t.Errorf("queue %d, dead-letter %d, evicted %d: want all 0", len(in.Queue), len(in.Dead), in.Evicted)
	}
	if !r.Device.Attributed || r.Device.MakerID != "konka" {
		t.Errorf("collector: device attributed %v to %q, want konka", r.Device.Attributed, r.Device.MakerID)
	}
	if len(r.Device.Epochs) != 1 || r.Device.Epochs[0].Epoch != in.Head.Epoch || r.Device.Epochs[0].HeadSeq != in.Head.Seq {
		t.Errorf("collector epochs %+v, device head epoch %d seq %d", r.Device.Epochs, in.Head.Epoch, in.Head.Seq)
	}
	// The collector accepts a record only after its predecessor (chain_gap otherwise)
	// and once (duplicate): head seq N means it holds 1..N, each once. Seq 1 is the
	// genesis; every other record is one day.
	if got, want := r.reportedDays(), int(in.Head.Seq)-1; got != want {
		t.Errorf("collector counts %d reported days, the chain holds %d day records", got, want)
	}
	for k := range minted {
		var e uint32
		var s uint64
		fmt.Sscanf(k, "%d/%d", &e, &s)
		if e != in.Head.Epoch || s > in.Head.Seq {
			t.Errorf("record %s was announced by RecordMinted but is not in the chain (head %d/%d)", k, in.Head.Epoch, in.Head.Seq)
		}
	}
	if len(minted) == 0 {
		t.Error("no record was minted during the run")
	}
}

// verifyAttested checks that the handset ran attested: its amosd signs with the
// factory's keystore key (key.backend keystore, P-256, a chain of 3 from the
// development authority), the collector verified the chain its genesis carried
// (accepted, TrustedEnvironment, epoch 1) and the month's claim counts it attested; and
// that amosd's selftest says the keystore is a development one.
func verifyAttested(t *testing.T, r *result, dk *disk) {
	t.Helper()
	id := r.Identity
	if id.Backend != "keystore" || id.KeyType != "p256" || id.ChainLength != 3 || id.Generated || id.DeviceID != dk.DeviceID ||
		id.PublicKey != dk.PublicKey || id.Certificate != "valid" || id.MakerID != vmMaker {
		t.Errorf("amosd identity in the guest: %+v; want the factory's keystore key %s (device %s) with a chain of 3 and a valid certificate", id, dk.PublicKey, dk.DeviceID)
	}
	dev := r.Device
	if dev.DeviceID != dk.DeviceID || dev.PublicKey != dk.PublicKey || dev.KeyType != "p256" {
		t.Errorf("the collector's device %s key %s (%s), want %s key %s (p256)", dev.DeviceID, dev.PublicKey, dev.KeyType, dk.DeviceID, dk.PublicKey)
	}
	switch a := dev.Attestation; {
	case a == nil:
		t.Error("the collector holds no attestation verdict for the device: its genesis carried no chain")
	case !a.Accepted:
		t.Errorf("the collector refused the device's attestation: %s (%s)", a.Reason, a.Detail)
	case a.SecurityLevel != dk.SecurityLevel || a.SecurityLevel != "TrustedEnvironment" || a.Epoch != 1 || len(a.Serials) != 3:
		t.Errorf("attestation verdict %+v, want TrustedEnvironment (as at the factory: %s) from epoch 1's genesis, 3 serials", *a, dk.SecurityLevel)
	}
	if dev.AttestationRevoked != "" {
		t.Errorf("attestation revoked: %s", dev.AttestationRevoked)
	}
	// A claim lists the devices with an accepted day in its month: the run's days (a
	// run narrowed to a few cuts may have none, only the genesis).
	if c := r.claimOf(dk.DeviceID); r.reportedDays() > 0 && (c.Attestation != "attested" || c.MakerID != vmMaker) {
		t.Errorf("the claim of %s (%s) shows the device as %+v, want attested for %s", r.Claim.Month, r.Claim.Status, c, vmMaker)
	}
	checks := map[string]bool{}
	for _, c := range r.Selftest.Checks {
		switch c.Check {
		case "keystore":
			checks[c.Check] = c.OK && c.Warn && strings.Contains(c.Detail, "DEVELOPMENT")
		case "key", "attestation", "certificate":
			checks[c.Check] = c.OK && !c.Warn
		}
	}
	for _, c := range []string{"keystore", "key", "attestation", "certificate"} {
		if !checks[c] {
			t.Errorf("amosd selftest in the guest: check %q is not as expected (keystore: a warning naming the DEVELOPMENT keystore; the others ok): %+v", c, r.Selftest.Checks)
		}
	}
}
