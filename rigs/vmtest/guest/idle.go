package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// amos.mode=idle: README.md's idle budgets as the phone sees them. The host made the
// data disk with a full day of tally and 1,000 queued records (rigs/vmtest FullDay) and
// set the clock to noon of that day; the collector's address answers every upload 503
// with Retry-After: 86400, as the collector of cmd/amosd's BenchmarkBudgetIdleRSS does,
// so amosd keeps its queue and sleeps until tomorrow. The power manager owns its name and
// a keyboard is plugged in, untouched: nothing happens for an hour.
const (
	idleSettle = 30 * time.Second // after the refused upload, as BenchmarkBudgetIdleRSS
	idleWindow = time.Hour
	// episodeGap: a switch-in of an amosd thread more than this after the previous one
	// starts a new wake-up episode; closer ones are the same wake-up going on (Go's
	// sysmon naps, the GC's workers, a timer's goroutine on another thread).
	episodeGap = time.Second
	tracing    = "/sys/kernel/tracing"
)

// idleFigures is the line "VMTEST IDLE {json}" for the host.
type idleFigures struct {
	Kernel  string      `json:"kernel"`
	Machine string      `json:"machine"`
	Memory  []memSample `json:"memory"` // idleSettle after the refused upload, then after the hour
	// The hour, in the guest's (virtual) time.
	WindowSeconds float64 `json:"window_s"`
	// Every time the kernel put one of amosd's threads on the CPU (sched_switch to it).
	SwitchIns int `json:"switch_ins"`
	// Distinct threads among them.
	ThreadsWoken int `json:"threads_woken"`
	// Switch-ins grouped: a new episode when more than EpisodeGapMS passed since the last.
	Episodes     int     `json:"episodes"`
	EpisodeGapMS int64   `json:"episode_gap_ms"`
	EpisodeAt    []int64 `json:"episode_at_ms"` // each episode's start, from the window's start
	// Context switches (voluntary + involuntary) of all of amosd's threads in the hour,
	// from /proc/PID/task/*/status: the counter of the host's BenchmarkBudgetIdleWakeups.
	ContextSwitches int64 `json:"context_switches"`
	// The upload requests the collector's address refused (all before the window).
	Refused int64 `json:"refused"`
	// amosd's Status after the hour: the state measured.
	Status map[string]any `json:"status"`
}

// memSample is /proc/PID/status of amosd at one moment, in KiB.
type memSample struct {
	At       string `json:"at"`
	VmRSS    int64  `json:"vm_rss_kb"`
	RssAnon  int64  `json:"rss_anon_kb"`
	RssFile  int64  `json:"rss_file_kb"`
	RssShmem int64  `json:"rss_shmem_kb"` // the binary's pages: the initramfs is a tmpfs
	VmHWM    int64  `json:"vm_hwm_kb"`
	Threads  int64  `json:"threads"`
}

// idleReport is amos.mode=idle: an hour of an idle phone, then amosd's memory and
// wake-ups, and who else woke up how often.
func (g *guest) idleReport() error {
	if err := g.waitAmosd("tally: restored", time.Minute); err != nil {
		return err
	}
	if err := g.waitAmosd("next attempt in", 2*time.Minute); err != nil {
		return err
	}
	pid := g.procs[len(g.procs)-1].Process.Pid
	var fig idleFigures
	var uname unix.Utsname
	unix.Uname(&uname)
	fig.Kernel, fig.Machine = unix.ByteSliceToString(uname.Release[:]), unix.ByteSliceToString(uname.Machine[:])

	g.idle(idleSettle)
	m, err := memory(pid, "settled")
	if err != nil {
		return err
	}
	fig.Memory = append(fig.Memory, m)
	if err := startTrace(); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	before := wakeups()
	start, err := monotonic()
	if err != nil {
		return err
	}
	g.idle(idleWindow)
	end, err := monotonic()
	if err != nil {
		return err
	}
	fig.WindowSeconds = (end - start).Seconds()
	after := wakeups()
	ins, err := stopTrace()
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	if m, err = memory(pid, "after the hour"); err != nil {
		return err
	}
	fig.Memory = append(fig.Memory, m)
	fig.Refused = g.refused.Load()

	key := fmt.Sprintf("%d/amosd", pid)
	fig.ContextSwitches = after[key] - before[key]
	threads := map[int]bool{}
	var ep []switchIn // the episode going on
	endEpisode := func() {
		if len(ep) == 0 {
			return
		}
		var tids []string
		for _, in := range ep {
			tids = append(tids, strconv.Itoa(in.pid))
		}
		g.say("episode at +%.3f s: %d switch-ins over %.3f ms, threads %s", (ep[0].at - start).Seconds(), len(ep),
			float64(ep[len(ep)-1].at-ep[0].at)/1e6, strings.Join(tids, " "))
		ep = ep[:0]
	}
	for _, in := range ins {
		if in.at < start || in.at > end {
			continue // the trace runs a little longer than the window, on both sides
		}
		fig.SwitchIns++
		threads[in.pid] = true
		if len(ep) == 0 || in.at-ep[len(ep)-1].at > episodeGap {
			endEpisode()
			fig.Episodes++
			fig.EpisodeAt = append(fig.EpisodeAt, (in.at - start).Milliseconds())
		}
		ep = append(ep, in)
	}
	endEpisode()
	fig.ThreadsWoken, fig.EpisodeGapMS = len(threads), episodeGap.Milliseconds()
	for name, n := range after {
		if n != before[name] {
			g.say("wakeups %s %d", name, n-before[name])
		}
	}

	obj := g.conn.Object("com.amos.Agent1", "/com/amos/Agent1")
	var status map[string]dbus.Variant
	if err := obj.Call("com.amos.Agent1.Status", 0).Store(&status); err != nil {
		return fmt.Errorf("calling Status: %w", err)
	}
	fig.Status = map[string]any{}
	for k, v := range status {
		fig.Status[k] = v.Value()
	}
	for _, name := range []string{"amos-collector", "dbus-daemon"} {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			if comm, _ := os.ReadFile(d + "/comm"); strings.TrimSpace(string(comm)) == name {
				p, _ := strconv.Atoi(filepath.Base(d))
				if m, err := memory(p, name); err == nil {
					g.say("memory %s VmRSS %d kB, RssAnon %d kB, RssFile %d kB, RssShmem %d kB", name, m.VmRSS, m.RssAnon, m.RssFile, m.RssShmem)
				}
			}
		}
	}
	b, _ := json.Marshal(fig)
	fmt.Fprintf(g.out, "VMTEST IDLE %s\n", b)
	return nil
}

// refuseUploads serves the collector's address as a collector in an outage: every
// request is answered 503 with Retry-After: 86400 and the connection closed.
func (g *guest) refuseUploads() error {
	cert, err := tls.LoadX509KeyPair("/data/collector/server.pem", "/data/collector/server.key")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:8443")
	if err != nil {
		return err
	}
	srv := &http.Server{
		ReadHeaderTimeout: time.Minute,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
			g.refused.Add(1)
			w.Header().Set("Retry-After", "86400")
			w.Header().Set("Connection", "close")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"down for maintenance"}`)
		}),
	}
	srv.SetKeepAlivesEnabled(false)
	go srv.ServeTLS(ln, "", "")
	g.say("the collector's address refuses uploads: 503, Retry-After: 86400")
	return nil
}

// memory reads the memory lines of /proc/PID/status.
func memory(pid int, at string) (memSample, error) {
	m := memSample{At: at}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"VmRSS:": &m.VmRSS, "RssAnon:": &m.RssAnon, "RssFile:": &m.RssFile,
		"RssShmem:": &m.RssShmem, "VmHWM:": &m.VmHWM, "Threads:": &m.Threads}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && fields[f[0]] != nil {
			*fields[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
			delete(fields, f[0])
		}
	}
	if len(fields) > 0 {
		return m, fmt.Errorf("/proc/%d/status lacks %d of its memory lines", pid, len(fields))
	}
	return m, nil
}

// switchIn is one sched_switch to a thread of amosd.
type switchIn struct {
	at  time.Duration // CLOCK_MONOTONIC (the trace's clock "mono")
	pid int           // the thread
}

// startTrace records, in the kernel's trace buffer, every sched_switch that puts a thread
// named amosd (every Go thread of it) on the CPU: each is a wake-up of one of its threads,
// with its time, and the recording itself wakes nothing.
func startTrace() error {
	if err := unix.Mount("tracefs", tracing, "tracefs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount tracefs on %s: %w", tracing, err)
	}
	for _, w := range []struct{ file, value string }{
		{"tracing_on", "0"}, {"trace", ""}, {"buffer_size_kb", "4096"}, {"trace_clock", "mono"},
		{"events/sched/sched_switch/filter", `next_comm == "amosd"`},
		{"events/sched/sched_switch/enable", "1"}, {"tracing_on", "1"},
	} {
		if err := os.WriteFile(filepath.Join(tracing, w.file), []byte(w.value+"\n"), 0); err != nil {
			return err
		}
	}
	return nil
}

// monotonic reads CLOCK_MONOTONIC, the clock of the trace.
func monotonic() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// stopTrace stops the recording and returns the switch-ins, in time order.
func stopTrace() ([]switchIn, error) {
	if err := os.WriteFile(filepath.Join(tracing, "tracing_on"), []byte("0\n"), 0); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(tracing, "trace"))
	if err != nil {
		return nil, err
	}
	var out []switchIn
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "LOST") {
			return nil, fmt.Errorf("the trace lost events: %s", line)
		}
		if e, ok := strings.CutPrefix(line, "# entries-in-buffer/entries-written: "); ok {
			if in, written, _ := strings.Cut(strings.Fields(e)[0], "/"); in != written {
				return nil, fmt.Errorf("the trace buffer kept %s of %s events", in, written)
			}
		}
		before, ev, ok := strings.Cut(line, ": sched_switch: ")
		if !ok {
			continue
		}
		f := strings.Fields(before)
		ts, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("trace line %q: %v", line, err)
		}
		_, next, _ := strings.Cut(ev, " ==> ")
		pid := -1
		for _, kv := range strings.Fields(next) {
			if v, ok := strings.CutPrefix(kv, "next_pid="); ok {
				pid, _ = strconv.Atoi(v)
			}
		}
		out = append(out, switchIn{at: time.Duration(ts * 1e9), pid: pid})
	}
	return out, nil
}
