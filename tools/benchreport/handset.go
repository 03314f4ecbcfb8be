package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"amos.example/amosd/internal/benchline"
)

// handsetIdle returns the rows of the idle budgets as the phones see them, read from
// the files `make vm-test` writes (out/vm/<arch>/idle.json under root): the memory of
// each architecture, and the wake-ups of both. A missing file is shown as not measured,
// and not judged: this program does not boot the firmware.
func handsetIdle(root string) []Budget {
	var out []Budget
	wake := Budget{ID: "idle_wakeups_handsets",
		Spec:   "wake-ups while idle on the phones (the firmware under QEMU, a day of tally and 1,000 queued, upload refused for a day): at most 1 a minute on average over an hour, counted as wake-up episodes",
		Budget: "<= 60 episodes/h",
		Source: "rigs/vmtest TestPowerCuts/<arch>/idle (`make vm-test`): every sched_switch to a thread of amosd in the kernel's trace for an hour; a switch-in more than 1 s after the previous one starts an episode"}
	var wakeParts []string
	measured := 0
	for _, arch := range benchline.HandsetArches {
		path := benchline.HandsetIdlePath(root, arch)
		b := Budget{ID: "idle_rss_" + arch,
			Spec:   fmt.Sprintf("resident memory of the idle daemon on the %s phone (the firmware under QEMU, a day of tally and 1,000 queued): at most 8 MiB, of which at most 3 MiB anonymous", arch),
			Budget: "<= 8 MiB (anon <= 3)"}
		h, err := benchline.ReadHandsetIdle(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			b.Info, b.Pass = true, true
			b.Measured = "not measured here: `make vm-test` measures it"
			b.Source = path + ": none yet (`make vm-test` writes it)"
			out = append(out, b)
			continue
		case err != nil:
			b.Source = path
			b.finish(err)
			out = append(out, b)
			continue
		}
		measured++
		w, anon := h.Worst()
		b.Figures = []Figure{
			{Name: "idle_rss_" + arch, Value: float64(w.Total), Unit: "bytes", Limit: &Limit{"<=", benchline.HandsetRSSLimit, "bytes"},
				Note: fmt.Sprintf("VmRSS of amosd %s, the largest sample; %s", w.At, h.State)},
			{Name: "idle_rss_anon_" + arch, Value: float64(anon), Unit: "bytes", Limit: &Limit{"<=", benchline.HandsetAnonLimit, "bytes"},
				Note: "RssAnon (heap, stacks, the runtime's own), the largest sample"},
			{Name: "idle_rss_file_" + arch, Value: float64(w.File), Unit: "bytes",
				Note: fmt.Sprintf("RssFile + RssShmem: the binary's pages (%.2f MiB, in the initramfs's tmpfs) and the store's mmap (%.2f MiB)", float64(w.RssShmem)/MiB, float64(w.RssFile)/MiB)},
		}
		b.Measured = fmt.Sprintf("%s (anon %.2f, file %.2f)", mib(float64(w.Total)), float64(w.Anon)/MiB, float64(w.File)/MiB)
		b.Source = fmt.Sprintf("%s: %s, at %s", path, h.Command, h.GeneratedAt)
		if h.Commit != "" {
			b.Source += " of " + h.Commit
		}
		b.finish(nil)
		out = append(out, b)

		perHour := h.EpisodesPerHour()
		wake.Figures = append(wake.Figures,
			Figure{Name: "idle_wake_episodes_" + arch, Value: perHour, Unit: "episodes/h", Limit: &Limit{"<=", 60, "episodes/h"},
				Note: fmt.Sprintf("%d episodes in %.0f s (%s): %d switch-ins of %d threads of amosd, %d context switches", h.Episodes, h.WindowSeconds, h.Kernel, h.SwitchIns, h.ThreadsWoken, h.ContextSwitches)})
		wakeParts = append(wakeParts, fmt.Sprintf("%s %.0f", arch, perHour))
	}
	if measured == 0 {
		wake.Info, wake.Pass = true, true
		wake.Measured = "not measured here: `make vm-test` measures it"
	} else {
		wake.Measured = strings.Join(wakeParts, ", ") + " episodes/h"
		wake.finish(nil)
	}
	return append(out, wake)
}
