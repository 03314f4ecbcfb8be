package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/internal/devkeystore"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/pgtest"
	"amos.example/amosd/tools/fleetsim"
)

// Options configure the demo.
type Options struct {
	Repo    string // the repository: testdata/dbus/system-like.conf, ./cmd/...
	Out     string // everything goes here (out/demo), wiped first
	Devices int    // simulated devices (1,000)
	// Amosd, Collector and Keystored (amos-keystored) are built binaries; each one
	// empty is built into Out/bin.
	Amosd, Collector, Keystored string
	// Quick skips the wait for the real midnight: the real amosd uploads only its
	// genesis (tests).
	Quick bool
	// Keep leaves everything running after the report until ctx is done.
	Keep bool
	// Today is the demo's date (UTC), the machine's when zero: the fleet simulates the
	// month before it, and the collector's clock is shifted by whole days to it (a
	// build with the tag amosfakeclock, $AMOS_COLLECTOR_CLOCK_SHIFT). The time of day
	// stays the machine's, so the real amosd's local midnight is the same instant.
	Today time.Time
	// Ledger is the collector's ledger: "" for bbolt in Out/collector, LedgerPostgres for
	// a PostgreSQL server that the demo starts in Out/postgres (rigs/pgtest's launcher)
	// and stops with the rest.
	Ledger string
	Stdout io.Writer
}

// LedgerPostgres is the Options.Ledger of a local PostgreSQL server.
const LedgerPostgres = "postgres"

// Result is what the demo checked, for its test.
type Result struct {
	Fleet      *fleetsim.MonthResult
	DeviceID   string
	Device     *collector.DeviceReport
	MintedDate proof.Date // the real amosd's day, 0 in quick mode
	URL        string     // the collector's, stopped by now
	Elapsed    time.Duration
}

// makers are the fleet's; realMaker makes the real amosd's handset, and is the one
// maker whose devices must be attested (its attestation "required"): the fleet's
// simulated phones carry no chain.
var makers = []string{"konka", "tcl", "zte"}

const realMaker = "hisense"

// realSerial is the serial tag of the real amosd's handset (an HMAC of the IMEI on a
// real one).
var realSerial = sha256.Sum256([]byte("IMEI 860000000000042"))

// keyAlias is the real amosd's key in the keystore (key.alias, the default).
const keyAlias = "amosd-device"

// closeAfterDays is when the demo's collector closes a month, in days after its end:
// the month before today is still open on any day of this one.
const closeAfterDays = 40

// demo holds the running parts.
type demo struct {
	o        Options
	out      string
	logs     string
	bus      *proc
	col      *proc
	ks       *proc // amos-keystored
	amosd    *proc
	pm       *dbus.Conn
	sockDir  string
	busAddr  string
	url      string
	caFile   string
	payer    string
	tokens   map[string]string
	shift    time.Duration // Options.Today's date minus the machine's, in whole days
	env      []string      // added to every child's environment
	amosdCfg string
	colCfg   string
	bin      struct{ amosd, collector, keystored string }
	// auth is the development attestation authority of the demo's keystore; bootKey its
	// default verifiedBootKey, the one realMaker's builds are approved with.
	auth    *devattest.Authority
	authDir string
	bootKey string
	factory string // what the factory step did, for the report
	pg      *pgtest.Server
	pgURL   string // the ledger's database on pg
}

// Run runs the demo; it stops every process it started before it returns.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	began := time.Now()
	if o.Devices <= 0 {
		o.Devices = 1000
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Ledger != "" && o.Ledger != LedgerPostgres {
		return nil, fmt.Errorf("--ledger %q: want %q (a local PostgreSQL server) or none (bbolt)", o.Ledger, LedgerPostgres)
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	repo, err := filepath.Abs(o.Repo)
	if err != nil {
		return nil, err
	}
	o.Repo = repo
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	d := &demo{o: o, out: out, logs: filepath.Join(out, "logs"), tokens: map[string]string{}}
	if !o.Today.IsZero() {
		d.shift = dayShift(time.Now(), o.Today)
		d.env = []string{fmt.Sprintf("AMOS_COLLECTOR_CLOCK_SHIFT=%s", d.shift)}
	}
	if d.shift != 0 && !o.Quick {
		// amosd believes no server_time that its wall clock disputes until a second
		// answer 15 minutes later confirms it (docs/protocol.md, "Trusted time"): on a
		// shifted date its midnight would be the machine's, not the collector's.
		fmt.Fprintf(o.Stdout, "demo: on %s the real amosd only uploads its genesis (it does not believe a collector clock that its own wall clock disputes); the fleet plays the month as usual\n", o.Today.Format(time.DateOnly))
		o.Quick, d.o.Quick = true, true
	}
	for _, dir := range []string{d.logs, filepath.Join(out, "makers"), filepath.Join(out, "amosd", "persist")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	defer func() {
		if cerr := d.cleanup(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	say := func(format string, args ...any) {
		fmt.Fprintf(o.Stdout, "[%5.1fs] "+format+"\n", append([]any{time.Since(began).Seconds()}, args...)...)
	}
	res = &Result{}

	// 1. The binaries, the development CA, the development attestation authority of
	// the keystore, the makers (amos-collector maker keygen).
	if err := d.build(ctx, say); err != nil {
		return nil, err
	}
	pki, err := fleetsim.NewPKI(filepath.Join(out, "pki"), 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	d.caFile = pki.CAFile
	// amos-keystored's own authority code (it loads this directory at start): a root
	// that only this demo's collector trusts, never a production one.
	d.authDir = filepath.Join(out, "keystore", "authority")
	if d.auth, _, err = devkeystore.LoadAuthority(d.authDir, "Amos demo development keystore"); err != nil {
		return nil, err
	}
	d.bootKey = hex.EncodeToString(devattest.BootKey(d.auth.Name()))
	var makerCfg []map[string]any
	var simMakers []string
	for _, m := range append(append([]string{}, makers...), realMaker) {
		prefix := filepath.Join(out, "makers", m)
		if _, err := d.run(ctx, d.bin.collector, "maker", "keygen", "--out", prefix); err != nil {
			return nil, err
		}
		pub, err := os.ReadFile(prefix + ".pub")
		if err != nil {
			return nil, err
		}
		d.tokens[m] = randomHex()
		if err := os.WriteFile(prefix+".token", []byte(d.tokens[m]+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg := map[string]any{"id": m, "public_key": strings.TrimSpace(string(pub)), "token_sha256": fleetsim.TokenHash(d.tokens[m])}
		if m == realMaker {
			// Its handsets are paid only with a chain the payer's roots accept, from a
			// locked handset that booted a build it approved.
			cfg["attestation"], cfg["boot_keys"] = "required", []string{d.bootKey}
		} else {
			simMakers = append(simMakers, m+"="+prefix+".key:"+d.tokens[m])
		}
		makerCfg = append(makerCfg, cfg)
	}
	d.payer = randomHex()
	if err := os.WriteFile(filepath.Join(out, "payer.token"), []byte(d.payer+"\n"), 0o600); err != nil {
		return nil, err
	}
	say("built amosd, amos-keystored and amos-collector, made a development CA, a DEVELOPMENT attestation authority (%s: no payer may trust it in production) and %d makers (amos-collector maker keygen)",
		rel(d.authDir), len(makers)+1)

	// 2. The collector, over TLS.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	res.URL = d.url
	d.colCfg = filepath.Join(out, "collector.json")
	colCfg := map[string]any{
		"listen": fmt.Sprintf("127.0.0.1:%d", port), "tls_cert": pki.CertFile, "tls_key": pki.KeyFile,
		"data_dir": filepath.Join(out, "collector"), "makers": makerCfg, "payer_token_sha256": fleetsim.TokenHash(d.payer),
		// The fleet plays the month before today in minutes: it must still be open (by
		// default a month closes 10 days after its end, and its records are late after).
		"claims": map[string]any{"close_after_days": closeAfterDays, "utc_offset_minutes": 480},
		// Google's roots (the default) and the demo keystore's development root.
		"attestation": map[string]any{"roots": []string{filepath.Join(d.authDir, devattest.RootFile)}},
		// The fleet's 1,000 phones upload from one address: the per-address limit (10
		// requests a second) would stretch their month to half an hour.
		"limits": map[string]any{"address_requests_per_second": 0},
	}
	ledgerName := rel(filepath.Join(out, "collector", "collector.db"))
	if o.Ledger == LedgerPostgres {
		if err := d.startPostgres(say); err != nil {
			return nil, err
		}
		colCfg["ledger"] = d.pgURL
		ledgerName = pgledger.Redact(d.pgURL)
	}
	if err := writeJSON(d.colCfg, colCfg); err != nil {
		return nil, err
	}
	if d.col, err = start("amos-collector", filepath.Join(d.logs, "collector.log"), d.env, d.bin.collector, "--config", d.colCfg, "serve"); err != nil {
		return nil, err
	}
	if err := d.col.waitFor(ctx, "serving https on", 1, 30*time.Second); err != nil {
		return nil, err
	}
	if d.shift != 0 && d.col.find("clock shifted by") == "" {
		return nil, fmt.Errorf("%s is not a fake-clock build (-tags amosfakeclock): its clock cannot be moved to %s", d.bin.collector, o.Today.Format(time.DateOnly))
	}
	say("amos-collector serves %s (ledger %s)", d.url, ledgerName)

	// 3. The fleet, in the background: a month of 1,000 simulated phones.
	srv, err := fleetsim.OpenServer(fleetsim.ServerConfig{URL: d.url, CAFile: d.caFile, PayerToken: d.payer, MakerKeys: simMakers, Now: d.now})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	// The payer's sales registry: the real amosd's handset is sold by realMaker (the
	// fleet registers its own handsets before it uploads).
	sold, err := srv.RegisterSales([]sales.Sale{{SerialTag: realSerial, MakerID: realMaker,
		SoldAt: proof.DateOf(d.now().AddDate(0, 0, -1), 480), Channel: "taobao"}})
	if err != nil {
		return nil, err
	}
	say("the payer registered the real amosd's handset as sold by %s (POST /v1/registry: %d added)", realMaker, sold.Added)
	month := fleetsim.PreviousMonth(d.now())
	var fleetOut bytes.Buffer
	fleetLog, err := os.Create(filepath.Join(d.logs, "fleetsim.log"))
	if err != nil {
		return nil, err
	}
	defer fleetLog.Close()
	var fleetErr error
	var wg sync.WaitGroup
	wg.Add(1)
	fctx, stopFleet := context.WithCancel(ctx)
	defer func() { stopFleet(); wg.Wait() }()
	go func() {
		defer wg.Done()
		res.Fleet, fleetErr = fleetsim.RunMonth(fctx, fleetsim.MonthConfig{Devices: o.Devices, Month: month, Seed: 1, Workers: 16,
			Stores: min(20, o.Devices), Dir: filepath.Join(out, "fleet"), Server: srv, Out: &fleetOut,
			Logf: func(f string, a ...any) { fmt.Fprintf(fleetLog, f+"\n", a...) }})
	}()
	say("fleet simulator: %d phones, month %s, running (real signing, stores, transport over TLS)", o.Devices, month)

	// 4. The bus, the platform's keystore (amos-keystored, the DEVELOPMENT reference
	// implementation of com.amos.Keystore1), its power manager (this program, owning
	// com.amos.PowerManager) and the real amosd.
	if err := d.startBus(ctx); err != nil {
		return nil, err
	}
	if err := d.startKeystore(ctx); err != nil {
		return nil, err
	}
	say("amos-keystored serves com.amos.Keystore1: the DEVELOPMENT keystore (software keys, development root; NOT FOR PRODUCTION: a handset needs its vendor's, on the TEE)")
	if err := d.becomePowerManager(); err != nil {
		return nil, err
	}
	offset := 480
	if !o.Quick {
		offset = offsetToMidnight(d.now(), 20*time.Second, 80*time.Second)
	}
	day := proof.DateOf(d.now(), offset)
	if err := d.startAmosd(ctx, offset, res); err != nil {
		return nil, err
	}
	say("the factory: %s; %s certified it (amos-collector maker certify)", d.factory, realMaker)
	say("amosd runs (device %s..., maker %s, key.backend keystore, zone UTC%+d:%02d); its genesis, with the key's chain, is accepted", res.DeviceID[:12], realMaker, offset/60, abs(offset%60))

	// 5. The owner uses the phone: real D-Bus signals from the owner of com.amos.PowerManager.
	if !o.Quick {
		midnight := day.Next().Start(offset).Add(-d.shift) // on the machine's clock
		say("the owner uses the phone until just before local midnight (%s away)", time.Until(midnight).Round(time.Second))
		if err := d.use(ctx, midnight.Add(-3*time.Second)); err != nil {
			return nil, err
		}
		if proof.DateOf(d.now(), offset) != day {
			return nil, errors.New("local midnight came before the use was over: the machine is too slow")
		}
		if err := d.amosd.waitFor(ctx, "minted epoch 1 seq 2: "+day.String(), 1, time.Until(midnight)+30*time.Second); err != nil {
			return nil, err
		}
		if err := d.amosd.waitFor(ctx, "sync: ok: 1 accepted", 2, 30*time.Second); err != nil {
			return nil, err
		}
		res.MintedDate = day
		minted := d.amosd.find("minted epoch 1 seq 2: ")
		say("local midnight: amosd %s; uploaded", minted[strings.Index(minted, "minted epoch"):])
	} else {
		d.emit("ScreenChanged", true)
		d.emit("LockChanged", false)
		d.emit("UserActivity")
		if err := d.amosd.waitFor(ctx, "event: amos-power unlocked", 1, 10*time.Second); err != nil {
			return nil, err
		}
	}
	status, _ := d.run(ctx, d.bin.amosd, "--config", d.amosdCfg, "status")

	// 6. The fleet's month, the claims, the real device.
	wg.Wait()
	if fleetErr != nil {
		fmt.Fprint(o.Stdout, fleetOut.String())
		return res, fmt.Errorf("fleet: %w", fleetErr)
	}
	os.WriteFile(filepath.Join(out, "fleet.txt"), fleetOut.Bytes(), 0o644)
	say("fleet done")
	fmt.Fprintln(o.Stdout)
	fmt.Fprint(o.Stdout, fleetOut.String())
	id, _ := proof.ParseHash(res.DeviceID)
	view, _, err := srv.Device(id, d.tokens[realMaker])
	if err != nil {
		return res, err
	}
	res.Device = view
	devMonth := collector.MonthOf(day)
	fmt.Fprintf(o.Stdout, "\nthe real amosd (device %s, maker %s, %s key in amos-keystored):\n", res.DeviceID, view.MakerID, view.KeyType)
	fmt.Fprintf(o.Stdout, "  %s\n", verdictLine(view))
	for _, e := range view.Epochs {
		fmt.Fprintf(o.Stdout, "  epoch %d: head seq %d, last date %s, %d days accepted\n", e.Epoch, e.HeadSeq, orDash(e.LastDate), e.Accepted)
	}
	for _, m := range view.Months {
		fmt.Fprintf(o.Stdout, "  %s: %d reported day(s), %d active (a day is active with >= 120 s and an unlock; 10 active days are paid)\n",
			m.Month, m.ReportedDays, m.ActiveDays)
	}
	if devMonth != month {
		if c, err := srv.Claims(devMonth, d.payer); err == nil {
			fmt.Fprintln(o.Stdout)
			fleetsim.PrintClaims(o.Stdout, c, nil)
			for _, row := range c.Rows {
				if row.MakerID == realMaker {
					fmt.Fprintf(o.Stdout, "  %s: %d attested device(s) in %s (attestation required: an unattested one is refused not_attested)\n", realMaker, row.Attested, devMonth)
				}
			}
		}
	}
	fmt.Fprintf(o.Stdout, "\n$ amosd status   (the real daemon, over D-Bus)\n%s", indent(status, "  "))
	if a := view.Attestation; a == nil || !a.Accepted || view.AttestationRevoked != "" {
		return res, fmt.Errorf("the real device is not attested: %s", verdictLine(view))
	}
	claims, err := srv.Claims(month, d.payer)
	if err != nil {
		return res, err
	}
	if err := checkConsole(ctx, d.url, d.caFile, d.payer, month, claims); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Stdout, "\nthe web console (%s/console/): signed in with the payer's token, its page of %s shows every maker's paid devices as GET /v1/claims does\n", d.url, month)
	res.Elapsed = time.Since(began)
	guide := d.guide(month, res.DeviceID)
	os.WriteFile(filepath.Join(out, "GUIDE.txt"), []byte(guide), 0o644)
	fmt.Fprintf(o.Stdout, "\n%s\ndemo finished in %.1f s\n", guide, res.Elapsed.Seconds())
	if o.Keep {
		fmt.Fprintf(o.Stdout, "everything keeps running (--keep): the console at %s/console/ (the payer's token %s); Ctrl-C to stop\n", d.url, d.payer)
		<-ctx.Done()
	}
	return res, nil
}

// build compiles amosd, amos-collector and amos-keystored as the Makefile does, those
// not given.
func (d *demo) build(ctx context.Context, say func(string, ...any)) error {
	d.bin.amosd, d.bin.collector, d.bin.keystored = d.o.Amosd, d.o.Collector, d.o.Keystored
	bin := filepath.Join(d.out, "bin")
	var pkgs []string
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&d.bin.amosd, "./cmd/amosd"}, {&d.bin.collector, "./cmd/amos-collector"}, {&d.bin.keystored, "./cmd/amos-keystored"}} {
		if *b.path == "" {
			pkgs = append(pkgs, b.pkg)
			*b.path = filepath.Join(bin, filepath.Base(b.pkg))
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	// amosfakeclock: the collector's clock can be shifted to Options.Today (the variable
	// is set only then); amosd is built as for a handset.
	cmd := exec.CommandContext(ctx, gobin, append([]string{"build", "-trimpath", "-tags", "nethttpomithttp2,amosfakeclock", "-ldflags", "-X main.version=demo",
		"-o", bin + "/"}, pkgs...)...)
	cmd.Dir = d.o.Repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	return nil
}

// run runs a binary to completion and returns its output.
func (d *demo) run(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), d.env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return string(b), fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, b)
	}
	return string(b), nil
}

// startBus starts a private dbus-daemon with the system bus's policy. A user other
// than root gets a copy of the policy that also lets it own names.
func (d *demo) startBus(ctx context.Context) error {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		return errors.New("dbus-daemon is not installed: run scripts/ensure-tools.sh (as root), or apt-get install dbus-daemon")
	}
	conf := filepath.Join(d.o.Repo, "testdata", "dbus", "system-like.conf")
	if os.Getuid() != 0 {
		b, err := os.ReadFile(conf)
		if err != nil {
			return err
		}
		mine := fmt.Sprintf("  <policy user=\"%d\">\n    <allow own=\"*\"/>\n    <allow send_type=\"method_call\"/>\n  </policy>\n</busconfig>", os.Getuid())
		conf = filepath.Join(d.out, "system-like.conf")
		if err := os.WriteFile(conf, bytes.Replace(b, []byte("</busconfig>"), []byte(mine), 1), 0o644); err != nil {
			return err
		}
	}
	// A short path: a unix socket's name is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "amos-demo-bus-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	d.sockDir = dir
	addr := "unix:path=" + filepath.Join(dir, "bus")
	if d.bus, err = start("dbus-daemon", filepath.Join(d.logs, "dbus.log"), nil, "dbus-daemon", "--nofork", "--print-address=1",
		"--config-file="+conf, "--address="+addr); err != nil {
		return err
	}
	if err := d.bus.waitFor(ctx, "unix:path=", 1, 30*time.Second); err != nil {
		return err
	}
	d.busAddr = addr
	return nil
}

// startKeystore starts amos-keystored on the demo's bus with its keys under
// out/keystore/state and the demo's development authority, and waits until it owns
// com.amos.Keystore1. It serves its own uid (and root): the demo's amosd runs as the
// demo's user.
func (d *demo) startKeystore(ctx context.Context) error {
	var err error
	if d.ks, err = start("amos-keystored", filepath.Join(d.logs, "amos-keystored.log"), nil, d.bin.keystored, "--bus", d.busAddr,
		"--state", filepath.Join(d.out, "keystore", "state"), "--authority", d.authDir); err != nil {
		return err
	}
	return d.ks.waitFor(ctx, "serving com.amos.Keystore1", 1, 30*time.Second)
}

// startAmosd writes amosd's configuration (key.backend keystore), makes its key as the
// factory does (amosd identity generates it in the keystore, attested for the maker
// and serial tag; the collector's rules check its chain; the maker certifies it),
// starts it and waits until its genesis is accepted.
func (d *demo) startAmosd(ctx context.Context, offset int, res *Result) error {
	dir := filepath.Join(d.out, "amosd")
	d.amosdCfg = filepath.Join(d.out, "amosd.json")
	trusted := []int{0, 1000}
	if uid := os.Getuid(); uid != 0 && uid != 1000 {
		trusted = append(trusted, uid)
	}
	if err := writeJSON(d.amosdCfg, map[string]any{
		"data_dir": filepath.Join(dir, "data"), "key_dir": filepath.Join(dir, "persist"), "server_url": d.url, "ca_file": d.caFile,
		"bus": d.busAddr, "sources": []string{"amos-power"}, "consent_default": true, "log": "stderr",
		"utc_offset_minutes": offset, "trusted_uids": trusted,
		// The demo's one phone uploads its day at once, not within sync.spread.
		"sync": map[string]any{"spread": "0s"},
		// The key is in the platform's keystore (amos-keystored here), not a file.
		"key": map[string]any{"backend": "keystore", "alias": keyAlias},
	}); err != nil {
		return err
	}
	tag := hex.EncodeToString(realSerial[:])
	chain := filepath.Join(dir, "chain.pem")
	out, err := d.run(ctx, d.bin.amosd, "--config", d.amosdCfg, "identity", "--json", "--maker-id", realMaker, "--serial-tag", tag, "--chain", chain)
	if err != nil {
		return err
	}
	var ident struct {
		DeviceID    string `json:"device_id"`
		PublicKey   string `json:"public_key"`
		Backend     string `json:"backend"`
		ChainLength int    `json:"chain_length"`
	}
	if err := json.Unmarshal([]byte(out), &ident); err != nil {
		return fmt.Errorf("amosd identity --json: %v: %s", err, out)
	}
	if ident.Backend != "keystore" || ident.ChainLength == 0 {
		return fmt.Errorf("amosd identity made no attested keystore key: %s", out)
	}
	res.DeviceID = ident.DeviceID
	// The factory checks the chain with the collector's own rules before it certifies.
	out, err = d.run(ctx, d.bin.collector, "attestation", "verify", "--chain", chain, "--at", d.now().UTC().Format(time.RFC3339),
		"--challenge-hex", hex.EncodeToString(proof.AttestationChallenge(realMaker, realSerial)),
		"--roots", filepath.Join(d.authDir, devattest.RootFile), "--boot-key", d.bootKey, "--key", ident.PublicKey)
	if err != nil {
		return err
	}
	var verdict struct {
		SecurityLevel string `json:"security_level"`
	}
	// The verdict's JSON, after what a fake-clock collector says of its clock on stderr.
	if i := strings.Index(out, "{"); i < 0 || json.NewDecoder(strings.NewReader(out[i:])).Decode(&verdict) != nil {
		return fmt.Errorf("amos-collector attestation verify printed no verdict: %s", out)
	}
	d.factory = fmt.Sprintf("amosd identity --maker-id %s made a P-256 key in amos-keystored with a chain of %d (amos-collector attestation verify: accepted, %s)",
		realMaker, ident.ChainLength, verdict.SecurityLevel)
	if _, err := d.run(ctx, d.bin.collector, "maker", "certify", "--key", filepath.Join(d.out, "makers", realMaker+".key"),
		"--maker-id", realMaker, "--model", "Amos T1", "--serial-tag", tag,
		"--device-pub", ident.PublicKey, "--out", filepath.Join(dir, "persist", "device.cert")); err != nil {
		return err
	}
	if d.amosd, err = start("amosd", filepath.Join(d.logs, "amosd.log"), nil, d.bin.amosd, "--config", d.amosdCfg, "run"); err != nil {
		return err
	}
	if err := d.amosd.waitFor(ctx, "sync: ok: 1 accepted", 1, 30*time.Second); err != nil {
		return err
	}
	return d.amosd.waitFor(ctx, "event: amos-power available", 1, 30*time.Second)
}

// startPostgres starts the ledger's PostgreSQL server in out/postgres with rigs/pgtest's
// launcher, durable as a payer runs it, and creates its database amos. As root the
// server runs as the postgres user, which must pass through out and its parents: those
// inside the repository (out/) get o+x, and it is said.
func (d *demo) startPostgres(say func(string, ...any)) error {
	if os.Getuid() == 0 {
		var opened []string
		for p := d.out; p == d.out || strings.HasPrefix(p, d.o.Repo+string(filepath.Separator)); p = filepath.Dir(p) {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			if perm := st.Mode().Perm(); perm&0o001 == 0 {
				if err := os.Chmod(p, perm|0o001); err != nil {
					return err
				}
				opened = append(opened, rel(p))
			}
		}
		if len(opened) > 0 {
			say("chmod o+x %s: PostgreSQL runs as the postgres user (it refuses root), which passes through to its own directory", strings.Join(opened, " "))
		}
	}
	began := time.Now()
	pg, err := pgtest.Launch(filepath.Join(d.out, "postgres"), pgtest.Options{Durable: true})
	if err != nil {
		return fmt.Errorf("the ledger's PostgreSQL server: %w", err)
	}
	d.pg = pg
	if d.pgURL, err = pg.CreateDatabase("amos"); err != nil {
		return err
	}
	say("PostgreSQL started in %s in %.1f s (port %d, database amos): the collector's ledger", rel(pg.Dir()), time.Since(began).Seconds(), pg.Port())
	return nil
}

// becomePowerManager connects to the bus as the owner of com.amos.PowerManager.
func (d *demo) becomePowerManager() error {
	conn, err := dbus.Connect(d.busAddr)
	if err != nil {
		return err
	}
	d.pm = conn
	if r, err := conn.RequestName("com.amos.PowerManager", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("own com.amos.PowerManager: reply %v, %v", r, err)
	}
	return nil
}

func (d *demo) emit(member string, args ...any) error {
	return d.pm.Emit("/com/amos/PowerManager", "com.amos.PowerManager1."+member, args...)
}

// use plays an owner: screen on, unlock, input every two seconds, a lock and a second
// unlock half-way, then lock and screen off at until.
func (d *demo) use(ctx context.Context, until time.Time) error {
	if err := errors.Join(d.emit("ScreenChanged", true), d.emit("LockChanged", false)); err != nil {
		return err
	}
	half := time.Now().Add(time.Until(until) / 2)
	relocked := false
	for time.Now().Before(until) {
		if err := d.emit("UserActivity"); err != nil {
			return err
		}
		if !relocked && time.Now().After(half) {
			relocked = true
			if err := errors.Join(d.emit("LockChanged", true), d.emit("LockChanged", false)); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(2*time.Second, max(time.Until(until), time.Millisecond))):
		}
	}
	if err := errors.Join(d.emit("LockChanged", true), d.emit("ScreenChanged", false)); err != nil {
		return err
	}
	return d.amosd.waitFor(ctx, "event: amos-power screen_off", 1, 10*time.Second)
}

// cleanup stops everything the demo started, the daemon first.
func (d *demo) cleanup() error {
	if d.pm != nil {
		d.pm.Close()
	}
	var errs []error
	if err := d.amosd.stop(10 * time.Second); err != nil {
		errs = append(errs, fmt.Errorf("amosd: %w", err))
	}
	if err := d.ks.stop(10 * time.Second); err != nil {
		errs = append(errs, fmt.Errorf("amos-keystored: %w", err))
	}
	if err := d.col.stop(40 * time.Second); err != nil {
		errs = append(errs, fmt.Errorf("amos-collector: %w", err))
	}
	if d.pg != nil { // after the collector, its only client
		if err := d.pg.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("the ledger's PostgreSQL: %w", err))
		}
	}
	d.bus.stop(2 * time.Second) // dbus-daemon exits 1 on SIGTERM; nothing to say
	if d.sockDir != "" {
		os.RemoveAll(d.sockDir)
	}
	return errors.Join(errs...)
}

// guide is what to look at once the demo is over.
func (d *demo) guide(month collector.Month, deviceID string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	amosd, col := rel(d.bin.amosd), rel(d.bin.collector)
	clock := "" // the collector's commands keep the demo's date
	if len(d.env) > 0 {
		clock = strings.Join(d.env, " ") + " "
	}
	p("what to look at (under %s):", rel(d.out))
	p("  logs/amosd.log, logs/amos-keystored.log, logs/collector.log, logs/fleetsim.log, logs/dbus.log   the logs")
	if d.pg == nil {
		p("  collector/collector.db    the collector's ledger (bbolt); fleet.txt the fleet's report; GUIDE.txt this")
	} else {
		p("  postgres/data, postgres/server.log   the collector's ledger: a PostgreSQL cluster, database amos (collector.json's")
		p("                            \"ledger\"); fleet.txt the fleet's report; GUIDE.txt this")
	}
	p("  amosd/data/amosd.db, amosd/persist/   the real device's store, maker certificate, epoch and consent")
	p("  keystore/state/, keystore/authority/   amos-keystored's keys (SOFTWARE: the DEVELOPMENT keystore, never a")
	p("                            handset's) and its development attestation root; amosd/chain.pem the key's chain")
	p("  pki/ca.pem, makers/*.key|.pub|.token, payer.token   the development CA, makers, tokens")
	p("commands (offline, now that the demo stopped everything):")
	if d.pg != nil {
		p("  %s   (the ledger's server, first)", d.pgCtl(true))
	}
	p("  %s%s --config %s claims --month %s", clock, col, rel(d.colCfg), month)
	p("  %s --config %s inspect --data %s", amosd, rel(d.amosdCfg), rel(filepath.Join(d.out, "amosd", "data")))
	p("  %s attestation verify --chain %s --roots %s --boot-key %s",
		col, rel(filepath.Join(d.out, "amosd", "chain.pem")), rel(filepath.Join(d.authDir, devattest.RootFile)), d.bootKey)
	if d.pg != nil {
		p("  %s   (the ledger's server, when done)", d.pgCtl(false))
	}
	p("the web console (docs/console.md), while the collector runs (make demo DEMO_FLAGS=--keep):")
	p("  %s/console/   month %s by default", d.url, month)
	p("  sign in with the payer's development token %s (%s), or a maker's, e.g. konka's %s (%s)",
		d.payer, rel(filepath.Join(d.out, "payer.token")), d.tokens["konka"], rel(filepath.Join(d.out, "makers", "konka.token")))
	p("  (the browser warns: the collector's certificate is from the demo's development CA, %s)", rel(d.caFile))
	p("while it runs (go run ./tools/demo --keep; or start the collector again:")
	p("  %s%s --config %s serve &):", clock, col, rel(d.colCfg))
	p("  %s --config %s status       (needs --keep: the daemon and its bus)", amosd, rel(d.amosdCfg))
	p("  %s --config %s selftest     (the keystore: a warning, it is a development one)", amosd, rel(d.amosdCfg))
	p("  curl --cacert %s -H \"Authorization: Bearer $(cat %s)\" %s/v1/devices/%s",
		rel(d.caFile), rel(filepath.Join(d.out, "makers", realMaker+".token")), d.url, deviceID)
	p("  curl --cacert %s -H \"Authorization: Bearer $(cat %s)\" '%s/v1/claims?month=%s&format=csv'",
		rel(d.caFile), rel(filepath.Join(d.out, "payer.token")), d.url, month)
	p("  curl --cacert %s -H \"Authorization: Bearer $(cat %s)\" '%s/v1/claims/devices?month=%s&outcome=held'",
		rel(d.caFile), rel(filepath.Join(d.out, "payer.token")), d.url, month)
	return b.String()
}

// pgCtl is the pg_ctl command line, as the server's user, that starts the ledger's
// server again on its port (the collector's configuration names it), or stops it.
func (d *demo) pgCtl(start bool) string {
	bin, _ := pgtest.BinDir()
	cmd := filepath.Join(bin, "pg_ctl") + " -D " + rel(filepath.Join(d.pg.Dir(), "data"))
	if os.Getuid() == 0 {
		cmd = "runuser -u postgres -- " + cmd
	}
	if !start {
		return cmd + " stop"
	}
	return fmt.Sprintf("%s -l %s -o \"-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=''\" start",
		cmd, rel(filepath.Join(d.pg.Dir(), "server.log")), d.pg.Port())
}

// verdictLine says what the collector's /v1/devices/{id} shows of a device's
// attestation.
func verdictLine(v *collector.DeviceReport) string {
	a := v.Attestation
	switch {
	case a == nil:
		return "attestation: none (no genesis with a chain reached the collector)"
	case !a.Accepted:
		return fmt.Sprintf("attestation: REFUSED, %s (%s)", a.Reason, a.Detail)
	case v.AttestationRevoked != "":
		return "attestation: accepted, then REVOKED by the status list: " + v.AttestationRevoked
	}
	return fmt.Sprintf("attestation: accepted, %s, OS patch level %d, chain of %d verified at %s (GET /v1/devices/{id}; its maker requires it; the root is the demo's DEVELOPMENT authority)",
		a.SecurityLevel, a.OSPatchLevel, len(a.Serials), time.Unix(a.VerifiedAt, 0).UTC().Format(time.RFC3339))
}

// now is the demo's clock: the machine's, shifted to Options.Today.
func (d *demo) now() time.Time { return time.Now().Add(d.shift) }

// dayShift is the whole days from now's UTC date to today's.
func dayShift(now, today time.Time) time.Duration {
	from := time.Date(now.UTC().Year(), now.UTC().Month(), now.UTC().Day(), 0, 0, 0, 0, time.UTC)
	to := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	return to.Sub(from)
}

// offsetToMidnight returns a reporting zone (minutes east of UTC) whose next midnight
// is between lo and hi away (hi - lo of at least a minute always finds one).
func offsetToMidnight(now time.Time, lo, hi time.Duration) int {
	for off := proof.MinUTCOffsetMinutes; off <= proof.MaxUTCOffsetMinutes; off++ {
		local := now.UTC().Add(time.Duration(off) * time.Minute)
		next := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, time.UTC)
		if left := next.Sub(local); left >= lo && left < hi {
			return off
		}
	}
	panic("no zone has its midnight in the window")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// rel shows a path relative to the working directory when it is below it.
func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func indent(s, pre string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre) + "\n"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
