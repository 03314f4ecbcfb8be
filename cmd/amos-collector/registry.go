package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/sales"
)

func runRegistry(env *cliEnv, args []string) int {
	if len(args) == 0 {
		return usageError(env.stderr, "registry: want import")
	}
	if args[0] == "import" {
		return runRegistryImport(env, args[1:])
	}
	return usageError(env.stderr, "registry: unknown command %q, want import", args[0])
}

// runRegistryImport adds the sold handsets of a CSV or JSON file to the sales registry
// of the ledger in data_dir (created if there is none yet), all or nothing: a bad row
// refuses the whole file, naming its line. A running server holds the ledger: then
// POST /v1/registry is the way.
func runRegistryImport(env *cliEnv, args []string) int {
	pos, code := parseFlags(env, flag.NewFlagSet("registry import", flag.ContinueOnError), args, 1)
	if code != exitOK {
		return code
	}
	file := pos[0]
	const cmd = "registry import"
	body, err := os.ReadFile(file)
	if err != nil {
		return failed(env.stderr, "%s: %v; nothing was imported", cmd, err)
	}
	c, l, code := offlineCollector(env, ledgerAccess{cmd: cmd, create: true,
		hint: "import through it with POST /v1/registry (the payer's token; Content-Type text/csv or application/json)"})
	if code != exitOK {
		return code
	}
	defer l.Close()
	rows, err := sales.Parse(file, body, c.SalesZone())
	if err == nil {
		var res collector.ImportResult
		res, err = c.ImportSales(file, rows)
		if err == nil {
			fmt.Fprintf(env.stdout, "imported %d sales from %s (%d already registered)\n", res.Added, file, res.Unchanged)
			return exitOK
		}
	}
	// A bad row is the file's fault: its own message names the file, line, field and
	// value. Anything else is the ledger's, whose transaction applied nothing either.
	var re *sales.RowError
	if errors.As(err, &re) {
		return failed(env.stderr, "%s: %v; nothing was imported", cmd, re)
	}
	return failed(env.stderr, "%s: %v; nothing was imported", cmd, err)
}
