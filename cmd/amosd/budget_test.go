package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"amos.example/amosd/internal/benchline"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/rigs/vmtest"
)

// The idle budgets of README.md's budget table, measured on the real amosd binary (built for the host:
// the figures are those of this machine's GOARCH, which each line says) running
// against a private dbus-daemon and an in-process TLS collector. Run them through
// `make bench` (tools/benchreport), or alone (the budgets are the phones': `make vm-test`
// measures the same state in the arm64 and armv7 firmware, rigs/vmtest idle_test.go):
//
//	go test -run '^$' -bench 'BudgetIdle' -benchtime 1x -timeout 30m ./cmd/amosd

// benchDaemon is an amosd process under measurement.
type benchDaemon struct {
	b     *testing.B
	cmd   *exec.Cmd
	lines chan string
	log   strings.Builder
}

func startBenchDaemon(b *testing.B, bin, cfg string) *benchDaemon {
	b.Helper()
	d := &benchDaemon{b: b, lines: make(chan string, 4096)}
	d.cmd = exec.Command(bin, "--config", cfg, "run")
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	b.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { d.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				d.cmd.Process.Kill()
				<-done
			}
		}
	})
	return d
}

// waitLog waits until a log line contains every one of parts.
func (d *benchDaemon) waitLog(parts ...string) {
	d.b.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				d.b.Fatalf("amosd exited before logging %q:\n%s", parts, d.log.String())
			}
			d.log.WriteString(line + "\n")
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		case <-deadline:
			d.b.Fatalf("amosd did not log %q in 2 minutes:\n%s", parts, d.log.String())
		}
	}
}

// transcript returns the log so far, for -v.
func (d *benchDaemon) transcript() string {
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				return d.log.String()
			}
			d.log.WriteString(line + "\n")
		default:
			return d.log.String()
		}
	}
}

// procStatus returns the value of field (such as "VmRSS") of /proc/pid/status or of
// /proc/pid/task/tid/status, in the file's unit.
func procStatus(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// switches returns the context switches (voluntary and not) of every thread of pid, and
// how many threads it has.
func switches(pid int) (total int64, threads int, err error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return 0, 0, fmt.Errorf("threads of %d: %v", pid, err)
	}
	for _, t := range tasks {
		for _, f := range []string{"voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"} {
			n, err := procStatus(t, f)
			if err != nil {
				return 0, 0, err
			}
			total += n
		}
	}
	return total, len(tasks), nil
}

// writeBenchConfig writes the daemon's configuration and returns its path.
func writeBenchConfig(b *testing.B, dir string, cfg map[string]any) string {
	b.Helper()
	p := filepath.Join(dir, "amosd.json")
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// bootState returns this boot's id and CLOCK_BOOTTIME, as a tally saved now has them.
func bootState(b *testing.B) ([16]byte, uint64) {
	b.Helper()
	var id [16]byte
	raw, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		b.Fatal(err)
	}
	hex := strings.ReplaceAll(strings.TrimSpace(string(raw)), "-", "")
	for i := range id {
		v, err := strconv.ParseUint(hex[2*i:2*i+2], 16, 8)
		if err != nil {
			b.Fatalf("boot_id %q: %v", raw, err)
		}
		id[i] = byte(v)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		b.Fatal(err)
	}
	return id, uint64(ts.Sec)*1000 + uint64(ts.Nsec)/1e6
}

// prepareFullDay writes a device key and a store as a phone would have them after
// being offline for 999 days and using the phone all of today (README.md's budget
// table: "a full day of tally and 1,000 queued records"), the state that `make vm-test`
// also measures on the handsets (rigs/vmtest FullDay).
func prepareFullDay(b *testing.B, dataDir, keyDir string) {
	b.Helper()
	boot, uptime := bootState(b)
	now := time.Now()
	day := vmtest.FullDay{Today: proof.DateOf(now, 480), OffsetMinutes: 480, SavedAt: now, BootID: boot, UptimeMS: uptime}
	if err := day.Write(dataDir, keyDir); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBudgetIdleRSS: resident memory of an idle amosd holding a full day of tally
// and 1,000 queued records, whose upload the collector refused with 503 and a
// Retry-After of a day (so that the queue stays and the daemon sleeps), read from
// VmRSS once settled.
func BenchmarkBudgetIdleRSS(b *testing.B) {
	settle := 30 * time.Second
	if benchline.Quick() {
		settle = 10 * time.Second
	}
	bus := testenv.StartBus(b)
	col := testenv.StartCollector(b)
	col.SetFail(func(int) (int, string) { return 503, "86400" })
	bin := testenv.Build(b, "amos.example/amosd/cmd/amosd", "-X main.version=bench")
	dir := b.TempDir()
	data, persist := filepath.Join(dir, "data"), filepath.Join(dir, "persist")
	prepareFullDay(b, data, persist)
	cfg := writeBenchConfig(b, dir, map[string]any{
		"data_dir": data, "key_dir": persist, "server_url": col.URL, "ca_file": col.CAFile, "bus": bus.Address,
		"sources": []string{"amos-power", "logind"}, "log": "stderr",
	})
	for range b.N {
		d := startBenchDaemon(b, bin, cfg)
		d.waitLog("tally: restored")
		d.waitLog("sync:", "next attempt in")
		time.Sleep(settle)
		status := fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid)
		rss, err := procStatus(status, "VmRSS")
		var binSize int64
		if st, err := os.Stat(bin); err == nil {
			binSize = st.Size()
		}
		if err != nil {
			b.Fatal(err)
		}
		hwm, _ := procStatus(status, "VmHWM")
		anon, _ := procStatus(status, "RssAnon")
		file, _ := procStatus(status, "RssFile")
		shmem, _ := procStatus(status, "RssShmem")
		_, threads, _ := switches(d.cmd.Process.Pid)
		requests, _ := col.Counts()
		if requests == 0 {
			b.Fatalf("amosd made no upload attempt:\n%s", d.log.String())
		}
		if testing.Verbose() {
			b.Logf("amosd's log:\n%s", d.transcript())
		}
		benchline.Print("idle_rss_anon", float64(anon*1024), "bytes", "RssAnon: heap, stacks, the runtime's own")
		benchline.Print("idle_rss_files", float64((file+shmem)*1024), "bytes", "RssFile + RssShmem: the binary's pages and the store's mmap")
		benchline.Print("idle_rss", float64(rss*1024), "bytes", fmt.Sprintf(
			"VmRSS of `amosd run` (linux/%s, %d threads) %v after its upload of 1,000 queued records was answered 503 Retry-After 86400, with a full day of tally restored: %d KiB anonymous (heap, stacks, runtime), %d KiB of files (nearly all of the %d KiB binary, clean pages that fault-around maps in 64 KiB runs; and the store's mmap); peak VmHWM %d KiB",
			runtime.GOARCH, threads, settle, anon, file+shmem, binSize/1024, hwm))
	}
}

// BenchmarkBudgetIdleWakeups: context switches of every thread of an idle amosd (no
// input, empty queue) over 10 minutes, or 1 with BENCH_QUICK=1 (or BENCH_IDLE_WINDOW), as
// a rate per minute. The daemon starts as BenchmarkBudgetIdleRSS's does, with a full
// day of tally and 1,000 queued records, but the collector accepts them: the measure
// starts once the queue is empty, as a phone's day goes on after its sync. (The work
// matters: with Go's default GC settings, once a GC has run, the runtime forces one
// every 2 minutes.) The counters are read every second, so the line also says in how
// many seconds anything ran at all (wake-up episodes: switches 10 ms apart count once).
func BenchmarkBudgetIdleWakeups(b *testing.B) {
	window := 10 * time.Minute
	if benchline.Quick() {
		window = time.Minute
	}
	if v := os.Getenv("BENCH_IDLE_WINDOW"); v != "" { // for experiments: "4m"
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("BENCH_IDLE_WINDOW: %v", err)
		}
		window = d
	}
	bus := testenv.StartBus(b)
	col := testenv.StartCollector(b)
	bin := testenv.Build(b, "amos.example/amosd/cmd/amosd", "-X main.version=bench")
	dir := b.TempDir()
	data, persist := filepath.Join(dir, "data"), filepath.Join(dir, "persist")
	prepareFullDay(b, data, persist)
	cfg := writeBenchConfig(b, dir, map[string]any{
		"data_dir": data, "key_dir": persist, "server_url": col.URL, "ca_file": col.CAFile, "bus": bus.Address,
		"sources": []string{"amos-power", "logind"}, "log": "stderr",
	})
	for range b.N {
		d := startBenchDaemon(b, bin, cfg)
		d.waitLog("sync:", ", 0 queued") // the 1,000 records went up: the queue is empty
		time.Sleep(5 * time.Second)
		if _, stored := col.Counts(); stored != 1000 {
			b.Fatalf("the collector holds %d records, want 1,000:\n%s", stored, d.transcript())
		}
		pid := d.cmd.Process.Pid
		first, threads, err := switches(pid)
		if err != nil {
			b.Fatal(err)
		}
		start, last, episodes := time.Now(), first, 0
		for time.Since(start) < window {
			time.Sleep(time.Second)
			n, th, err := switches(pid)
			if err != nil {
				b.Fatal(err)
			}
			if n != last {
				episodes++
			}
			last, threads = n, max(threads, th)
		}
		minutes := time.Since(start).Minutes()
		if testing.Verbose() {
			b.Logf("amosd's log:\n%s", d.transcript())
		}
		benchline.Print("idle_wake_episodes", float64(episodes)/minutes, "episodes/min", "seconds in which any thread ran, a minute")
		benchline.Print("idle_wakeups", float64(last-first)/minutes, "switches/min", fmt.Sprintf(
			"%d context switches (voluntary + involuntary, all %d threads of `amosd run`, linux/%s, %d CPUs) in %.1f min of idle with an empty queue, after the upload of 1,000 records; %d of the %d seconds saw any (%.2f wake-up episodes a minute)",
			last-first, threads, runtime.GOARCH, runtime.NumCPU(), minutes, episodes, int(window/time.Second), float64(episodes)/minutes))
	}
}
