// Package androidbuild holds only tests: they check that the files an OEM drops into
// an AOSP tree (Android.bp, amosd.rc, amosd.json, sepolicy/) agree with each other,
// with docs/config.md's configuration and with the Makefile that fills prebuilt/.
package androidbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/agent/config"
)

// docs/config.md gives these values in its sample; the rest are the defaults.
const (
	specServerURL = "https://records.amos.example"
	specCAFile    = "/system/etc/security/amos-ca.pem"
)

// specSources are the handset's sources: the defaults but logind, which no Android
// handset has (listed, it would stay absent and amosd selftest would warn on every one).
var specSources = []string{config.SourceAmosPower, config.SourceEvdev}

// read returns the content of a file of this directory.
func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The files of this directory that Soong does not install: they are the build's own,
// documentation, tests, or built by the sepolicy build (*_SEPOLICY_DIRS).
func notInstalled(name string) bool {
	return name == "Android.bp" || name == "README.md" || name == "oem-check.sh" || name == ".gitignore" ||
		strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, "sepolicy/")
}

// generatedFiles returns the files that .gitignore lists: `make android-prebuilt`
// writes them.
func generatedFiles(gitignore string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(gitignore, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "/") {
			out[strings.TrimPrefix(l, "/")] = true
		}
	}
	return out
}

// presentFiles returns the regular files under dir, relative, with / separators.
func presentFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// installPath returns where Soong installs a module of this directory on /system.
func installPath(m bpModule) string {
	switch m.typ {
	case "cc_prebuilt_binary":
		return "/system/bin/" + m.props.str("name")
	case "prebuilt_etc":
		name := m.props.str("filename")
		if name == "" {
			name = path.Base(m.props.str("src"))
		}
		return path.Join("/system/etc", m.props.str("sub_dir"), name)
	}
	return ""
}

// checkAndroidBp checks Android.bp: it parses and balances, defines amosd for arm and
// arm64 with its rc file and the etc files it requires, installs them where amosd
// looks for them (cfg), and names exactly the files of this directory that are
// installed: each present or made by `make android-prebuilt` (generated).
func checkAndroidBp(src string, present, generated map[string]bool, cfg *config.Config) []error {
	mods, err := parseBlueprint(src)
	if err != nil {
		return []error{fmt.Errorf("Android.bp: %w", err)}
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("Android.bp: "+format, args...)) }
	byName := map[string]bpModule{}
	installs := map[string]string{} // install path → module
	referenced := map[string]bool{}
	for _, m := range mods {
		name := m.props.str("name")
		switch {
		case m.typ != "cc_prebuilt_binary" && m.typ != "prebuilt_etc":
			bad("line %d: module type %s: want cc_prebuilt_binary or prebuilt_etc", m.line, m.typ)
		case name == "":
			bad("line %d: %s without a name", m.line, m.typ)
		case byName[name].typ != "":
			bad("line %d: module %s defined twice", m.line, name)
		}
		byName[name] = m
		installs[installPath(m)] = name
		var files []string
		files = append(files, m.props.strs("srcs")...)
		files = append(files, m.props.strs("init_rc")...)
		for _, arch := range []string{"arm", "arm64", "x86", "x86_64"} {
			files = append(files, m.props.strs("arch", arch, "srcs")...)
		}
		if s := m.props.str("src"); s != "" {
			files = append(files, s)
		}
		for _, f := range files {
			referenced[f] = true
			if !present[f] && !generated[f] {
				bad("module %s: %s is neither in the directory nor made by make android-prebuilt (.gitignore)", name, f)
			}
		}
	}
	if d, ok := byName["amosd"]; !ok || d.typ != "cc_prebuilt_binary" {
		bad("no cc_prebuilt_binary named amosd")
	} else {
		for arch, want := range map[string]string{"arm": "prebuilt/arm/amosd", "arm64": "prebuilt/arm64/amosd"} {
			if got := d.props.strs("arch", arch, "srcs"); !slices.Equal(got, []string{want}) {
				bad("amosd: arch.%s.srcs %q, want [%q]", arch, got, want)
			}
		}
		if got := d.props.strs("init_rc"); !slices.Equal(got, []string{"amosd.rc"}) {
			bad("amosd: init_rc %q, want [\"amosd.rc\"]", got)
		}
		if v, _ := d.props.get("check_elf_files"); v != false {
			bad("amosd: check_elf_files must be false for a static Go binary")
		}
		required := d.props.strs("required")
		for _, r := range required {
			if _, ok := byName[r]; !ok {
				bad("amosd: required module %s is not defined", r)
			}
		}
		for name, m := range byName {
			if m.typ == "prebuilt_etc" && !slices.Contains(required, name) {
				bad("amosd: required lacks %s: installing amosd would not install it", name)
			}
		}
	}
	for _, want := range []string{"/system/bin/amosd", config.DefaultPath, cfg.CAFile} {
		if installs[want] == "" {
			bad("nothing installs %s (installed: %s)", want, strings.Join(slices.Sorted(maps.Keys(installs)), ", "))
		}
	}
	for f := range present {
		if !notInstalled(f) && !referenced[f] {
			bad("%s is in the directory but no module installs it", f)
		}
	}
	for f := range generated {
		if !referenced[f] {
			bad("%s is made by make android-prebuilt but no module installs it", f)
		}
	}
	return errs
}

// configKeys returns every JSON key of config.Config, nested ones as "sync.timeout".
func configKeys(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			out = append(out, configKeys(f.Type, prefix+tag+".")...)
			continue
		}
		out = append(out, prefix+tag)
	}
	return out
}

// configDiff names each key whose value differs between got and want, as
// "key: got value (want value)".
func configDiff(got, want config.Config) []string {
	var g, w map[string]any
	for _, c := range []struct {
		cfg config.Config
		m   *map[string]any
	}{{got, &g}, {want, &w}} {
		b, _ := json.Marshal(c.cfg)
		json.Unmarshal(b, c.m)
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if !reflect.DeepEqual(g[k], w[k]) {
			out = append(out, fmt.Sprintf("%s: %v (want %v)", k, g[k], w[k]))
		}
	}
	return out
}

// fileKeys returns the keys a JSON object spells out, nested ones as "sync.timeout".
func fileKeys(m map[string]any, prefix string) []string {
	var out []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			out = append(out, fileKeys(sub, prefix+k+".")...)
			continue
		}
		out = append(out, prefix+k)
	}
	return out
}

// checkConfig checks the shipped amosd.json: it parses as amosd parses it, equals
// docs/config.md's sample (the defaults, with its server_url, ca_file and sources),
// equals the handset sample of testdata, and spells out every key.
func checkConfig(shipped, handset []byte) []error {
	cfg, err := config.Parse("amosd.json", shipped)
	if err != nil {
		return []error{err}
	}
	var errs []error
	want := config.Default()
	want.ServerURL, want.CAFile, want.Sources = specServerURL, specCAFile, specSources
	for _, d := range configDiff(*cfg, want) {
		errs = append(errs, fmt.Errorf("amosd.json: %s, want docs/config.md's", d))
	}
	h, err := config.Parse("testdata/config/amosd-handset.json", handset)
	if err != nil {
		errs = append(errs, err)
	} else {
		for _, d := range configDiff(*cfg, *h) {
			errs = append(errs, fmt.Errorf("amosd.json: %s, but testdata/config/amosd-handset.json differs", d))
		}
	}
	var m map[string]any
	if err := json.Unmarshal(shipped, &m); err != nil {
		return append(errs, fmt.Errorf("amosd.json: %w", err))
	}
	have := fileKeys(m, "")
	for _, k := range configKeys(reflect.TypeFor[config.Config](), "") {
		if !slices.Contains(have, k) {
			errs = append(errs, fmt.Errorf("amosd.json: key %s missing: the shipped file spells out every setting", k))
		}
	}
	return errs
}

// checkRC checks amosd.rc: the service runs `binPath run` in class main as a user that
// is not root, with the groups it needs, restarted by init (not oneshot) with a
// restart_period and a task profile; the directories made are exactly data_dir and
// key_dir, mode 0700, owned by the service's user, before class main starts.
func checkRC(src, binPath string, cfg *config.Config) []error {
	secs, err := parseRC(src)
	if err != nil {
		return []error{fmt.Errorf("amosd.rc: %w", err)}
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("amosd.rc: "+format, args...)) }
	var svc *rcSection
	type made struct{ mode, owner, group, trigger string }
	dirs := map[string]made{}
	for i := range secs {
		s := &secs[i]
		if s.kind == "service" {
			if svc != nil {
				bad("more than one service")
			}
			svc = s
			continue
		}
		for _, l := range s.lines {
			if l[0] != "mkdir" {
				continue
			}
			if len(l) != 5 {
				bad("%q: want mkdir PATH MODE OWNER GROUP", strings.Join(l, " "))
				continue
			}
			dirs[l[1]] = made{l[2], l[3], l[4], strings.Join(s.args, " ")}
		}
	}
	if svc == nil {
		return append(errs, errors.New("amosd.rc: no service"))
	}
	if got := strings.Join(svc.args, " "); got != "amosd "+binPath+" run" {
		bad("service %q, want \"amosd %s run\"", got, binPath)
	}
	opts := map[string][]string{}
	for _, l := range svc.lines {
		opts[l[0]] = l[1:]
	}
	user := strings.Join(opts["user"], " ")
	switch {
	case user == "":
		bad("service amosd has no user: init would run it as root")
	case user == "root":
		bad("service amosd runs as root: it needs none of root's power")
	}
	if g := opts["group"]; len(g) == 0 || g[0] != user {
		bad("group %q: want the user's group %q first", g, user)
	}
	for _, need := range []string{"input", "inet"} {
		if !slices.Contains(opts["group"], need) {
			bad("group %q lacks %s", opts["group"], need)
		}
	}
	if c := opts["class"]; !slices.Equal(c, []string{"main"}) {
		bad("class %q, want main", c)
	}
	for _, never := range []string{"oneshot", "disabled", "capabilities", "seclabel"} {
		if _, ok := opts[never]; ok {
			bad("%s: not wanted (see the comments in amosd.rc)", never)
		}
	}
	for _, need := range []string{"restart_period", "task_profiles"} {
		if _, ok := opts[need]; !ok {
			bad("no %s", need)
		}
	}
	if len(opts["restart_period"]) == 1 {
		if d, err := time.ParseDuration(opts["restart_period"][0] + "s"); err != nil || d < 5*time.Second {
			bad("restart_period %q: want seconds, at least init's default 5", opts["restart_period"][0])
		}
	}
	wantDirs := []string{cfg.DataDir, cfg.KeyDir}
	def := config.Default()
	if !slices.Equal(wantDirs, []string{def.DataDir, def.KeyDir}) {
		bad("amosd.json's data_dir and key_dir %q are not the configuration's defaults %q", wantDirs, []string{def.DataDir, def.KeyDir})
	}
	var got []string
	for d := range dirs {
		got = append(got, d)
	}
	sort.Strings(got)
	sort.Strings(wantDirs)
	if !slices.Equal(got, wantDirs) {
		bad("mkdir of %q, want exactly data_dir and key_dir %q", got, wantDirs)
	}
	for d, m := range dirs {
		if m.mode != "0700" {
			bad("mkdir %s mode %s, want 0700", d, m.mode)
		}
		if m.owner != user || m.group != user {
			bad("mkdir %s owned by %s:%s, want the service's user %s", d, m.owner, m.group, user)
		}
		if m.trigger != "post-fs-data" {
			bad("mkdir %s on %q: want post-fs-data, before class main can start amosd", d, m.trigger)
		}
	}
	return errs
}

// checkFileContexts checks that file_contexts labels amosd's binary, data_dir and
// key_dir and everything in them with amosd's types, and nothing else, and that every
// type it uses is declared in amosd.te.
func checkFileContexts(fcSrc, teSrc, binPath string, cfg *config.Config) []error {
	fc, err := parseFileContexts(fcSrc)
	if err != nil {
		return []error{fmt.Errorf("file_contexts: %w", err)}
	}
	te, err := parseTE(teSrc)
	if err != nil {
		return []error{fmt.Errorf("amosd.te: %w", err)}
	}
	var errs []error
	cases := []struct{ path, want string }{
		{binPath, "amosd_exec"},
		{cfg.DataDir, "amosd_data_file"},
		{cfg.DataDir + "/amosd.db", "amosd_data_file"},
		{cfg.DataDir + "/amosd.db.corrupt-1790000000", "amosd_data_file"},
		{cfg.KeyDir, "amosd_persist_file"},
		{cfg.KeyDir + "/device.key", "amosd_persist_file"},
		{cfg.KeyDir + "/device.cert", "amosd_persist_file"},
		{"/mnt/vendor/persist/amos/epoch", "amosd_persist_file"},
		{"/data/amos", "amosd_data_file"},
		{"/persist/amos", "amosd_persist_file"},
		{"/system/bin/amosd", "amosd_exec"},
		// Not amosd's.
		{"/data", ""}, {"/data/amosx", ""}, {"/data/amos.bak", ""}, {"/data/am", ""},
		{"/persist", ""}, {"/persist/amosd", ""}, {"/system/bin/amosd2", ""}, {"/system/bin/amosd.old", ""},
		{"/system/bin", ""}, {"/data/local/tmp/amosd", ""}, {"/system/etc/amosd.json", ""},
	}
	for _, c := range cases {
		if got := label(fc, c.path); got != c.want {
			if c.want == "" {
				errs = append(errs, fmt.Errorf("file_contexts labels %s %s: it must not label it", c.path, got))
			} else {
				errs = append(errs, fmt.Errorf("file_contexts labels %s %q, want %s", c.path, got, c.want))
			}
		}
	}
	declared := teDeclared(te)
	for _, e := range fc {
		if _, ok := declared[e.typ]; !ok {
			errs = append(errs, fmt.Errorf("file_contexts: type %s (of %s) is not declared in amosd.te", e.typ, e.regex))
		}
	}
	return errs
}

// teDeclared returns the types amosd.te declares, with their attributes.
func teDeclared(te []teStmt) map[string][]string {
	out := map[string][]string{}
	for _, s := range te {
		if len(s.words) >= 3 && s.words[0] == "type" {
			var attrs []string
			for _, w := range s.words[2:] {
				if w != "," && w != ";" {
					attrs = append(attrs, w)
				}
			}
			out[s.words[1]] = attrs
		}
	}
	return out
}

// externalTypes are the types of others that amosd.te may name, and why.
var externalTypes = map[string]string{
	"self":            "amosd's own sockets",
	"system_file":     "/system/etc/amosd.json and the CA",
	"proc_random":     "/proc/sys/kernel/random/boot_id",
	"input_device":    "/dev/input",
	"mnt_vendor_file": "the /persist mount point",
}

// teMacros are the AOSP te_macros amosd.te may use, with the arguments other than
// amosd that each may take.
var teMacros = map[string][][]string{
	"init_daemon_domain":  {{}},
	"net_domain":          {{}},
	"write_logd":          {{}},
	"unix_socket_connect": {{"dnsproxyd", "netd"}, {"amos_dbus", "amos_dbus"}},
	"r_dir_file":          {{"system_file"}, {"proc_random"}},
}

// checkTE checks amosd.te: amosd is its own core domain entered from init, a network
// domain that writes to logd and resolves through dnsproxyd; every rule is amosd's,
// names only amosd's own types or the few external ones listed here, and has no
// wildcard, complement or exception; nothing is permissive.
func checkTE(src string) []error {
	te, err := parseTE(src)
	if err != nil {
		return []error{fmt.Errorf("amosd.te: %w", err)}
	}
	var errs []error
	bad := func(s teStmt, format string, args ...any) {
		errs = append(errs, fmt.Errorf("amosd.te line %d: %s: "+format, append([]any{s.line, s.text}, args...)...))
	}
	declared := teDeclared(te)
	wantTypes := map[string][]string{
		"amosd":              {"domain", "coredomain"},
		"amosd_exec":         {"system_file_type", "exec_type", "file_type"},
		"amosd_data_file":    {"file_type", "data_file_type", "core_data_file_type"},
		"amosd_persist_file": {"file_type"},
	}
	for typ, attrs := range wantTypes {
		if got, ok := declared[typ]; !ok || !slices.Equal(got, attrs) {
			errs = append(errs, fmt.Errorf("amosd.te: type %s %q, want declared with %q", typ, got, attrs))
		}
	}
	for typ := range declared {
		if _, ok := wantTypes[typ]; !ok {
			errs = append(errs, fmt.Errorf("amosd.te: type %s: not one of amosd's types", typ))
		}
	}
	known := func(typ string) bool { _, own := declared[typ]; _, ext := externalTypes[typ]; return own || ext }
	calls := map[string]bool{}
	for _, s := range te {
		if strings.ContainsAny(s.text, "*~") {
			bad(s, "a wildcard or complement")
		}
		if s.macro != "" {
			forms, ok := teMacros[s.macro]
			if !ok {
				bad(s, "macro %s is not one amosd.te may use (not an AOSP te_macro, or it grants more)", s.macro)
				continue
			}
			if len(s.args) == 0 || s.args[0] != "amosd" || !slices.ContainsFunc(forms, func(f []string) bool { return slices.Equal(f, s.args[1:]) }) {
				bad(s, "arguments %q: want amosd and one of %q", s.args, forms)
			}
			calls[strings.Join(append([]string{s.macro}, s.args...), " ")] = true
			continue
		}
		switch w := s.words; w[0] {
		case "type":
		case "allow":
			// allow amosd TARGET : CLASS PERMS ;
			if len(w) < 6 || w[2] == "{" || w[3] != ":" {
				bad(s, "want allow amosd TYPE:CLASS PERMS")
				continue
			}
			if w[1] != "amosd" {
				bad(s, "a rule for %s: amosd.te grants amosd only", w[1])
			}
			if !known(w[2]) {
				bad(s, "type %s is neither amosd's nor one of the external types it may name", w[2])
			}
			if slices.Contains(w, "-") {
				bad(s, "an exception in a set")
			}
		default:
			bad(s, "%s statements are not wanted in amosd.te", w[0])
		}
	}
	for _, need := range []string{"init_daemon_domain amosd", "net_domain amosd", "write_logd amosd", "unix_socket_connect amosd dnsproxyd netd"} {
		if !calls[need] {
			errs = append(errs, fmt.Errorf("amosd.te: no %s", need))
		}
	}
	return errs
}

// files are the real files, read once per test.
type files struct {
	bp, rc, json, handset, fc, te, gitignore string
	present                                  map[string]bool
	cfg                                      *config.Config
}

func load(t *testing.T) files {
	t.Helper()
	f := files{bp: read(t, "Android.bp"), rc: read(t, "amosd.rc"), json: read(t, "amosd.json"),
		handset: read(t, filepath.Join("..", "testdata", "config", "amosd-handset.json")),
		fc:      read(t, filepath.Join("sepolicy", "file_contexts")), te: read(t, filepath.Join("sepolicy", "amosd.te")),
		gitignore: read(t, ".gitignore"), present: presentFiles(t, ".")}
	var err error
	if f.cfg, err = config.Parse("amosd.json", []byte(f.json)); err != nil {
		t.Fatal(err)
	}
	return f
}

// check runs every checker on f.
func (f files) check() map[string][]error {
	return map[string][]error{
		"Android.bp":    checkAndroidBp(f.bp, f.present, generatedFiles(f.gitignore), f.cfg),
		"amosd.json":    checkConfig([]byte(f.json), []byte(f.handset)),
		"amosd.rc":      checkRC(f.rc, "/system/bin/amosd", f.cfg),
		"file_contexts": checkFileContexts(f.fc, f.te, "/system/bin/amosd", f.cfg),
		"amosd.te":      checkTE(f.te),
	}
}

// TestFilesAgree runs every check on the files of this directory.
func TestFilesAgree(t *testing.T) {
	for name, errs := range load(t).check() {
		for _, err := range errs {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestChecksCatchMistakes breaks the real files one way at a time and expects the
// check of the broken file to say so: each check can fail.
func TestChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		file     string // key of files.check
		old, new string // the mistake: old (which must occur) becomes new
		want     string // a fragment of the complaint
	}{
		{"Android.bp", "    strip: {\n        none: true,\n    },\n", "    strip: {\n        none: true,\n", "never closed"},
		{"Android.bp", `src: "amosd.json"`, `src: "amosd-config.json"`, "amosd-config.json is neither in the directory"},
		{"Android.bp", `srcs: ["prebuilt/arm64/amosd"]`, `srcs: ["prebuilt/arm64/amosd.old"]`, "arch.arm64.srcs"},
		{"Android.bp", `        "amos-ca.pem",` + "\n    ],", "    ],", "required lacks amos-ca.pem"},
		{"Android.bp", `sub_dir: "security"`, `sub_dir: "certs"`, "nothing installs /system/etc/security/amos-ca.pem"},
		{"Android.bp", `init_rc: ["amosd.rc"]`, `init_rc: ["init.amosd.rc"]`, "amosd.rc is in the directory but no module installs it"},
		{"Android.bp", "check_elf_files: false", "check_elf_files: true", "check_elf_files"},
		{"amosd.json", `"log": "auto"`, `"log": "logd"`, "log: logd (want auto), want docs/config.md's"},
		{"amosd.json", `"status_uids": [2000]`, `"status_uids": [2000, 1001]`, "status_uids: [2000 1001] (want [2000])"},
		{"amosd.json", `"sources": ["amos-power", "evdev"]`, `"sources": ["amos-power", "logind", "evdev"]`, "sources: [amos-power logind evdev] (want [amos-power evdev])"},
		{"amosd.json", `  "dns_servers": [],` + "\n", "", "key dns_servers missing"},
		{"amosd.json", `"timeout": "30s"`, `"timeout": "30s", "jitter": "1s"`, "unknown key"},
		{"amosd.rc", "mkdir /data/amos 0700", "mkdir /data/amos 0770", "mode 0770, want 0700"},
		{"amosd.rc", "mkdir /persist/amos 0700", "mkdir /persist/amosd 0700", "want exactly data_dir and key_dir"},
		{"amosd.rc", "    user system\n", "    user root\n", "runs as root"},
		{"amosd.rc", "    user system\n", "", "no user"},
		{"amosd.rc", "group system input inet", "group system inet", "lacks input"},
		{"amosd.rc", "    class main\n", "    class main\n    oneshot\n", "oneshot: not wanted"},
		{"amosd.rc", "    restart_period 30\n", "", "no restart_period"},
		{"amosd.rc", "mkdir /data/amos 0700 system system", "mkdir /data/amos 0700 root root", "owned by root:root"},
		{"amosd.rc", "/system/bin/amosd run", "/system/bin/amosd", `want "amosd /system/bin/amosd run"`},
		{"file_contexts", `/data/amos(/.*)?`, `/data/amos.*`, "labels /data/amosx amosd_data_file: it must not"},
		{"file_contexts", `/persist/amos(/.*)?`, `/persist/amos`, "labels /persist/amos/device.key"},
		{"file_contexts", `/system/bin/amosd `, `/system/bin/amosd.* `, "labels /system/bin/amosd2"},
		{"file_contexts", `u:object_r:amosd_data_file:s0`, `u:object_r:amosd_data:s0`, "type amosd_data (of /data/amos(/.*)?) is not declared"},
		{"amosd.te", "allow amosd input_device:chr_file r_file_perms;", "allow amosd input_device:chr_file *;", "a wildcard"},
		{"amosd.te", "allow amosd input_device:chr_file r_file_perms;", "allow amosd input_device:chr_file ~{ write };", "a wildcard or complement"},
		{"amosd.te", "init_daemon_domain(amosd)", "init_daemon_domain(amosd)\npermissive amosd;", "permissive statements are not wanted"},
		{"amosd.te", "init_daemon_domain(amosd)", "init_daemon_domain(amosd)\nallow amosd shell_data_file:file r_file_perms;", "type shell_data_file is neither"},
		{"amosd.te", "init_daemon_domain(amosd)", "init_daemon_domain(amosd)\nallow init amosd_data_file:file r_file_perms;", "a rule for init"},
		{"amosd.te", "init_daemon_domain(amosd)", "domain_auto_trans(init, amosd_exec, amosd)", "macro domain_auto_trans is not one"},
		{"amosd.te", "unix_socket_connect(amosd, dnsproxyd, netd)", "use_netd(amosd)", "macro use_netd is not one"},
		{"amosd.te", "write_logd(amosd)", "", "no write_logd amosd"},
		{"amosd.te", "r_dir_file(amosd, proc_random)", "r_dir_file(amosd, proc)", "arguments"},
		{"amosd.te", "type amosd, domain, coredomain;", "type amosd, domain, coredomain, mlstrustedsubject;", "type amosd"},
	}
	real := load(t)
	for _, tt := range tests {
		t.Run(tt.file+": "+tt.want, func(t *testing.T) {
			f := real
			field := map[string]*string{"Android.bp": &f.bp, "amosd.json": &f.json, "amosd.rc": &f.rc, "file_contexts": &f.fc, "amosd.te": &f.te}[tt.file]
			if !strings.Contains(*field, tt.old) {
				t.Fatalf("%s does not contain %q any more: update this test", tt.file, tt.old)
			}
			*field = strings.Replace(*field, tt.old, tt.new, 1)
			errs := f.check()[tt.file]
			for _, err := range errs {
				if strings.Contains(err.Error(), tt.want) {
					t.Logf("%v", err)
					return
				}
			}
			t.Errorf("no complaint with %q; got %v", tt.want, errs)
		})
	}
}

// TestMakeAndroidPrebuiltWritesTheGeneratedFiles checks, with make -n (nothing runs),
// that `make android-prebuilt` builds the binaries with make cross and writes every
// file that .gitignore lists, from where make cross puts them.
func TestMakeAndroidPrebuiltWritesTheGeneratedFiles(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed (apt-get install make)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "make", "-n", "-C", "..", "android-prebuilt", "AMOS_CA=/tmp/amos-ca.pem").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n android-prebuilt: %v\n%s", err, out)
	}
	recipe := string(out)
	for _, want := range []string{"GOARCH=arm GOARM=7", "GOARCH=arm64",
		"cp out/arm/amosd android-build/prebuilt/arm/amosd", "cp out/arm64/amosd android-build/prebuilt/arm64/amosd"} {
		if !strings.Contains(recipe, want) {
			t.Errorf("make -n android-prebuilt does not run %q:\n%s", want, recipe)
		}
	}
	for g := range generatedFiles(read(t, ".gitignore")) {
		if !strings.Contains(recipe, "android-build/"+g) {
			t.Errorf("make android-prebuilt does not write %s, which .gitignore lists:\n%s", g, recipe)
		}
	}
}
