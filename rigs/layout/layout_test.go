package layout

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/rigs/testenv"
)

const module = "amos.example/amosd"

// maxCodeLines is the most lines of non-test code (not blank, not a comment) a package
// may have.
const maxCodeLines = 1500

// goList runs go list with args (in the module's root) and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host check: it needs the Go toolchain")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no Go toolchain on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func rel(pkg string) string { return strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/") }

// TestBinariesLinkOnlyTheirSide: the handset binary links nothing of the collector nor
// the development keystore, the collector nothing of the device (agent, store,
// transport), and neither a tool or a rig.
func TestBinariesLinkOnlyTheirSide(t *testing.T) {
	for _, tc := range []struct {
		bin    string
		banned []string
	}{
		// amosd reaches a keystore over D-Bus (agent/keystore); the development one and
		// its attestation authority are never in the handset binary.
		{"cmd/amosd", []string{"collector", "tools", "rigs", "internal/devattest", "internal/devkeystore", "internal/keydesc", "cmd/amos-keystored"}},
		{"cmd/amos-collector", []string{"agent", "store", "transport", "tools", "rigs"}},
	} {
		for _, dep := range goList(t, "-deps", "-tags", "nethttpomithttp2", "./"+tc.bin) {
			for _, b := range tc.banned {
				if r := rel(dep); strings.HasPrefix(dep, module) && (r == b || strings.HasPrefix(r, b+"/")) {
					t.Errorf("%s links %s", tc.bin, r)
				}
			}
		}
	}
}

// TestLibraryImports: proof imports nothing of the project; store never reaches the
// network; no library (a package outside cmd, tools and rigs) imports a tool or a rig
// in its non-test code.
func TestLibraryImports(t *testing.T) {
	n := 0
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{.Name}} {{join .Imports \" \"}}", "./...") {
		f := strings.Fields(line)
		pkg, name, imports := rel(f[0]), f[1], f[2:]
		library := name != "main" && !strings.HasPrefix(pkg, "cmd/") && !strings.HasPrefix(pkg, "tools/") && !strings.HasPrefix(pkg, "rigs/")
		if library {
			n++
		}
		for _, imp := range imports {
			own := strings.HasPrefix(imp, module+"/")
			switch {
			case pkg == "proof" && own:
				t.Errorf("proof imports %s: it must import nothing of the project", rel(imp))
			case pkg == "store" && (imp == "net" || imp == "net/http" || rel(imp) == "transport"):
				t.Errorf("store imports %s: it never talks to the network", imp)
			case library && own && (strings.HasPrefix(rel(imp), "tools/") || strings.HasPrefix(rel(imp), "rigs/")):
				t.Errorf("library %s imports %s", pkg, rel(imp))
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d libraries listed", n)
	}
	for _, dep := range goList(t, "-deps", "./store") {
		if dep == "net" || dep == "net/http" || rel(dep) == "transport" {
			t.Errorf("store depends on %s", dep)
		}
	}
}

// TestPackageSize: no package has more than maxCodeLines lines of non-test code.
func TestPackageSize(t *testing.T) {
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{.Dir}} {{join .GoFiles \" \"}}", "./...") {
		f := strings.Fields(line)
		pkg, dir := rel(f[0]), f[1]
		lines := 0
		for _, name := range f[2:] {
			lines += codeLines(t, filepath.Join(dir, name))
		}
		if lines > maxCodeLines {
			t.Errorf("%s has %d lines of non-test code, over %d: split it along the pipeline", pkg, lines, maxCodeLines)
		}
	}
}

// codeLines counts the lines of a Go file that are neither blank nor a // comment.
func codeLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "//") {
			n++
		}
	}
	return n
}
