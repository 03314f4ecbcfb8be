package main

import (
	"bytes"
	"strings"
	"testing"

	"amos.example/amosd/internal/benchline"
)

func TestHandsetIdleRows(t *testing.T) {
	root := t.TempDir()
	rows := handsetIdle(root)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	for _, b := range rows {
		if !b.Info || !b.Pass || b.Error != "" || !strings.Contains(b.Measured, "make vm-test") {
			t.Errorf("without the files, %s: %+v, want shown as not measured, not judged", b.ID, b)
		}
	}

	write := func(arch string, total, anon int64, episodes int) {
		h := &benchline.HandsetIdle{Arch: arch, Kernel: "6.1", Command: "make vm-test", GeneratedAt: "2027-01-01T00:00:00Z",
			Memory: []benchline.HandsetMemory{
				{At: "settled", Total: total - 4096, Anon: anon, File: total - 4096 - anon},
				{At: "after the hour", Total: total, Anon: anon - 4096, File: total - anon + 4096},
			},
			WindowSeconds: 3600, Episodes: episodes, EpisodeGapMS: 1000}
		if err := benchline.WriteHandsetIdle(benchline.HandsetIdlePath(root, arch), h); err != nil {
			t.Fatal(err)
		}
	}
	write("arm64", 7<<20, 2<<20, 60)
	rows = handsetIdle(root)
	byID := map[string]Budget{}
	for _, b := range rows {
		byID[b.ID] = b
	}
	if b := byID["idle_rss_arm64"]; b.Info || !b.Pass || b.Measured != "7.00 MiB (anon 2.00, file 5.00)" {
		t.Errorf("arm64 row: %+v", b)
	}
	if b := byID["idle_rss_armv7"]; !b.Info {
		t.Errorf("armv7 row without its file: %+v", b)
	}
	if b := byID["idle_wakeups_handsets"]; b.Info || !b.Pass || b.Measured != "arm64 60 episodes/h" {
		t.Errorf("wake-up row: %+v", b)
	}

	// Over: the largest total of any sample, the largest anonymous of any sample.
	write("armv7", 8<<20+1<<20, 3<<20+4096, 61)
	rows = handsetIdle(root)
	for _, b := range rows {
		byID[b.ID] = b
	}
	b := byID["idle_rss_armv7"]
	if b.Pass || b.Figures[0].Value != 9<<20 || b.Figures[1].Value != 3<<20+4096 || *b.Figures[0].Pass || *b.Figures[1].Pass {
		t.Errorf("armv7 over budget: %+v", b)
	}
	if b := byID["idle_wakeups_handsets"]; b.Pass || b.Measured != "arm64 60, armv7 61 episodes/h" {
		t.Errorf("wake-up row, armv7 over: %+v", b)
	}

	var out bytes.Buffer
	printTable(&out, &Report{Budgets: rows})
	if !strings.Contains(out.String(), "out/vm/armv7/idle.json: make vm-test, at 2027-01-01T00:00:00Z") {
		t.Errorf("the table does not say where the figures come from:\n%s", out.String())
	}
}
