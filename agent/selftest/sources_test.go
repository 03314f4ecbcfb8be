package selftest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/sources"
)

// TestSourceChecks: a listed source that is absent is a warning while another listed
// source is available, and every absent one fails, naming the listed sources and its
// fix, when none is.
func TestSourceChecks(t *testing.T) {
	dir := t.TempDir()
	// An input device stand-in: a FIFO, which a blocking open would wait on for ever.
	if err := syscall.Mkfifo(filepath.Join(dir, "event0"), 0o600); err != nil {
		t.Fatal(err)
	}
	devices, none := filepath.Join(dir, "event*"), filepath.Join(dir, "nothing*")
	type want struct {
		name       string
		ok, warn   bool
		detail     []string // fragments
		fixPrefix  string   // "" for no fix
		fixMention string
	}
	power := func(ok, warn bool, detail ...string) want {
		w := want{name: "source amos-power", ok: ok, warn: warn, detail: detail}
		if len(detail) > 0 && strings.HasPrefix(detail[0], "nobody owns") {
			w.fixPrefix, w.fixMention = "start the platform's power manager", `remove "amos-power" from sources`
		}
		return w
	}
	logind := func(ok, warn bool, detail ...string) want {
		w := want{name: "source logind", ok: ok, warn: warn, detail: detail}
		if len(detail) > 0 && strings.HasPrefix(detail[0], "nobody owns") {
			w.fixPrefix, w.fixMention = `remove "logind" from sources`, "an Android handset has none"
		}
		return w
	}
	tests := []struct {
		name    string
		sources []string
		owned   []string // the names that have an owner
		glob    string
		want    []want
	}{
		{name: "Android handset: all there", sources: []string{"amos-power", "evdev"}, owned: []string{sources.PowerManagerName}, glob: devices,
			want: []want{power(true, false, "com.amos.PowerManager owned by :1.7"),
				{name: "source evdev", ok: true, detail: []string{"1 of 1 devices matching " + devices + " readable"}}}},
		{name: "logind listed on a handset: a warning", sources: []string{"amos-power", "logind", "evdev"}, owned: []string{sources.PowerManagerName}, glob: devices,
			want: []want{power(true, false),
				logind(true, true, "nobody owns org.freedesktop.login1 on the bus", "this source stays unavailable; amosd counts with amos-power, evdev"),
				{name: "source evdev", ok: true}}},
		{name: "only evdev available", sources: []string{"amos-power", "logind", "evdev"}, glob: devices,
			want: []want{power(true, true, "nobody owns com.amos.PowerManager on the bus", "amosd counts with evdev"),
				logind(true, true, "nobody owns org.freedesktop.login1", "amosd counts with evdev"),
				{name: "source evdev", ok: true}}},
		{name: "no input device, the power manager there", sources: []string{"amos-power", "evdev"}, owned: []string{sources.PowerManagerName}, glob: none,
			want: []want{power(true, false),
				{name: "source evdev", ok: true, warn: true, detail: []string{"0 devices match " + none, "amosd counts with amos-power"},
					fixPrefix: "check evdev_glob", fixMention: `remove "evdev" from sources`}}},
		{name: "none available: each fails", sources: []string{"amos-power", "logind", "evdev"}, glob: none,
			want: []want{power(false, false, "nobody owns com.amos.PowerManager on the bus", "none of the listed sources (amos-power, logind, evdev) is available"),
				logind(false, false, "nobody owns org.freedesktop.login1", "none of the listed sources (amos-power, logind, evdev) is available"),
				{name: "source evdev", detail: []string{"0 devices match", "none of the listed sources (amos-power, logind, evdev) is available, so amosd counts only ReportActivity calls"},
					fixPrefix: "check evdev_glob"}}},
		{name: "one listed, absent: fails", sources: []string{"logind"},
			want: []want{logind(false, false, "nobody owns org.freedesktop.login1", "none of the listed sources (logind) is available")}},
		{name: "devices there but unreadable", sources: []string{"evdev"}, glob: filepath.Join(dir, "nodev", "event*"),
			want: []want{{name: "source evdev", detail: []string{"1 devices match", "0 readable", "none of the listed sources (evdev)"},
				fixPrefix: "let amosd read the input devices"}}},
		{name: "none listed: no check", sources: []string{}},
	}
	// A device that matches but cannot be opened, even by root: a dangling link.
	if err := os.Mkdir(filepath.Join(dir, "nodev"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "nodev", "event0")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Sources, cfg.EvdevGlob = tt.sources, tt.glob
			owner := func(name string) string {
				for _, o := range tt.owned {
					if o == name {
						return ":1.7"
					}
				}
				return ""
			}
			got := checkSources(probeSources(&cfg, owner))
			if len(got) != len(tt.want) {
				t.Fatalf("%d checks, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Name != w.name || g.OK != w.ok || g.Warn != w.warn {
					t.Errorf("check %d: %q ok %v warn %v, want %q ok %v warn %v (%s)", i, g.Name, g.OK, g.Warn, w.name, w.ok, w.warn, g.Detail)
				}
				for _, d := range w.detail {
					if !strings.Contains(g.Detail, d) {
						t.Errorf("%s: detail %q lacks %q", g.Name, g.Detail, d)
					}
				}
				switch {
				case w.fixPrefix == "" && g.Fix != "":
					t.Errorf("%s: fix %q, want none", g.Name, g.Fix)
				case !strings.HasPrefix(g.Fix, w.fixPrefix) || !strings.Contains(g.Fix, w.fixMention):
					t.Errorf("%s: fix %q, want %q… %q", g.Name, g.Fix, w.fixPrefix, w.fixMention)
				}
			}
		})
	}
}
