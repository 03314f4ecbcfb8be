package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

func runHeld(env *cliEnv, args []string) int {
	const want = "want list, release, deny or decisions"
	if len(args) == 0 {
		return usageError(env.stderr, "held: %s", want)
	}
	switch args[0] {
	case "list":
		return runHeldList(env, args[1:])
	case "release":
		return runHeldDecide(env, args[1:], true)
	case "deny":
		return runHeldDecide(env, args[1:], false)
	case "decisions":
		return runHeldDecisions(env, args[1:])
	}
	return usageError(env.stderr, "held: unknown command %q, %s", args[0], want)
}

// monthFlag parses the required --month of a held command.
func monthFlag(env *cliEnv, cmd, s string) (collector.Month, int) {
	m, err := collector.ParseMonth(s)
	if err != nil {
		return m, usageError(env.stderr, "%s: --month: %v", cmd, err)
	}
	return m, exitOK
}

// runHeldList prints the devices month M holds, with their reasons and the findings of
// their signals. The ledger is opened read-write: listing a month past its close
// stores it, as claims does.
func runHeldList(env *cliEnv, args []string) int {
	const cmd = "held list"
	fset := flag.NewFlagSet(cmd, flag.ContinueOnError)
	month := fset.String("month", "", "the month, YYYY-MM")
	format := fset.String("format", "json", "json or csv")
	if _, code := parseFlags(env, fset, args, 0); code != exitOK {
		return code
	}
	m, code := monthFlag(env, cmd, *month)
	if code != exitOK {
		return code
	}
	if *format != "json" && *format != "csv" {
		return usageError(env.stderr, "%s: --format %q, want json or csv", cmd, *format)
	}
	c, l, code := offlineCollector(env, ledgerAccess{cmd: cmd,
		hint: fmt.Sprintf("ask it with GET /v1/claims/devices?month=%s&outcome=held", m)})
	if code != exitOK {
		return code
	}
	defer l.Close()
	claims, err := c.Claims(m)
	if err != nil {
		return failed(env.stderr, "%s: %v", cmd, err)
	}
	if err := writeDevices(env, claims, claims.Select(claim.Held), *format); err != nil {
		return failed(env.stderr, "%s: %v", cmd, err)
	}
	return exitOK
}

// runHeldDecide stores the payer's decision on a device month M holds: release pays it
// despite its signals, deny refuses it. It is refused once the month has closed and for
// a device the month does not hold.
func runHeldDecide(env *cliEnv, args []string, release bool) int {
	cmd := "held deny"
	if release {
		cmd = "held release"
	}
	fset := flag.NewFlagSet(cmd, flag.ContinueOnError)
	month := fset.String("month", "", "the month, YYYY-MM")
	device := fset.String("device", "", "the device_id, 64 hex digits")
	by := fset.String("by", "", "who decides")
	why := fset.String("why", "", "why")
	if _, code := parseFlags(env, fset, args, 0); code != exitOK {
		return code
	}
	m, code := monthFlag(env, cmd, *month)
	if code != exitOK {
		return code
	}
	if *device == "" {
		return usageError(env.stderr, "%s: --device DEVICE_ID is required", cmd)
	}
	id, err := proof.ParseHash(*device)
	if err != nil {
		return usageError(env.stderr, "%s: --device %q is not 64 hex digits", cmd, *device)
	}
	for _, f := range []struct {
		name, val string
		max       int
	}{{"by", *by, ledger.MaxByLen}, {"why", *why, ledger.MaxWhyLen}} {
		switch v := strings.TrimSpace(f.val); {
		case v == "":
			return usageError(env.stderr, "%s: --%s is required: every decision is stored with who took it and why", cmd, f.name)
		case len(v) > f.max || !utf8.ValidString(v):
			return usageError(env.stderr, "%s: --%s is not UTF-8 of at most %d bytes", cmd, f.name, f.max)
		}
	}
	c, l, code := offlineCollector(env, ledgerAccess{cmd: cmd,
		hint: fmt.Sprintf(`decide through it with POST /v1/held/%s and the body {"month":"%s","decision":"%s","by":"NAME","why":"TEXT"}`, id, m, decisionName(release))})
	if code != exitOK {
		return code
	}
	defer l.Close()
	d, err := c.Decide(m, id, release, *by, *why)
	// The collector's ErrMonthClosed says when the month closed and that held devices
	// are reviewed before; ErrNotHeld says what the device is instead.
	switch {
	case errors.Is(err, collector.ErrNotHeld):
		return failed(env.stderr, "%s: %v; see amos-collector held list --month %s", cmd, err, m)
	case err != nil:
		return failed(env.stderr, "%s: %v", cmd, err)
	}
	fmt.Fprintf(env.stdout, "%s device %s in %s: stored at %s by %s: %s\n", d.Decision, id, m, rfc3339(d.At), d.By, d.Why)
	return exitOK
}

func decisionName(release bool) string {
	if release {
		return "release"
	}
	return "deny"
}

// decisionView is one decision of the audit trail as held decisions prints it.
type decisionView struct {
	DeviceID string `json:"device_id"`
	Decision string `json:"decision"` // release or deny
	At       string `json:"at"`       // RFC 3339, UTC
	By       string `json:"by"`
	Why      string `json:"why"`
}

// runHeldDecisions prints every decision taken on month M's held devices, by device_id
// then time (the last one of a device is the one in effect), as one JSON object.
func runHeldDecisions(env *cliEnv, args []string) int {
	const cmd = "held decisions"
	fset := flag.NewFlagSet(cmd, flag.ContinueOnError)
	month := fset.String("month", "", "the month, YYYY-MM")
	if _, code := parseFlags(env, fset, args, 0); code != exitOK {
		return code
	}
	m, code := monthFlag(env, cmd, *month)
	if code != exitOK {
		return code
	}
	c, l, code := offlineCollector(env, ledgerAccess{cmd: cmd, hint: fmt.Sprintf("ask it with GET /v1/decisions?month=%s", m)})
	if code != exitOK {
		return code
	}
	defer l.Close()
	ds, err := c.Decisions(m)
	if err != nil {
		return failed(env.stderr, "%s: %v", cmd, err)
	}
	out := struct {
		Month     string         `json:"month"`
		Decisions []decisionView `json:"decisions"`
	}{m.String(), []decisionView{}}
	for _, d := range ds {
		out.Decisions = append(out.Decisions, decisionView{DeviceID: d.DeviceID.String(), Decision: decisionName(d.Release),
			At: rfc3339(d.At), By: d.By, Why: d.Why})
	}
	if err := printJSON(env, out); err != nil {
		return failed(env.stderr, "%s: %v", cmd, err)
	}
	return exitOK
}

// rfc3339 formats unix seconds as RFC 3339 in UTC.
func rfc3339(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }
