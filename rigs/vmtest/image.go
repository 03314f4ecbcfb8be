// Package vmtest builds the handset firmware image that vm-test boots under full-system
// QEMU: Debian's kernel and packages for the handset's architecture, and an initramfs of ours.
package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Arch is one handset architecture as Debian and QEMU name it.
type Arch struct {
	Name       string   // "arm64", "armv7"
	DebArch    string   // Debian's architecture: arm64, armhf
	GOARCH     string   // Go's
	GOARM      string   // for GOARCH=arm
	KernelMeta string   // Debian's meta package that depends on the current kernel
	QEMU       string   // the full-system emulator
	Machine    []string // the machine and CPU options
	Console    string   // the kernel's serial console
}

// Arches returns the two the handsets ship.
func Arches() []Arch {
	return []Arch{
		{Name: "arm64", DebArch: "arm64", GOARCH: "arm64", KernelMeta: "linux-image-arm64",
			QEMU: "qemu-system-aarch64", Machine: []string{"-M", "virt", "-cpu", "cortex-a57"}, Console: "ttyAMA0"},
		{Name: "armv7", DebArch: "armhf", GOARCH: "arm", GOARM: "7", KernelMeta: "linux-image-armmp-lpae",
			QEMU: "qemu-system-arm", Machine: []string{"-M", "virt,highmem=off", "-cpu", "cortex-a15"}, Console: "ttyAMA0"},
	}
}

// Modules returns the modules the image loads, by name; their dependencies are found
// in the .ko files. virtio_net is for the adb phase of the check boot (QEMU's user-mode
// network).
func Modules() []string {
	return []string{"virtio_mmio", "virtio_blk", "crc32c_generic", "ext4", "evdev", "uinput", "virtio_net"}
}

// Packages returns the packages besides the kernel: busybox for a shell, dbus-daemon
// with what it links.
func Packages() []string {
	return []string{"busybox-static", "dbus-daemon", "libdbus-1-3", "libexpat1", "libsystemd0", "libc6",
		"libgcc-s1", "libapparmor1", "libaudit1", "libcap-ng0", "libselinux1", "libpcre2-8-0", "libcap2",
		"libgcrypt20", "libgpg-error0", "liblz4-1", "liblzma5", "libzstd1"}
}

// Debian fetches Debian packages of one architecture into a cache directory with apt,
// keeping its own package lists there: the host's apt configuration is not changed.
type Debian struct {
	Arch  Arch
	Cache string // <repo>/.cache/vm/<debarch>
	Log   func(format string, args ...any)
}

func (d *Debian) aptOptions() []string {
	return []string{
		"-o", "APT::Architecture=" + d.Arch.DebArch,
		"-o", "APT::Architectures::=" + d.Arch.DebArch,
		"-o", "Dir::State::Lists=" + filepath.Join(d.Cache, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(d.Cache, "apt"),
		"-o", "Dir::State::status=/dev/null",
		"-o", "Debug::NoLocking=1",
		"-q",
	}
}

func (d *Debian) apt(ctx context.Context, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tool, append(d.aptOptions(), args...)...)
	cmd.Dir = filepath.Join(d.Cache, "debs")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out), nil
}

// Root returns a directory holding the extracted packages and the kernel, fetching
// them first if the cache does not hold the current versions.
func (d *Debian) Root(ctx context.Context) (root, kernel string, err error) {
	for _, dir := range []string{"lists/partial", "apt/archives/partial", "debs"} {
		if err := os.MkdirAll(filepath.Join(d.Cache, dir), 0o755); err != nil {
			return "", "", err
		}
	}
	// A mirror in the middle of a sync fails one index now and then: apt keeps the
	// others, and what it cannot find is an error below.
	if _, err := d.apt(ctx, "apt-get", "update"); err != nil {
		d.Log("%v (going on with the package lists apt has)", err)
	}
	// The meta package names the current kernel; resolved, not hard-coded.
	deps, err := d.apt(ctx, "apt-cache", "depends", d.Arch.KernelMeta)
	if err != nil {
		return "", "", err
	}
	var kpkg string
	for _, line := range strings.Split(deps, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			kpkg = f[1]
			break
		}
	}
	if kpkg == "" {
		return "", "", fmt.Errorf("%s names no kernel package:\n%s", d.Arch.KernelMeta, deps)
	}
	pkgs := append([]string{kpkg}, Packages()...)
	// The versions apt would fetch now name the extracted tree: a new kernel or
	// library makes a new tree.
	var versions []string
	for _, p := range pkgs {
		out, err := d.apt(ctx, "apt-cache", "show", "--no-all-versions", p)
		if err != nil {
			return "", "", err
		}
		versions = append(versions, p+"="+field(out, "Version"))
	}
	stamp := strings.Join(versions, "\n") + "\n"
	root = filepath.Join(d.Cache, "root")
	if b, err := os.ReadFile(filepath.Join(d.Cache, "root.stamp")); err != nil || string(b) != stamp {
		d.Log("fetching %s for %s", strings.Join(versions, " "), d.Arch.DebArch)
		if err := os.RemoveAll(root); err != nil {
			return "", "", err
		}
		debs := filepath.Join(d.Cache, "debs")
		olds, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
		for _, f := range olds {
			os.Remove(f)
		}
		if _, err := d.apt(ctx, "apt-get", append([]string{"download"}, versions...)...); err != nil {
			return "", "", err
		}
		files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
		if len(files) != len(pkgs) {
			return "", "", fmt.Errorf("apt-get download left %d packages in %s, want %d", len(files), debs, len(pkgs))
		}
		for _, f := range files {
			if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", f, root).CombinedOutput(); err != nil {
				return "", "", fmt.Errorf("dpkg-deb -x %s: %w\n%s", f, err, out)
			}
		}
		if err := os.WriteFile(filepath.Join(d.Cache, "root.stamp"), []byte(stamp), 0o644); err != nil {
			return "", "", err
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return "", "", fmt.Errorf("%s/boot holds %d kernels, want 1", root, len(kernels))
	}
	return root, kernels[0], nil
}

// field returns a field of an apt-cache show paragraph.
func field(paragraph, name string) string {
	for _, line := range strings.Split(paragraph, "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ModuleOrder returns the paths (below root) of the named modules and of every module
// they depend on, dependencies first, read from the "depends=" of each .ko's .modinfo.
func ModuleOrder(root string, names []string) ([]string, error) {
	byName := map[string]string{}
	dirs, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(dirs) == 0 {
		dirs, _ = filepath.Glob(filepath.Join(root, "usr", "lib", "modules", "*"))
	}
	if len(dirs) != 1 {
		return nil, fmt.Errorf("%s holds %d module trees, want 1", root, len(dirs))
	}
	err := filepath.WalkDir(dirs[0], func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".ko") {
			byName[strings.ReplaceAll(strings.TrimSuffix(e.Name(), ".ko"), "-", "_")] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = strings.ReplaceAll(name, "-", "_")
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s depends on itself", name)
		case 2:
			return nil
		}
		p, ok := byName[name]
		if !ok {
			return fmt.Errorf("module %s: no %s.ko under %s (built into the kernel?)", name, name, dirs[0])
		}
		state[name] = 1
		info, err := modinfo(p)
		if err != nil {
			return err
		}
		for _, dep := range strings.Split(info["depends"], ",") {
			if dep == "" {
				continue
			}
			if err := visit(dep); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		state[name] = 2
		rel, _ := filepath.Rel(root, p)
		order = append(order, "/"+filepath.ToSlash(rel))
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modinfo reads the key=value strings of a kernel module's .modinfo section.
func modinfo(path string) (map[string]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .modinfo: %w", path, err)
	}
	info := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			info[k] = v
		}
	}
	return info, nil
}

// LibClosure returns the paths (below root) of the shared libraries bin needs,
// transitively, and of its program interpreter, read from the ELF files themselves.
func LibClosure(root, bin string) ([]string, error) {
	dirs := []string{"/lib", "/usr/lib"}
	for _, d := range []string{"/lib", "/usr/lib"} {
		triplets, _ := filepath.Glob(filepath.Join(root, d, "*-linux-gnu*"))
		for _, t := range triplets {
			dirs = append(dirs, d+"/"+filepath.Base(t))
		}
	}
	find := func(soname string) (string, error) {
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(root, d, soname)); err == nil {
				return d + "/" + soname, nil
			}
		}
		return "", fmt.Errorf("%s: no %s under %s", bin, soname, root)
	}
	seen := map[string]bool{}
	var out []string
	var walk func(p string) error
	walk = func(p string) error {
		f, err := elf.Open(filepath.Join(root, p))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				return err
			}
			ld := strings.TrimRight(string(b), "\x00")
			if !seen[ld] {
				seen[ld] = true
				out = append(out, ld)
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, so := range needed {
			lp, err := find(so)
			if err != nil {
				return err
			}
			if seen[lp] {
				continue
			}
			seen[lp] = true
			out = append(out, lp)
			if err := walk(lp); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(bin); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// Initramfs writes a newc cpio archive (what the kernel unpacks as its first root) of
// the entries, in order; directories must come before what they hold.
type Initramfs struct {
	w   *bufio.Writer
	ino uint32
	err error
}

// NewInitramfs starts an archive on w.
func NewInitramfs(w io.Writer) *Initramfs { return &Initramfs{w: bufio.NewWriter(w), ino: 1} }

func (a *Initramfs) header(name string, mode uint32, size int) {
	if a.err != nil {
		return
	}
	a.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	fmt.Fprintf(a.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		a.ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	a.w.WriteString(name)
	a.w.WriteByte(0)
	a.pad(110 + len(name) + 1)
}

func (a *Initramfs) pad(n int) {
	for n%4 != 0 {
		a.w.WriteByte(0)
		n++
	}
}

// Dir adds a directory.
func (a *Initramfs) Dir(name string, perm fs.FileMode) {
	a.header(strings.TrimPrefix(name, "/"), 0o040000|uint32(perm.Perm()), 0)
}

// File adds a regular file.
func (a *Initramfs) File(name string, perm fs.FileMode, content []byte) {
	a.header(strings.TrimPrefix(name, "/"), 0o100000|uint32(perm.Perm()), len(content))
	if a.err == nil {
		a.w.Write(content)
		a.pad(len(content))
	}
}

// Symlink adds a symbolic link.
func (a *Initramfs) Symlink(name, target string) {
	a.header(strings.TrimPrefix(name, "/"), 0o120000|0o777, len(target))
	if a.err == nil {
		a.w.WriteString(target)
		a.pad(len(target))
	}
}

// Copy adds the file at src (symbolic links followed) as name, keeping its mode.
func (a *Initramfs) Copy(name, src string) {
	if a.err != nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		a.err = err
		return
	}
	st, err := os.Stat(src)
	if err != nil {
		a.err = err
		return
	}
	a.File(name, st.Mode(), b)
}

// Close writes the trailer and flushes.
func (a *Initramfs) Close() error {
	a.header("TRAILER!!!", 0, 0)
	if a.err != nil {
		return a.err
	}
	return a.w.Flush()
}

// Dirs returns every parent directory of the paths, parents first, for Dir.
func Dirs(paths []string) []string {
	set := map[string]bool{}
	for _, p := range paths {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			set[d] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		ci, cj := strings.Count(out[i], "/"), strings.Count(out[j], "/")
		if ci != cj {
			return ci < cj
		}
		return out[i] < out[j]
	})
	return out
}
