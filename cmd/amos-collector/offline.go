package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// runClaims prints each maker's claim for a month from the ledger in data_dir. A
// running server holds the ledger: then GET /v1/claims is the way.
func runClaims(env *cliEnv, args []string) int {
	fset := flag.NewFlagSet("claims", flag.ContinueOnError)
	month := fset.String("month", "", "the month, YYYY-MM")
	format := fset.String("format", "json", "json or csv")
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
	cfg, code := env.loadConfig()
	if code != exitOK {
		return code
	}
	l, err := ledger.OpenBolt(cfg.DataDir, ledger.BoltOptions{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		if errors.Is(err, ledger.ErrInUse) {
			return failed(env.stderr, "claims: %v; a running amos-collector holds it: ask it with GET /v1/claims?month=%s", err, m)
		}
		return failed(env.stderr, "claims: %v", err)
	}
	defer l.Close()
	c, err := collector.New(l, collector.Options{Makers: cfg.Registry(), Eligibility: cfg.Eligibility, Now: env.now})
	if err != nil {
		return failed(env.stderr, "claims: %v", err)
	}
	claims, err := c.Claims(m)
	if err != nil {
		return failed(env.stderr, "claims: %v", err)
	}
	if *format == "csv" {
		if err := claims.WriteCSV(env.stdout); err != nil {
			return failed(env.stderr, "claims: %v", err)
		}
		return exitOK
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return failed(env.stderr, "claims: %v", err)
	}
	fmt.Fprintf(env.stdout, "%s\n", b)
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
