// Command amosd is the Amos activity daemon and its command line (docs/dbus-api.md): it only
// parses the command line and wires the packages that do the work.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// Set at link time: go build -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes of docs/dbus-api.md.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// defaultConfig is where firmware installs the configuration (docs/dbus-api.md).
const defaultConfig = "/system/etc/amosd.json"

// command is one entry of docs/dbus-api.md's command table.
type command struct {
	name, args, summary string
	run                 func(env *cliEnv, args []string) int
}

// cliEnv is what a command sees of the process: no globals.
type cliEnv struct {
	stdout, stderr io.Writer
	config         string // path of the configuration file
}

func commands() []command {
	return []command{
		{name: "run", summary: "run the daemon; exits 0 on SIGTERM/SIGINT after persisting the tally", run: runDaemon},
		{name: "status", args: "[--json]", summary: "status of the running daemon, over D-Bus", run: runStatus},
		{name: "flush", summary: "one sync attempt now; prints accepted and queued", run: runFlush},
		{name: "report", args: "EVENT", summary: "report screen_on|screen_off|unlocked|locked|input (OEM tests)", run: runReport},
		{name: "consent", args: "on|off", summary: "grant or revoke the owner's consent", run: runConsent},
		{name: "selftest", args: "[--json]", summary: "check config, key, store, bus, DNS, server and clock; exit 1 if any fails", run: runSelftest},
		{name: "identity", args: "[--json]", summary: "device_id, public key and certificate state, for the factory", run: runIdentity},
		{name: "inspect", args: "--data DIR [--json|--raw]", summary: "offline dump of a store no daemon holds", run: runInspect},
		{name: "version", summary: "version, commit and architecture", run: runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: amosd [--config PATH] COMMAND [ARGS]\n\n")
	fmt.Fprintf(w, "The Amos activity daemon. The configuration is read from --config, else\n$AMOSD_CONFIG, else %s.\n\ncommands:\n", defaultConfig)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-36s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nexit codes: 0 success, 1 failure, 2 usage or configuration error, 3 daemon not reachable\n")
}

// usageError prints a one-line complaint and the pointer to help, and returns exit 2.
func usageError(w io.Writer, format string, args ...any) int {
	fmt.Fprintf(w, "amosd: "+format+"\n", args...)
	fmt.Fprintln(w, "run 'amosd help' for usage")
	return exitUsage
}

// run is main without os.Exit, so that tests can drive it.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet()
	var config string
	fs.StringVar(&config, "config")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, errHelp) {
			usage(stdout)
			return exitOK
		}
		return usageError(stderr, "%v", err)
	}
	env := &cliEnv{stdout: stdout, stderr: stderr, config: config}
	if env.config == "" {
		env.config = getenv("AMOSD_CONFIG")
	}
	if env.config == "" {
		env.config = defaultConfig
	}
	rest := fs.Args()
	if len(rest) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, cmdArgs := rest[0], rest[1:]
	if name == "help" {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		return c.run(env, cmdArgs)
	}
	return usageError(stderr, "unknown command %q", name)
}

func runVersion(env *cliEnv, args []string) int {
	if len(args) > 0 {
		return usageError(env.stderr, "version takes no arguments, got %q", strings.Join(args, " "))
	}
	fmt.Fprintf(env.stdout, "amosd %s commit %s %s/%s %s\n", version, commit, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return exitOK
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
