// Command amos-collector is the reference cloud server of amosd and its command line
// (docs/operations.md): it only parses the command line and wires the collector packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"amos.example/amosd/collector"
)

// Set at link time: go build -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes of docs/operations.md, as amosd's. No collector command needs exitUnreachable: they
// all work on local files.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// cliEnv is what a command sees of the process: no globals.
type cliEnv struct {
	ctx            context.Context // done on SIGTERM or SIGINT
	stdout, stderr io.Writer
	config         string // path of the configuration file
	configGiven    bool   // named by --config or $AMOS_COLLECTOR_CONFIG
	now            func() time.Time
}

// command is one entry of docs/operations.md's command table.
type command struct {
	name, args, summary string
	run                 func(env *cliEnv, args []string) int
}

func commands() []command {
	return []command{
		{"serve", "", "serve the records, claims, devices and payer API (docs/protocol.md, docs/operations.md) until SIGTERM; closes each month when its moment passes", runServe},
		{"maker", "keygen --out PREFIX", "make a maker key: PREFIX.key (seed, 0600) and PREFIX.pub (hex)", runMaker},
		{"maker", "certify --key FILE --maker-id ID --model M --serial-tag HEX --device-pub HEX --out FILE", "the factory step: sign a device key into a certificate", runMaker},
		{"registry", "import FILE", "add the sold handsets of a CSV or JSON file (serial_tag, maker_id, sold_at, channel) to the sales registry in data_dir: all or nothing", runRegistry},
		{"claims", "--month YYYY-MM [--format csv|json] [--devices] [--read-only]", "each maker's claim for a month (paid, held, refused, late, unregistered), or with --devices every device's outcome, offline from data_dir; a month past its close is stored", runClaims},
		{"held", "list --month YYYY-MM [--format csv|json]", "the devices a month holds, with their reasons and findings, offline from data_dir", runHeld},
		{"held", "release|deny --month YYYY-MM --device DEVICE_ID --by NAME --why TEXT", "the payer's decision on a held device, stored with who, when and why (before the month closes)", runHeld},
		{"held", "decisions --month YYYY-MM", "the month's decisions on held devices: the audit trail", runHeld},
		{"verify", "FILE", "each record's verdict on a batch file, offline", runVerify},
		{"attestation", "verify --chain FILE.pem [--at RFC3339] [--challenge TEXT | --challenge-hex HEX] [--status-list FILE] [--roots FILE.pem] [--boot-key HEX]... [--min-patch YYYYMM] [--key HEX]", "an Android Key Attestation chain's verdict as JSON (docs/attestation.md): exit 0 accepted, 1 refused; --roots replaces the shipped Google roots; without --boot-key the boot key is reported, not checked", runAttestation},
		{"version", "", "version, commit and architecture", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: amos-collector [--config PATH] COMMAND [ARGS]\n\n")
	fmt.Fprintf(w, "The reference Amos collector. The configuration is read from --config, else\n$%s, else %s.\n\ncommands:\n", collector.ConfigEnv, collector.DefaultConfigPath)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nexit codes: 0 success, 1 failure, 2 usage or configuration error\n")
}

// usageError prints a one-line complaint and the pointer to help, and returns exit 2.
func usageError(w io.Writer, format string, args ...any) int {
	fmt.Fprintf(w, "amos-collector: "+format+"\n", args...)
	fmt.Fprintln(w, "run 'amos-collector help' for usage")
	return exitUsage
}

// failed prints an operation's failure and returns exit 1.
func failed(w io.Writer, format string, args ...any) int {
	fmt.Fprintf(w, "amos-collector: "+format+"\n", args...)
	return exitFailed
}

// run is main without os.Exit, so that tests can drive it: ctx is done on SIGTERM or
// SIGINT, now is the clock (certificates' issued_at, verify's dates).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, now func() time.Time) int {
	fs := flag.NewFlagSet("amos-collector", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		return usageError(stderr, "%v", err)
	}
	env := &cliEnv{ctx: ctx, stdout: stdout, stderr: stderr, config: *config, configGiven: true, now: now}
	if env.config == "" {
		env.config = getenv(collector.ConfigEnv)
	}
	if env.config == "" {
		env.config, env.configGiven = collector.DefaultConfigPath, false
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
		if c.name == name {
			return c.run(env, cmdArgs)
		}
	}
	return usageError(stderr, "unknown command %q", name)
}

// loadConfig reads the configuration; on failure it prints the error, which names the
// file, the key and the problem, and returns exit 2.
func (env *cliEnv) loadConfig() (*collector.Config, int) {
	cfg, err := collector.LoadConfig(env.config)
	if err != nil {
		fmt.Fprintf(env.stderr, "amos-collector: %v\n", err)
		return nil, exitUsage
	}
	return cfg, exitOK
}

// parseFlags parses a command's flags and refuses positional arguments beyond want.
func parseFlags(env *cliEnv, fs *flag.FlagSet, args []string, positional int) ([]string, int) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, usageError(env.stderr, "%s: %v", fs.Name(), err)
	}
	if fs.NArg() != positional {
		if positional == 0 {
			return nil, usageError(env.stderr, "%s takes no arguments, got %q", fs.Name(), strings.Join(fs.Args(), " "))
		}
		return nil, usageError(env.stderr, "%s takes %d argument(s), got %d", fs.Name(), positional, fs.NArg())
	}
	return fs.Args(), exitOK
}

func runVersion(env *cliEnv, args []string) int {
	if _, code := parseFlags(env, flag.NewFlagSet("version", flag.ContinueOnError), args, 0); code != exitOK {
		return code
	}
	fmt.Fprintf(env.stdout, "amos-collector %s commit %s %s/%s %s\n", version, commit, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return exitOK
}

func main() {
	now, err := serverClock(os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "amos-collector: %v\n", err)
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, now)
	stop()
	os.Exit(code)
}
