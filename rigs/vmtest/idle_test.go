package vmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/internal/benchline"
	"amos.example/amosd/proof"
)

// idleFigures is the guest's line "VMTEST IDLE {json}" (rigs/vmtest/guest/idle.go).
type idleFigures struct {
	Kernel  string `json:"kernel"`
	Machine string `json:"machine"`
	Memory  []struct {
		At       string `json:"at"`
		VmRSS    int64  `json:"vm_rss_kb"`
		RssAnon  int64  `json:"rss_anon_kb"`
		RssFile  int64  `json:"rss_file_kb"`
		RssShmem int64  `json:"rss_shmem_kb"`
		VmHWM    int64  `json:"vm_hwm_kb"`
		Threads  int64  `json:"threads"`
	} `json:"memory"`
	WindowSeconds   float64        `json:"window_s"`
	SwitchIns       int            `json:"switch_ins"`
	ThreadsWoken    int            `json:"threads_woken"`
	Episodes        int            `json:"episodes"`
	EpisodeGapMS    int64          `json:"episode_gap_ms"`
	EpisodeAt       []int64        `json:"episode_at_ms"`
	ContextSwitches int64          `json:"context_switches"`
	Refused         int64          `json:"refused"`
	Status          map[string]any `json:"status"`
}

// idleBudgets boots the image with amos.mode=idle on a disk holding the state of
// README.md's idle budgets (FullDay: a full day of tally and 1,000 queued records), the
// clock at noon of that day, and QEMU's -icount sleep=off, under which virtual time
// jumps to the next timer whenever the CPU idles: the phone's idle hour passes in
// seconds. The guest answers amosd's upload 503 Retry-After: 86400, as the collector of
// BenchmarkBudgetIdleRSS does, and reports amosd's memory 30 s after that answer and
// after the hour, and its wake-ups in the hour (episodes of its threads' switch-ins in
// the kernel's trace). The figures go to out/vm/<arch>/idle.json for `make bench`; the
// test fails if amosd is over 8 MiB resident or 3 MiB anonymous at either moment.
func idleBudgets(t *testing.T, ctx context.Context, arch Arch, im *image) {
	zone := time.FixedZone("amos", offsetMinutes*60)
	// Noon of tomorrow in the reporting zone: after the host's clock, which the guest
	// would otherwise take, and twelve hours from either midnight.
	d := time.Now().In(zone).AddDate(0, 0, 1)
	noon := time.Date(d.Year(), d.Month(), d.Day(), 12, 0, 0, 0, zone)
	day := FullDay{Today: proof.DateOf(noon, offsetMinutes), OffsetMinutes: offsetMinutes, SavedAt: noon.Add(-time.Minute), UptimeMS: 3_600_000}
	// The 1,000 records and their genesis (with the key's chain) are signed in the
	// factory's keystore, by the key the handset's amosd signs with.
	disk := buildDisk(t, ctx, t.TempDir(), noon, func(stage string, key *keystore.Signer) error {
		day.Signer, day.Chain = key, key.Chain()
		return day.Write(filepath.Join(stage, "amos"), filepath.Join(stage, "persist"))
	})
	b := boot(t, ctx, arch, im.kernel, im.initramfs, disk.Path, "idle", filepath.Join(im.logs, "idle.log"), "-icount", "shift=0,sleep=off")
	b.waitLine(t, "VMTEST IDLE ", 15*time.Minute)
	b.waitExit(t, 2*time.Minute)
	var fig idleFigures
	for _, l := range b.snapshot() {
		if j, ok := strings.CutPrefix(l, "VMTEST IDLE "); ok {
			if err := json.Unmarshal([]byte(j), &fig); err != nil {
				t.Fatalf("VMTEST IDLE: %v\n%s", err, j)
			}
		}
	}
	if len(fig.Memory) == 0 {
		t.Fatalf("no memory figures:\n%s", b.tail(40))
	}

	// The state measured must be the budget's.
	num := func(k string) float64 {
		v, _ := fig.Status[k].(float64)
		return v
	}
	if q := num("queued"); q != 1000 {
		t.Errorf("amosd held %v queued records, want 1,000", q)
	}
	if d := num("today_date"); d != float64(day.Today) || num("today_interactive_seconds") < 6*3600 {
		t.Errorf("amosd's tally is of %v with %v s, want %s with a full day (6 h)", d, num("today_interactive_seconds"), day.Today)
	}
	if fig.Refused < 1 {
		t.Error("amosd made no upload attempt")
	}
	if fig.WindowSeconds < 3590 {
		t.Errorf("the idle window was %.0f s, want an hour", fig.WindowSeconds)
	}

	h := &benchline.HandsetIdle{
		Arch: arch.Name, Kernel: fig.Kernel + " " + fig.Machine, GeneratedAt: time.Now().UTC().Format(time.RFC3339),
		Command: fmt.Sprintf("make vm-test (rigs/vmtest TestPowerCuts/%s/idle: %s %s, -icount shift=0,sleep=off)", arch.Name, arch.QEMU, strings.Join(arch.Machine, " ")),
		Commit:  gitDescribe(t),
		State: fmt.Sprintf("amosd run with a full day of tally (%s, 6 h) and %v records queued, its upload answered 503 Retry-After: 86400 (%d request(s)); power manager on the bus, a keyboard plugged in, no input; key.backend keystore (amos-keystored, the development keystore, on the bus); %v",
			day.Today, fig.Status["queued"], fig.Refused, fig.Status["sources"]),
		WindowSeconds: fig.WindowSeconds, Episodes: fig.Episodes, EpisodeGapMS: fig.EpisodeGapMS, SwitchIns: fig.SwitchIns,
		ThreadsWoken: fig.ThreadsWoken, ContextSwitches: fig.ContextSwitches, EpisodeAtMS: fig.EpisodeAt,
	}
	for _, m := range fig.Memory {
		h.Memory = append(h.Memory, benchline.HandsetMemory{At: m.At, Total: m.VmRSS << 10, Anon: m.RssAnon << 10,
			File: (m.RssFile + m.RssShmem) << 10, RssFile: m.RssFile << 10, RssShmem: m.RssShmem << 10, Peak: m.VmHWM << 10, Threads: m.Threads})
		t.Logf("FIGURES %s idle RSS %s: total %.2f MiB = anonymous %.2f + file %.2f (RssFile %d KiB, RssShmem %d KiB: the binary in the initramfs); peak %.2f MiB; %d threads",
			arch.Name, m.At, mib(m.VmRSS<<10), mib(m.RssAnon<<10), mib((m.RssFile+m.RssShmem)<<10), m.RssFile, m.RssShmem, mib(m.VmHWM<<10), m.Threads)
	}
	t.Logf("FIGURES %s idle wake-ups: %d episodes in %.0f s (%.1f an hour; a switch-in more than %d ms after the last starts one), %d switch-ins of %d threads, %d context switches",
		arch.Name, fig.Episodes, fig.WindowSeconds, h.EpisodesPerHour(), fig.EpisodeGapMS, fig.SwitchIns, fig.ThreadsWoken, fig.ContextSwitches)
	path := benchline.HandsetIdlePath(repoRoot(t), arch.Name)
	if err := benchline.WriteHandsetIdle(path, h); err != nil {
		t.Fatal(err)
	}
	t.Logf("written to %s", path)
	for _, m := range h.Memory {
		if m.Total > benchline.HandsetRSSLimit {
			t.Errorf("%s: amosd resident %.2f MiB %s, over the 8 MiB budget", arch.Name, mib(m.Total), m.At)
		}
		if m.Anon > benchline.HandsetAnonLimit {
			t.Errorf("%s: amosd anonymous %.2f MiB %s, over the 3 MiB budget", arch.Name, mib(m.Anon), m.At)
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// gitDescribe names the tree measured, "" outside a git work tree.
func gitDescribe(t *testing.T) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
