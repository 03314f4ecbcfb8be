package benchline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The idle budgets as the phone sees them: `make vm-test` (rigs/vmtest) boots the
// firmware image under full-system QEMU for each handset architecture, lets amosd lie
// idle for an hour, and writes what it measured to HandsetIdlePath; tools/benchreport
// shows those figures beside its own. Like the BENCH lines, the file only says what was
// measured (and under which limits the VM test held it); the report judges.

// HandsetArches are the architectures of the handsets, as rigs/vmtest names them.
var HandsetArches = []string{"arm64", "armv7"}

// HandsetIdlePath is where `make vm-test` writes the idle figures of arch, under the
// repository's root.
func HandsetIdlePath(root, arch string) string {
	return filepath.Join(root, "out", "vm", arch, "idle.json")
}

// Memory limits of README.md's budget table, on a handset.
const (
	HandsetRSSLimit  = 8 << 20 // VmRSS
	HandsetAnonLimit = 3 << 20 // RssAnon
)

// HandsetIdle is the file of one architecture.
type HandsetIdle struct {
	Arch        string `json:"arch"`    // "arm64", "armv7"
	Kernel      string `json:"kernel"`  // the guest's uname -r and -m
	Command     string `json:"command"` // what measured it
	GeneratedAt string `json:"generated_at"`
	Commit      string `json:"commit,omitempty"` // git describe of the tree measured
	State       string `json:"state"`            // what amosd held and did

	// Memory: amosd's /proc/PID/status at each moment measured.
	Memory []HandsetMemory `json:"memory"`

	// Wake-ups in the idle window (the guest's time).
	WindowSeconds   float64 `json:"window_s"`
	Episodes        int     `json:"episodes"`         // wake-up episodes (see EpisodeGapMS)
	EpisodeGapMS    int64   `json:"episode_gap_ms"`   // a switch-in this long after the last starts an episode
	SwitchIns       int     `json:"switch_ins"`       // sched_switch to a thread of amosd
	ThreadsWoken    int     `json:"threads_woken"`    // distinct threads among them
	ContextSwitches int64   `json:"context_switches"` // /proc/PID/task/*/status, voluntary + involuntary
	EpisodeAtMS     []int64 `json:"episode_at_ms"`    // each episode's start, from the window's start
}

// HandsetMemory is amosd's memory at one moment, in bytes.
type HandsetMemory struct {
	At       string `json:"at"`
	Total    int64  `json:"total_bytes"`     // VmRSS
	Anon     int64  `json:"anon_bytes"`      // RssAnon: heap, stacks, the runtime's own
	File     int64  `json:"file_bytes"`      // RssFile + RssShmem: pages of files
	RssFile  int64  `json:"rss_file_bytes"`  // of which on a file system (the store's mmap)
	RssShmem int64  `json:"rss_shmem_bytes"` // of which in tmpfs: the binary, as the image's initramfs holds it
	Peak     int64  `json:"peak_bytes"`      // VmHWM
	Threads  int64  `json:"threads"`
}

// EpisodesPerHour is the wake-up episodes scaled to an hour.
func (h *HandsetIdle) EpisodesPerHour() float64 {
	if h.WindowSeconds <= 0 {
		return 0
	}
	return float64(h.Episodes) * 3600 / h.WindowSeconds
}

// Worst returns the sample with the largest total, and the largest anonymous memory of
// any sample: the limits hold at every moment measured or not at all.
func (h *HandsetIdle) Worst() (HandsetMemory, int64) {
	var w HandsetMemory
	var anon int64
	for i, m := range h.Memory {
		if i == 0 || m.Total > w.Total {
			w = m
		}
		anon = max(anon, m.Anon)
	}
	return w, anon
}

// WriteHandsetIdle writes h to path.
func WriteHandsetIdle(path string, h *HandsetIdle) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadHandsetIdle reads the file at path; an error wrapping fs.ErrNotExist if there
// is none.
func ReadHandsetIdle(path string) (*HandsetIdle, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var h HandsetIdle
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(h.Memory) == 0 || h.WindowSeconds <= 0 {
		return nil, fmt.Errorf("%s: no memory sample or no idle window", path)
	}
	return &h, nil
}
