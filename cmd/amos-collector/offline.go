package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/proof"
)

// ledgerAccess says how an offline command opens the ledger of data_dir.
type ledgerAccess struct {
	cmd      string // the command, for its messages
	hint     string // the HTTP way to do it while a server holds the ledger
	create   bool   // create the ledger if data_dir has none
	readOnly bool   // open it read-only (a shared lock): nothing is stored
}

// openLedger opens the configured ledger (openConfigured): read-write unless
// a.readOnly, since computing a month past its close stores it. A bbolt file must exist
// unless a.create, and is waited for 200 ms; a running server holds it: the message
// then names a.hint. On failure it prints the error and returns exit 1.
func openLedger(env *cliEnv, cfg *collector.Config, a ledgerAccess) (ledger.Ledger, int) {
	if cfg.Ledger == "" && !a.create && !a.readOnly {
		// The same message as a read-only open: an offline command never makes a ledger.
		if _, err := os.Stat(filepath.Join(cfg.DataDir, ledger.BoltFileName)); err != nil {
			return nil, failed(env.stderr, "%s: collector: ledger: %v", a.cmd, err)
		}
	}
	l, _, err := openConfigured(cfg, a.readOnly, 200*time.Millisecond)
	if err != nil {
		if errors.Is(err, ledger.ErrInUse) {
			return nil, failed(env.stderr, "%s: %v; a running amos-collector holds it: %s", a.cmd, err, a.hint)
		}
		return nil, failed(env.stderr, "%s: %v", a.cmd, err)
	}
	return l, exitOK
}

// openConfigured opens the ledger the configuration names: PostgreSQL when `ledger` is
// a URL, else the bbolt file in data_dir. It returns the ledger and how to name it in
// messages (never with a password).
func openConfigured(cfg *collector.Config, readOnly bool, lockTimeout time.Duration) (ledger.Ledger, string, error) {
	if cfg.Ledger != "" {
		l, err := pgledger.Open(cfg.Ledger, pgledger.Options{ReadOnly: readOnly})
		if err != nil {
			return nil, "", err
		}
		return l, pgledger.Redact(cfg.Ledger), nil
	}
	l, err := ledger.OpenBolt(cfg.DataDir, ledger.BoltOptions{ReadOnly: readOnly, LockTimeout: lockTimeout})
	if err != nil {
		return nil, "", err
	}
	return l, l.Path(), nil
}

// offlineCollector loads the configuration, opens the ledger (openLedger) and returns a
// collector on it with the configuration's options and the command's clock. The caller
// closes the ledger.
func offlineCollector(env *cliEnv, a ledgerAccess) (*collector.Collector, ledger.Ledger, int) {
	cfg, code := env.loadConfig()
	if code != exitOK {
		return nil, nil, code
	}
	l, code := openLedger(env, cfg, a)
	if code != exitOK {
		return nil, nil, code
	}
	opts, status, code := attestationOptions(env, cfg, nil)
	if code != exitOK {
		l.Close()
		return nil, nil, code
	}
	if status != nil {
		// Loaded once: claims computed here use the revocations of this moment.
		if err := status.Refresh(env.ctx); err != nil {
			fmt.Fprintf(env.stderr, "amos-collector: %s: attestation status list: %v\n", a.cmd, err)
		}
	}
	c, err := collector.New(l, opts)
	if err != nil {
		l.Close()
		return nil, nil, failed(env.stderr, "%s: %v", a.cmd, err)
	}
	return c, l, exitOK
}

// devicesView is the JSON form of a month's device outcomes, as GET /v1/claims/devices
// gives it.
type devicesView struct {
	Month    string         `json:"month"`
	Status   string         `json:"status"`
	ClosedAt int64          `json:"closed_at,omitempty"`
	Devices  []claim.Device `json:"devices"`
}

// writeDevices prints devices, outcomes of claim c, as one line of JSON or as CSV.
func writeDevices(env *cliEnv, c *collector.Claims, devices []claim.Device, format string) error {
	if format == "csv" {
		return c.WriteDevicesCSV(env.stdout, devices)
	}
	if devices == nil {
		devices = []claim.Device{}
	}
	return printJSON(env, devicesView{Month: c.Month, Status: c.Status, ClosedAt: c.ClosedAt, Devices: devices})
}

// printJSON prints v as one line of JSON.
func printJSON(env *cliEnv, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "%s\n", b)
	return err
}

// runClaims prints each maker's claim for a month from the ledger in data_dir, or with
// --devices what the claim made of every device. It opens the ledger read-write, so
// that a month past its close moment is computed once and stored (--read-only: computed
// and not stored, for a backup or a data_dir this user may not write). A running server
// holds the ledger: then GET /v1/claims is the way.
func runClaims(env *cliEnv, args []string) int {
	fset := flag.NewFlagSet("claims", flag.ContinueOnError)
	month := fset.String("month", "", "the month, YYYY-MM")
	format := fset.String("format", "json", "json or csv")
	devices := fset.Bool("devices", false, "every device's outcome instead of the makers' rows")
	readOnly := fset.Bool("read-only", false, "open the ledger read-only: a month past its close is computed, not stored")
	if _, code := parseFlags(env, fset, args, 0); code != exitOK {
		return code
	}
	m, err := collector.ParseMonth(*month)
	if err != nil {
		return usageError(env.stderr, "claims: --month: %v", err)
	}
	if *format != "json" && *format != "csv" {
		return usageError(env.stderr, "claims: --format %q, want json or csv", *format)
	}
	hint := fmt.Sprintf("ask it with GET /v1/claims?month=%s", m)
	if *devices {
		hint = fmt.Sprintf("ask it with GET /v1/claims/devices?month=%s", m)
	}
	c, l, code := offlineCollector(env, ledgerAccess{cmd: "claims", hint: hint, readOnly: *readOnly})
	if code != exitOK {
		return code
	}
	defer l.Close()
	claims, err := c.Claims(m)
	if err != nil {
		return failed(env.stderr, "claims: %v", err)
	}
	switch {
	case *devices:
		err = writeDevices(env, claims, claims.Devices, *format)
	case *format == "csv":
		err = claims.WriteCSV(env.stdout)
	default:
		err = printJSON(env, claims.Summary())
	}
	if err != nil {
		return failed(env.stderr, "claims: %v", err)
	}
	return exitOK
}

// runVerify prints the verdict of every record of a batch file, as the server would
// give them to a collector that has seen nothing else: format, signatures and chains
// within the file, dates against this machine's clock, and certificates against the
// makers registry of the configuration when there is one. It exits 0 when every record
// is accepted (or a duplicate of one before it), 1 otherwise.
func runVerify(env *cliEnv, args []string) int {
	pos, code := parseFlags(env, flag.NewFlagSet("verify", flag.ContinueOnError), args, 1)
	if code != exitOK {
		return code
	}
	file := pos[0]
	var registry collector.Registry
	_, statErr := os.Stat(env.config)
	if env.configGiven || !errors.Is(statErr, fs.ErrNotExist) {
		cfg, code := env.loadConfig()
		if code != exitOK {
			return code
		}
		registry = cfg.Registry()
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return failed(env.stderr, "verify: %v", err)
	}
	records, err := proof.DecodeBatch(body)
	if err != nil {
		return failed(env.stderr, "verify: %s is not a batch: %v", file, err)
	}
	c, err := collector.New(ledger.NewMem(), collector.Options{Makers: registry, Now: env.now})
	if err != nil {
		return failed(env.stderr, "verify: %v", err)
	}
	rc, err := c.Ingest(records)
	if err != nil {
		return failed(env.stderr, "verify: %v", err)
	}
	if registry == nil {
		fmt.Fprintf(env.stdout, "# no configuration at %s: certificates are checked for format only\n", env.config)
	}
	counts := map[collector.Status]int{}
	for i, r := range rc.Results {
		counts[r.Status]++
		fmt.Fprintf(env.stdout, "%d\tdevice %s epoch %d seq %d\t%s\n", i+1, r.DeviceID, r.Epoch, r.Seq, r)
	}
	fmt.Fprintf(env.stdout, "%s: %d records: %d accepted, %d duplicate, %d retry, %d rejected\n", file, len(records),
		counts[collector.StatusAccepted], counts[collector.StatusDuplicate], counts[collector.StatusRetry], counts[collector.StatusRejected])
	if counts[collector.StatusAccepted]+counts[collector.StatusDuplicate] != len(records) {
		return exitFailed
	}
	return exitOK
}
