package main

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/agent/selftest"
	"amos.example/amosd/internal/inspect"
	"amos.example/amosd/internal/jsonlite"
	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// parseFlags parses a command's flags; extra arguments are refused unless allowed. For
// -h or --help among the flags it prints the command's usage on stdout and returns
// exitHelp, which run turns into exit 0.
func parseFlags(env *cliEnv, name string, args []string, positional int, define func(fs *flagSet)) (*flagSet, int) {
	fs := newFlagSet()
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		if c, ok := findCommand(name); ok && errors.Is(err, errHelp) {
			commandUsage(env.stdout, c)
			return nil, exitHelp
		}
		return nil, usageError(env.stderr, "%s: %v", name, err)
	}
	if fs.NArg() != positional {
		return nil, usageError(env.stderr, "%s: want %d argument(s), got %q", name, positional, strings.Join(fs.Args(), " "))
	}
	return fs, exitOK
}

// dial connects to the running daemon named by the configuration.
func dial(env *cliEnv) (*dbusapi.Client, context.Context, context.CancelFunc, int) {
	cfg, code := loadConfig(env)
	if cfg == nil {
		return nil, nil, nil, code
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbusapi.FlushTimeout+5*time.Second)
	c, err := dbusapi.Dial(ctx, cfg.Bus)
	if err != nil {
		cancel()
		fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		return nil, nil, nil, exitUnreachable
	}
	return c, ctx, cancel, exitOK
}

// callResult maps a client error to the exit codes of docs/dbus-api.md.
func callResult(env *cliEnv, err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, dbusapi.ErrUnreachable):
		fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		return exitUnreachable
	}
	fmt.Fprintf(env.stderr, "amosd: %v\n", err)
	return exitFailed
}

// statusKeys is the order of `amosd status` (docs/dbus-api.md's keys).
var statusKeys = []string{"version", "device_id", "epoch", "last_seq", "queued", "dead_letter", "consent",
	"today_date", "today_interactive_seconds", "last_sync_unix", "last_sync_result", "next_retry_unix",
	"clock_trusted", "spoofed_signals", "store_bytes", "sources", "cert_problem", "last_recovery"}

func runStatus(env *cliEnv, args []string) int {
	var asJSON bool
	if _, code := parseFlags(env, "status", args, 0, func(fs *flagSet) { fs.BoolVar(&asJSON, "json") }); code != exitOK {
		return code
	}
	c, ctx, cancel, code := dial(env)
	if c == nil {
		return code
	}
	defer cancel()
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return callResult(env, err)
	}
	if asJSON {
		return writeJSON(env, st)
	}
	for _, k := range statusKeys {
		v, ok := st[k]
		if !ok {
			continue
		}
		fmt.Fprintf(env.stdout, "%-26s %s\n", k+":", humanValue(k, v))
	}
	return exitOK
}

// humanValue formats a status value for people: dates and times readable.
func humanValue(key string, v any) string {
	switch x := v.(type) {
	case int64:
		if strings.HasSuffix(key, "_unix") {
			if x == 0 {
				return "never"
			}
			return time.Unix(x, 0).UTC().Format(time.RFC3339)
		}
	case uint32:
		if key == "today_date" && x != 0 {
			return proof.Date(x).String()
		}
	case []string:
		if len(x) == 0 {
			return "none"
		}
		return strings.Join(x, ", ")
	case map[string]any: // last_recovery
		at, _ := x["at"].(int64)
		out := fmt.Sprintf("%s: %v (moved to %v, %v queued records salvaged)", time.Unix(at, 0).UTC().Format(time.RFC3339), x["cause"], x["corrupt_path"], x["salvaged"])
		if _, ok := x["new_epoch"]; ok {
			out += fmt.Sprintf("; epoch %v -> %v, consent from %v", x["old_epoch"], x["new_epoch"], x["consent"])
		}
		return out
	case string:
		if x == "" {
			return "-"
		}
	}
	return fmt.Sprint(v)
}

// writeJSON prints v as encoding/json's Encoder with SetIndent("", "  ") would; v is
// made of the types jsonlite.Append takes.
func writeJSON(env *cliEnv, v any) int {
	b, ok := jsonlite.Append(nil, v, "  ")
	if !ok {
		fmt.Fprintf(env.stderr, "amosd: cannot write a %T as JSON\n", v)
		return exitFailed
	}
	if _, err := env.stdout.Write(append(b, '\n')); err != nil {
		fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func runFlush(env *cliEnv, args []string) int {
	if _, code := parseFlags(env, "flush", args, 0, nil); code != exitOK {
		return code
	}
	c, ctx, cancel, code := dial(env)
	if c == nil {
		return code
	}
	defer cancel()
	defer c.Close()
	accepted, queued, err := c.Flush(ctx)
	if err != nil {
		return callResult(env, err)
	}
	fmt.Fprintf(env.stdout, "accepted: %d\nqueued:   %d\n", accepted, queued)
	return exitOK
}

func runReport(env *cliEnv, args []string) int {
	fs, code := parseFlags(env, "report", args, 1, nil)
	if fs == nil {
		return code
	}
	event := fs.Arg(0)
	if _, ok := dbusapi.ReportEvent(event); !ok {
		return usageError(env.stderr, "report: unknown event %q: want screen_on, screen_off, unlocked, locked or input", event)
	}
	c, ctx, cancel, code := dial(env)
	if c == nil {
		return code
	}
	defer cancel()
	defer c.Close()
	if err := c.Report(ctx, event); err != nil {
		return callResult(env, err)
	}
	fmt.Fprintf(env.stdout, "reported %s\n", event)
	return exitOK
}

func runConsent(env *cliEnv, args []string) int {
	fs, code := parseFlags(env, "consent", args, 1, nil)
	if fs == nil {
		return code
	}
	var granted bool
	switch fs.Arg(0) {
	case "on":
		granted = true
	case "off":
	default:
		return usageError(env.stderr, "consent: want on or off, got %q", fs.Arg(0))
	}
	c, ctx, cancel, code := dial(env)
	if c == nil {
		return code
	}
	defer cancel()
	defer c.Close()
	if err := c.SetConsent(ctx, granted); err != nil {
		return callResult(env, err)
	}
	fmt.Fprintf(env.stdout, "consent %s\n", fs.Arg(0))
	return exitOK
}

func runSelftest(env *cliEnv, args []string) int {
	var asJSON bool
	if _, code := parseFlags(env, "selftest", args, 0, func(fs *flagSet) { fs.BoolVar(&asJSON, "json") }); code != exitOK {
		return code
	}
	checks := selftest.Run(context.Background(), env.config, time.Now())
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if asJSON {
		writeJSON(env, map[string]any{"ok": failed == 0, "checks": checksJSON(checks)})
	} else {
		for _, c := range checks {
			mark := "ok  "
			switch {
			case !c.OK:
				mark = "FAIL"
			case c.Warn:
				mark = "WARN"
			}
			fmt.Fprintf(env.stdout, "%s %-18s %s\n", mark, c.Name, c.Detail)
			if c.Fix != "" {
				fmt.Fprintf(env.stdout, "     %-18s fix: %s\n", "", c.Fix)
			}
		}
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

func runIdentity(env *cliEnv, args []string) int {
	var asJSON bool
	var makerID, serialTag, chainFile string
	if _, code := parseFlags(env, "identity", args, 0, func(fs *flagSet) {
		fs.BoolVar(&asJSON, "json")
		fs.StringVar(&makerID, "maker-id")
		fs.StringVar(&serialTag, "serial-tag")
		fs.StringVar(&chainFile, "chain")
	}); code != exitOK {
		return code
	}
	cfg, code := loadConfig(env)
	if cfg == nil {
		return code
	}
	o := identity.OptionsFor(cfg)
	if makerID != "" || serialTag != "" {
		if cfg.Key.Backend != config.KeyBackendKeystore {
			return usageError(env.stderr, "identity: --maker-id and --serial-tag make an attested keystore key, but key.backend is %q", cfg.Key.Backend)
		}
		if !proof.ValidMakerID(makerID) {
			return usageError(env.stderr, "identity: --maker-id %q: want the maker_id of the certificate, [a-z0-9-]{1,32}", makerID)
		}
		var tag [32]byte
		if n, err := hex.Decode(tag[:], []byte(serialTag)); err != nil || n != len(tag) || len(serialTag) != 2*len(tag) {
			return usageError(env.stderr, "identity: --serial-tag %q: want the serial tag of the certificate, 64 hex digits", serialTag)
		}
		o.Challenge = proof.AttestationChallenge(makerID, tag)
	}
	ctx, cancel := context.WithTimeout(context.Background(), keystore.DefaultGenerateTimeout+keystore.DefaultTimeout)
	defer cancel()
	id, err := identity.Open(ctx, o)
	if err != nil {
		fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		if errors.Is(err, identity.ErrIdentity) {
			return exitUsage
		}
		return exitFailed
	}
	out := map[string]any{"device_id": id.DeviceID.String(), "public_key": id.PublicKey.String(), "generated": id.Generated,
		"key_type": id.PublicKey.Type().String(), "backend": id.Backend, "chain_length": len(id.Chain)}
	if id.Backend == identity.BackendKeystore {
		out["key_alias"] = cfg.Key.Alias
	}
	cert := "absent"
	switch {
	case id.Cert != nil:
		cert = "valid"
		out["maker_id"], out["model"] = id.Cert.MakerID, id.Cert.Model
		out["serial_tag"] = fmt.Sprintf("%x", id.Cert.SerialTag)
		out["issued_at"] = id.Cert.IssuedAt
	case id.CertProblem != "":
		cert = "ignored"
		out["certificate_problem"] = id.CertProblem
	}
	out["certificate"] = cert
	if chainFile != "" {
		var b []byte
		for _, der := range id.Chain {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		}
		if len(b) == 0 {
			fmt.Fprintf(env.stderr, "amosd: identity: --chain %s: this key has no attestation chain (backend %s)\n", chainFile, id.Backend)
			return exitFailed
		}
		if err := os.WriteFile(chainFile, b, 0o644); err != nil {
			fmt.Fprintf(env.stderr, "amosd: identity: %v\n", err)
			return exitFailed
		}
	}
	if asJSON {
		return writeJSON(env, out)
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(env.stdout, "%-20s %v\n", k+":", out[k])
	}
	return exitOK
}

func runInspect(env *cliEnv, args []string) int {
	var dir string
	var asJSON, raw bool
	if _, code := parseFlags(env, "inspect", args, 0, func(fs *flagSet) {
		fs.StringVar(&dir, "data")
		fs.BoolVar(&asJSON, "json")
		fs.BoolVar(&raw, "raw")
	}); code != exitOK {
		return code
	}
	if dir == "" {
		return usageError(env.stderr, "inspect: --data DIR is required")
	}
	if asJSON && raw {
		return usageError(env.stderr, "inspect: --json and --raw exclude each other")
	}
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			fmt.Fprintf(env.stderr, "amosd: %s is in use by a running amosd: stop it first, or ask it with amosd status\n", dir)
		} else {
			fmt.Fprintf(env.stderr, "amosd: inspect: %v\n", err)
		}
		return exitFailed
	}
	defer s.Close()
	rep, err := inspect.Read(s)
	if err != nil {
		fmt.Fprintf(env.stderr, "amosd: inspect: %v\n", err)
		return exitFailed
	}
	switch {
	case raw:
		var b []byte
		for _, r := range rep.Raw {
			b = append(b, byte(len(r)>>8), byte(len(r)))
			b = append(b, r...)
		}
		if _, err := env.stdout.Write(b); err != nil {
			return exitFailed
		}
		return exitOK
	case asJSON:
		return writeJSON(env, inspectJSON(rep))
	}
	fmt.Fprintf(env.stdout, "store:      %s (%d bytes of %d)\n", rep.Path, rep.FileBytes, rep.MaxBytes)
	if rep.Head != nil {
		fmt.Fprintf(env.stdout, "chain head: device %s epoch %d seq %d, last date %s\n", rep.Head.DeviceID, rep.Head.Epoch, rep.Head.Seq, dateOrNone(rep.Head.LastDate))
	} else {
		fmt.Fprintln(env.stdout, "chain head: none")
	}
	fmt.Fprintf(env.stdout, "consent:    %s\n", rep.Consent)
	if rep.Tally != nil {
		t := rep.Tally
		fmt.Fprintf(env.stdout, "tally:      %s: %d s, %d unlocks, %d screen_ons, hours %024b\n", dateOrNone(t.Date), t.InteractiveSeconds, t.Unlocks, t.ScreenOns, t.ActiveHours)
	}
	fmt.Fprintf(env.stdout, "queued:     %d\n", len(rep.Queue))
	for _, q := range rep.Queue {
		fmt.Fprintf(env.stdout, "  epoch %d seq %-5d %s\n", q.Epoch, q.Seq, q.What)
	}
	fmt.Fprintf(env.stdout, "dead:       %d (evicted: %d queued, %d dead-letter)\n", len(rep.Dead), rep.EvictedQueued, rep.EvictedDead)
	for _, d := range rep.Dead {
		fmt.Fprintf(env.stdout, "  epoch %d seq %-5d %s (%s)\n", d.Epoch, d.Seq, d.Reason, time.Unix(d.At, 0).UTC().Format(time.RFC3339))
	}
	if rep.Recovery != nil {
		fmt.Fprintf(env.stdout, "recovered:  %s from %s: %s\n", time.Unix(rep.Recovery.At, 0).UTC().Format(time.RFC3339), rep.Recovery.CorruptPath, rep.Recovery.Cause)
	}
	return exitOK
}

// dateOrNone is d as YYYY-MM-DD, or "none" for 0: no day minted yet.
func dateOrNone(d proof.Date) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

// checksJSON is the "checks" list of `amosd selftest --json`: the keys of selftest.Check's
// json tags, in their order.
func checksJSON(checks []selftest.Check) []jsonlite.Obj {
	out := make([]jsonlite.Obj, len(checks))
	for i, c := range checks {
		out[i] = jsonlite.O("check", c.Name, "ok", c.OK)
		if c.Warn {
			out[i] = append(out[i], jsonlite.Field{Key: "warn", Value: true})
		}
		out[i] = append(out[i], jsonlite.Field{Key: "detail", Value: c.Detail})
		if c.Fix != "" {
			out[i] = append(out[i], jsonlite.Field{Key: "fix", Value: c.Fix})
		}
	}
	return out
}

// inspectJSON returns the JSON object of rep for `amosd inspect --json`: the object
// encoding/json would make of inspect.Report from its tags, snake_case throughout as in
// `amosd status --json`.
func inspectJSON(rep *inspect.Report) jsonlite.Obj {
	var head, tally any
	if h := rep.Head; h != nil {
		head = jsonlite.O("device_id", h.DeviceID, "epoch", h.Epoch, "seq", h.Seq, "hash", h.Hash, "last_date", uint32(h.LastDate))
	}
	if t := rep.Tally; t != nil {
		tally = jsonlite.O("date", uint32(t.Date), "utc_offset_minutes", t.UTCOffsetMinutes,
			"interactive_seconds", t.InteractiveSeconds, "unlocks", t.Unlocks, "screen_ons", t.ScreenOns,
			"active_hours", t.ActiveHours, "flags", t.Flags, "saved_at", t.SavedAt,
			"saved_boot_id", t.SavedBootID, "saved_uptime_ms", t.SavedUptimeMS, "state", t.State)
	}
	records := func(list []inspect.Record) []jsonlite.Obj {
		if list == nil {
			return nil
		}
		out := make([]jsonlite.Obj, len(list))
		for i, r := range list {
			out[i] = jsonlite.O("epoch", r.Epoch, "seq", r.Seq, "what", r.What)
			if r.Reason != "" {
				out[i] = append(out[i], jsonlite.Field{Key: "reason", Value: r.Reason})
			}
			if r.At != 0 {
				out[i] = append(out[i], jsonlite.Field{Key: "at", Value: r.At})
			}
		}
		return out
	}
	obj := jsonlite.O("path", rep.Path, "file_bytes", rep.FileBytes, "max_bytes", rep.MaxBytes,
		"chain_head", head, "consent", rep.Consent, "tally", tally,
		"queue", records(rep.Queue), "dead_letter", records(rep.Dead),
		"evicted_queued", rep.EvictedQueued, "evicted_dead_letter", rep.EvictedDead)
	if r := rep.Recovery; r != nil {
		obj = append(obj, jsonlite.Field{Key: "last_recovery", Value: jsonlite.O(
			"at", r.At, "corrupt_path", r.CorruptPath, "cause", r.Cause, "salvaged", r.Salvaged)})
	}
	return obj
}
