// Command amosd is the Amos activity daemon and its command line (docs/dbus-api.md): it only
// parses the command line and wires the packages that do the work.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Set at link time: go build -ldflags "-X main.version=… -X main.commit=… -X main.built=…"
// (built: the commit's unix time; no server_time before it is believed).
var (
	version = "dev"
	commit  = "unknown"
	built   = "0"
)

// builtAt is the build time stamped in built; zero if none (the agent then assumes
// timetrust.DefaultBuild).
func builtAt() time.Time {
	n, err := strconv.ParseInt(built, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// Exit codes of docs/dbus-api.md.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
	// exitHelp is what a command returns when it has printed its usage for -h or
	// --help (parseFlags): run turns it into exitOK. Being other than exitOK, it stops a
	// command that goes on only with exitOK.
	exitHelp = -1
)

// defaultConfig is where firmware installs the configuration (docs/dbus-api.md).
const defaultConfig = "/system/etc/amosd.json"

// command is one entry of docs/dbus-api.md's command table.
type command struct {
	name, args, summary string
	help                string // printed under the summary by `amosd COMMAND --help`
	run                 func(env *cliEnv, args []string) int
}

// cliEnv is what a command sees of the process: no globals.
type cliEnv struct {
	stdout, stderr io.Writer
	config         string // path of the configuration file
}

func commands() []command {
	return []command{
		{name: "run", summary: "run the daemon; exits 0 on SIGTERM/SIGINT after persisting the tally", run: runDaemon,
			help: "It takes no arguments. A configuration error exits 2, a fatal error 1."},
		{name: "status", args: "[--json]", summary: "status of the running daemon, over D-Bus", run: runStatus,
			help: "  --json  one JSON object, keys sorted, with the raw values"},
		{name: "flush", summary: "one sync attempt now; prints accepted and queued", run: runFlush,
			help: "It waits for the daemon's answer (35 s at most)."},
		{name: "report", args: "EVENT", summary: "report screen_on|screen_off|unlocked|locked|input (OEM tests)", run: runReport,
			help: "EVENT is screen_on, screen_off, unlocked, locked or input."},
		{name: "consent", args: "on|off", summary: "grant or revoke the owner's consent", run: runConsent},
		{name: "selftest", args: "[--json]", summary: "check config, key, store, bus, DNS, server and clock; exit 1 if any fails", run: runSelftest,
			help: "  --json  {\"checks\": [{\"check\", \"ok\", \"detail\", \"fix\"}, ...], \"ok\": BOOL}"},
		{name: "identity", args: "[--json] [--maker-id ID --serial-tag HEX] [--chain FILE]", summary: "device_id, public key, key backend and certificate state, for the factory", run: runIdentity,
			help: "  --json              one JSON object\n" +
				"  --maker-id ID       with --serial-tag, key.backend keystore: generate the attested key if the\n" +
				"  --serial-tag HEX    keystore has none, its challenge bound to the maker and the serial tag\n" +
				"  --chain FILE        write the key's attestation chain to FILE as PEM, leaf first\n\n" +
				"Like the daemon, the file backend creates key_dir and the device key if there are none.\n" +
				"The keystore backend creates a key only with --maker-id and --serial-tag."},
		{name: "inspect", args: "--data DIR [--json|--raw]", summary: "offline dump of a store no daemon holds", run: runInspect,
			help: "  --data DIR  the store's directory (required)\n  --json      one JSON object\n  --raw       the queued records as a wire batch\n\nIt does not read the configuration, and never writes."},
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

// commandUsage prints the usage of command c: `amosd c --help`.
func commandUsage(w io.Writer, c command) {
	fmt.Fprintf(w, "usage: amosd [--config PATH] %s\n\n%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", c.help)
	}
	fmt.Fprintf(w, "\nexit codes: 0 success, 1 failure, 2 usage or configuration error, 3 daemon not reachable\n")
}

// findCommand returns the command called name.
func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
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
	if name == "help" { // amosd help [COMMAND]
		switch len(cmdArgs) {
		case 0:
			usage(stdout)
			return exitOK
		case 1:
			c, ok := findCommand(cmdArgs[0])
			if !ok {
				return usageError(stderr, "help: unknown command %q", cmdArgs[0])
			}
			commandUsage(stdout, c)
			return exitOK
		}
		return usageError(stderr, "help: want at most one command, got %q", strings.Join(cmdArgs, " "))
	}
	c, ok := findCommand(name)
	if !ok {
		return usageError(stderr, "unknown command %q", name)
	}
	// A help flag first is help for every command, those without flags (run, version)
	// too; one after other flags is the flag parser's (parseFlags).
	if len(cmdArgs) > 0 && errors.Is(newFlagSet().Parse(cmdArgs[:1]), errHelp) {
		commandUsage(stdout, c)
		return exitOK
	}
	if code := c.run(env, cmdArgs); code != exitHelp {
		return code
	}
	return exitOK
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
