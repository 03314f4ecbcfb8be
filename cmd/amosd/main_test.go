package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/rigs/testenv"
)

func TestRunTable(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		stdout   string // substring expected on stdout
		stderr   string // substring expected on stderr
		quietOut bool   // nothing may be printed on stdout
	}{
		{name: "no command", args: nil, code: 2, stderr: "usage: amosd [--config PATH] COMMAND", quietOut: true},
		{name: "help", args: []string{"help"}, code: 0, stdout: "inspect --data DIR [--json|--raw]"},
		{name: "-h", args: []string{"-h"}, code: 0, stdout: "selftest [--json]"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "exit codes: 0 success"},
		{name: "version", args: []string{"version"}, code: 0, stdout: "amosd dev commit unknown linux/" + runtime.GOARCH},
		{name: "version after --config", args: []string{"--config", "/nonexistent.json", "version"}, code: 0, stdout: "amosd dev"},
		{name: "version with an argument", args: []string{"version", "now"}, code: 2, stderr: `version takes no arguments, got "now"`, quietOut: true},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`, quietOut: true},
		{name: "unknown flag", args: []string{"--bogus", "version"}, code: 2, stderr: "flag provided but not defined: -bogus", quietOut: true},
		{name: "--config without a value", args: []string{"--config"}, code: 2, stderr: "flag needs an argument: -config", quietOut: true},
		{name: "status without a config", args: []string{"--config", "/nonexistent/amosd.json", "status"}, code: 2, stderr: "config /nonexistent/amosd.json", quietOut: true},
		{name: "report of an unknown event", args: []string{"report", "dance"}, code: 2, stderr: `unknown event "dance"`, quietOut: true},
		{name: "report without an event", args: []string{"report"}, code: 2, stderr: "want 1 argument", quietOut: true},
		{name: "consent maybe", args: []string{"consent", "maybe"}, code: 2, stderr: `want on or off, got "maybe"`, quietOut: true},
		{name: "inspect without --data", args: []string{"inspect"}, code: 2, stderr: "--data DIR is required", quietOut: true},
		{name: "inspect --json --raw", args: []string{"inspect", "--data", "/x", "--json", "--raw"}, code: 2, stderr: "exclude each other", quietOut: true},
		{name: "status --yaml", args: []string{"status", "--yaml"}, code: 2, stderr: "flag provided but not defined: -yaml", quietOut: true},
		{name: "run with a missing config", args: []string{"--config", "/nonexistent/amosd.json", "run"}, code: 2, stderr: "config /nonexistent/amosd.json: open", quietOut: true},
		{name: "run with AMOSD_CONFIG", args: []string{"run"}, env: map[string]string{"AMOSD_CONFIG": "/nonexistent/env.json"}, code: 2, stderr: "config /nonexistent/env.json", quietOut: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb, func(k string) string { return tc.env[k] })
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout %q does not contain %q", out.String(), tc.stdout)
			}
			if !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tc.stderr)
			}
			if tc.quietOut && out.Len() > 0 {
				t.Errorf("stdout should be empty, got %q", out.String())
			}
		})
	}
}

func TestUsageListsEverySpecCommand(t *testing.T) {
	var out bytes.Buffer
	usage(&out)
	for _, c := range []string{"run", "status [--json]", "flush", "report EVENT", "consent on|off",
		"selftest [--json]", "identity [--json]", "inspect --data DIR [--json|--raw]", "version"} {
		if !strings.Contains(out.String(), "\n  "+c+" ") {
			t.Errorf("usage does not list %q:\n%s", c, out.String())
		}
	}
}

// TestBinary builds amosd as the Makefile ships it (static, stripped, stamped) and runs
// it as a real process, through QEMU when the suite runs cross-compiled.
func TestBinary(t *testing.T) {
	bin := testenv.Build(t, "amos.example/amosd/cmd/amosd",
		"-X main.version=v9.8.7-test", "-X main.commit=0123456789ab")

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary is not static: it has a %v program header", p.Type)
		}
	}
	if s := f.Section(".symtab"); s != nil {
		t.Error("binary is not stripped: it has .symtab")
	}
	wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm": elf.EM_ARM, "arm64": elf.EM_AARCH64, "386": elf.EM_386}[runtime.GOARCH]
	if wantMachine != 0 && f.Machine != wantMachine {
		t.Errorf("binary is for %v, want %v", f.Machine, wantMachine)
	}

	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "amosd v9.8.7-test commit 0123456789ab linux/" + runtime.GOARCH + " go", ""},
		{[]string{"--config", "/etc/none.json", "version"}, 0, "amosd v9.8.7-test", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"--frobnicate"}, 2, "", "flag provided but not defined"},
		{[]string{"status", "--help"}, 0, "usage: amosd [--config PATH] status [--json]", ""},
		{[]string{"status", "--yaml"}, 2, "", "status: flag provided but not defined: -yaml"},
		{nil, 2, "", "usage: amosd"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := testenv.Command(ctx, bin, tc.args...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("amosd %v: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)",
					tc.args, code, tc.code, out.String(), tc.stdout, errb.String(), tc.stderr)
			}
		})
	}
}
