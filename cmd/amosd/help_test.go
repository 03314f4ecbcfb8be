package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCommandHelp: every command prints its own usage on stdout and exits 0 for -h,
// -help, --help and --h, as its first argument or after its other flags, without
// reading the configuration or reaching the daemon; `amosd help COMMAND` prints the same.
// A flag the command does not have still exits 2 with a message naming it, on stderr.
func TestCommandHelp(t *testing.T) {
	// Flags each command takes, to put before the help flag: the flag parser's turn.
	flagsOf := map[string][]string{
		"status": {"--json"}, "selftest": {"--json"}, "identity": {"-json=false"},
		"inspect": {"--data", "/nonexistent/store", "--raw"},
	}
	getenv := func(string) string { return "" }
	for _, c := range commands() {
		want := "usage: amosd [--config PATH] " + strings.TrimSpace(c.name+" "+c.args) + "\n\n" + c.summary + "\n"
		ways := [][]string{{c.name, "--help"}, {c.name, "-h"}, {c.name, "-help"}, {c.name, "--h"}, {"help", c.name}}
		if flags := flagsOf[c.name]; flags != nil {
			ways = append(ways, append(append([]string{c.name}, flags...), "-h"))
		}
		for _, args := range ways {
			// A configuration that does not exist: help must not need one.
			args := append([]string{"--config", "/nonexistent/amosd.json"}, args...)
			t.Run(strings.Join(args[2:], " "), func(t *testing.T) {
				var out, errb bytes.Buffer
				code := run(args, &out, &errb, getenv)
				if code != exitOK || !strings.HasPrefix(out.String(), want) || errb.Len() > 0 {
					t.Errorf("amosd %q: exit %d, want 0 and stdout starting %q\nstdout: %s\nstderr: %s", args, code, want, out.String(), errb.String())
				}
				if !strings.Contains(out.String(), "exit codes: 0 success") {
					t.Errorf("amosd %q: no exit codes in\n%s", args, out.String())
				}
			})
		}
		t.Run(c.name+" --bogus", func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"--config", "/nonexistent/amosd.json", c.name, "--bogus"}, &out, &errb, getenv)
			if code != exitUsage || out.Len() > 0 || !strings.Contains(errb.String(), "-bogus") ||
				!strings.Contains(errb.String(), "run 'amosd help' for usage") {
				t.Errorf("amosd %s --bogus: exit %d, want 2 and a message naming -bogus on stderr\nstdout: %s\nstderr: %s", c.name, code, out.String(), errb.String())
			}
		})
	}
}

// TestTopLevelHelp: the command list on stdout, exit 0, for every way of asking; a help
// of something that is not a command is a usage error.
func TestTopLevelHelp(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{args: []string{"help"}, stdout: "usage: amosd [--config PATH] COMMAND [ARGS]"},
		{args: []string{"--help"}, stdout: "usage: amosd [--config PATH] COMMAND [ARGS]"},
		{args: []string{"-h", "status"}, stdout: "usage: amosd [--config PATH] COMMAND [ARGS]"},
		{args: []string{"--config", "/x.json", "-help"}, stdout: "usage: amosd [--config PATH] COMMAND [ARGS]"},
		{args: []string{"help", "frobnicate"}, code: exitUsage, stderr: `amosd: help: unknown command "frobnicate"`},
		{args: []string{"help", "status", "run"}, code: exitUsage, stderr: `amosd: help: want at most one command, got "status run"`},
		{args: []string{"--bogus", "status"}, code: exitUsage, stderr: "flag provided but not defined: -bogus"},
		// After an argument, -h is an argument, as the flag package has it.
		{args: []string{"--config", "/nonexistent/amosd.json", "report", "screen_on", "-h"}, code: exitUsage, stderr: `report: want 1 argument(s), got "screen_on -h"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb, func(string) string { return "" })
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) ||
				(tc.code != exitOK) != (out.Len() == 0) {
				t.Errorf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tc.code, out.String(), tc.stdout, errb.String(), tc.stderr)
			}
			if tc.code == exitOK && !strings.Contains(out.String(), "\n  inspect --data DIR [--json|--raw] ") {
				t.Errorf("the command list lacks inspect:\n%s", out.String())
			}
		})
	}
}
