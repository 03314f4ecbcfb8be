// Command amos-fleetsim simulates fleets of Amos handsets against a real collector
// (tools/fleetsim, tools/fleetsim/attack); it only parses the command line and wires
// the packages.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/collector"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/internal/devkeystore"
	"amos.example/amosd/tools/fleetsim"
	"amos.example/amosd/tools/fleetsim/attack"
	"amos.example/amosd/tools/outagesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

const usageText = `usage: amos-fleetsim SCENARIO [FLAGS]

scenarios:
  month    a month of N sold handsets (default 10,000) on the real code paths against a
           real collector over TLS, registered with it as sold; then the claims checked
           against the simulation's own, exactly, and the honest devices held (<= 1 %)
  outage   a collector outage for N devices (default 1,000,000), simulated at the level
           of each device's retry schedule with the agent's backoff on a virtual clock
  farm     a maker's farm of sold handsets driven by scripts (identical counters, 24 h
           days, bursts, replays, shared, stolen and made-up serial tags, certificates
           from the future, impossible minted_at, a month uploaded after it closed)
           beside honest phones: what the claim makes of each kind (a confusion table)
  phantom  a maker certifies thousands of keys with made-up (and stolen) serial tags and
           months drawn like honest phones', beside an honest fleet: a confusion table;
           --attestation required adds hardware-attested honest keys and phantom keys
           on the maker's own registered serial tags that only attestation can refuse

'amos-fleetsim SCENARIO -h' lists the scenario's flags.
`

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// serverFlags are the flags that choose the collector.
type serverFlags struct {
	url, ca, payer, dir, makers, ledger string
	makerKeys                           multi
}

func (s *serverFlags) register(fs *flag.FlagSet, makers string) {
	fs.StringVar(&s.url, "collector", "", "URL of a running amos-collector (default: start one in-process over TLS)")
	fs.StringVar(&s.ca, "ca", "", "with --collector: the CA file its certificate chains to")
	fs.StringVar(&s.payer, "payer-token", "", "with --collector: the payer's bearer token")
	fs.Var(&s.makerKeys, "maker", "with --collector: ID=KEYFILE[:TOKEN], a registered maker and its key (repeat)")
	fs.StringVar(&s.makers, "makers", makers, "in-process collector: the makers, comma-separated")
	fs.StringVar(&s.dir, "dir", "", "where the ledger, PKI and device stores go (default: a temporary directory, removed)")
	fs.StringVar(&s.ledger, "ledger", "", "in-process collector: its ledger, a postgres:// URL, or postgres: a private PostgreSQL server started in DIR/postgres for the run (default: bbolt in DIR/ledger)")
}

// open opens the collector; att is an in-process one's attestation policy (nil: none).
func (s *serverFlags) open(seed uint64, dir string, start time.Time, now func() time.Time, att collector.Attestor, logf func(string, ...any)) (*fleetsim.Server, error) {
	if s.ledger == fleetsim.LocalPostgres && s.dir == "" {
		// The temporary directory is the run's: the server's user (postgres, when run as
		// root) passes through it to its own DIR/postgres.
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, err
		}
	}
	srv, err := fleetsim.OpenServer(fleetsim.ServerConfig{URL: s.url, CAFile: s.ca, PayerToken: s.payer, MakerKeys: s.makerKeys,
		Makers: strings.Split(s.makers, ","), Seed: seed, Dir: dir, Start: start, Ledger: s.ledger, Attestation: att, Now: now, Logf: logf})
	if err == nil && srv.Clock != nil {
		logf("amos-fleetsim: in-process collector on %s, ledger %s", srv.URL, srv.Ledger)
	}
	return srv, err
}

// pickSeed gives a run against a running collector a fresh seed unless --seed was
// given: the default seed's keys are the ones every earlier run sent (the demo's too),
// which that collector already holds, so that their new history would be a chain_gap or
// a chain_fork. The seed is printed, to repeat the run. An in-process collector is new
// every run: its default seed stays 1, for the same figures every time.
func (s *serverFlags) pickSeed(fs *flag.FlagSet, seed *uint64, stderr io.Writer) error {
	if s.url == "" {
		return nil
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "seed" })
	if given {
		return nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("a fresh seed: %w", err)
	}
	*seed = binary.BigEndian.Uint64(b[:]) >> 1 // positive in every flag parser
	fmt.Fprintf(stderr, "amos-fleetsim: --seed %d (a fresh one against a running collector; pass it to repeat this run)\n", *seed)
	return nil
}

// openAuthority returns the development attestation authority of the phantom
// scenario, and the in-process collector's policy that trusts it (nil for an external
// collector, whose configuration must): the one saved in dir (amos-keystored's
// --authority), created there if absent. An external collector cannot trust an
// authority just created: that is an error saying what to configure.
func (s *serverFlags) openAuthority(dir string, mode collector.AttestationMode, logf func(string, ...any)) (*devattest.Authority, collector.Attestor, error) {
	a, created, err := devkeystore.LoadAuthority(dir, "amos-fleetsim")
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("the development attestation authority: %w", err)
	case created && s.url != "":
		return nil, nil, fmt.Errorf("created a development attestation authority in %s: name %s in the collector's attestation.roots, set its makers' attestation to %q, restart it and run again",
			dir, filepath.Join(dir, devattest.RootFile), mode)
	}
	logf("amos-fleetsim: the honest keys are attested by the development root %q (verifiedBootKey %x)", a.Name(), devattest.BootKey(a.Name()))
	if s.url != "" {
		return a, nil, nil
	}
	policy, err := attack.AttestationPolicy(a, mode, strings.Split(s.makers, ","))
	return a, policy, err
}

// run is main without os.Exit: now is the clock that the default month (the previous
// one) and an external collector's clock come from.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usageText)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	scenario := args[0]
	fs := flag.NewFlagSet("amos-fleetsim "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "seed of keys, plans and schedules (with --collector: a fresh one, printed)")
	verbose := fs.Bool("v", false, "progress lines on stderr")
	logf := func(format string, a ...any) {
		if *verbose {
			fmt.Fprintf(stderr, format+"\n", a...)
		}
	}
	var code int
	switch scenario {
	case "month":
		var sf serverFlags
		sf.register(fs, "konka,tcl,zte")
		devices := fs.Int("devices", 10000, "devices")
		month := fs.String("month", "", "YYYY-MM (default: the previous month)")
		stores := fs.Int("stores", 200, "devices that keep their queue in a real bbolt store (the others in memory)")
		workers := fs.Int("workers", 32, "devices working at once")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		if err := sf.pickSeed(fs, seed, stderr); err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
			return 1
		}
		m, dir, cleanup, rc := monthAndDir(*month, sf.dir, "fleetsim-month-", now, stderr)
		if rc != 0 {
			return rc
		}
		defer cleanup()
		srv, err := sf.open(*seed, dir, m.First().Start(480).Add(-48*time.Hour), now, nil, logf)
		if err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
			return 1
		}
		defer srv.Close()
		_, err = fleetsim.RunMonth(ctx, fleetsim.MonthConfig{Devices: *devices, Month: m, Seed: *seed, Workers: *workers,
			Stores: *stores, Dir: dir, Server: srv, Out: stdout, Logf: logf})
		code = report(stderr, err)
	case "farm":
		var sf serverFlags
		sf.register(fs, "konka,tcl,farmco")
		month := fs.String("month", "", "YYYY-MM (default: the previous month)")
		farmMaker := fs.String("farm-maker", "farmco", "the maker that runs the farm")
		var cfg attack.FarmConfig
		fs.IntVar(&cfg.Honest, "honest", 40, "honest phones of the other makers")
		fs.IntVar(&cfg.Clones, "clones", 30, "phones with identical counters every day")
		fs.IntVar(&cfg.Saturated, "saturated", 5, "phones used 24 h a day")
		fs.IntVar(&cfg.Backfill, "backfill", 5, "phones that mint the whole month in one burst")
		fs.IntVar(&cfg.Replay, "replay", 3, "phones that report the month again in a new epoch")
		fs.IntVar(&cfg.Serial, "shared-serial", 10, "keys certified with one serial_tag")
		fs.IntVar(&cfg.Future, "future", 2, "phones that report dates after the server's")
		fs.IntVar(&cfg.Stolen, "stolen-serial", 5, "keys certified with serial tags of the honest makers' sold handsets (at most --honest)")
		fs.IntVar(&cfg.Unregistered, "unregistered", 5, "keys certified with made-up serial tags")
		fs.IntVar(&cfg.FutureCert, "future-cert", 2, "keys whose certificate is issued a week after the server's time")
		fs.IntVar(&cfg.BadMint, "bad-mint", 2, "phones whose records are minted at 0 (1970) or in 2100")
		fs.IntVar(&cfg.Late, "late", 2, "phones that upload their month after it closed (in-process collector only)")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		for _, n := range []*int{&cfg.Honest, &cfg.Clones, &cfg.Saturated, &cfg.Backfill, &cfg.Replay, &cfg.Serial, &cfg.Future,
			&cfg.Stolen, &cfg.Unregistered, &cfg.FutureCert, &cfg.BadMint, &cfg.Late} {
			if *n <= 0 {
				*n = -1 // none (FarmConfig takes 0 for its default)
			}
		}
		if err := sf.pickSeed(fs, seed, stderr); err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
			return 1
		}
		m, dir, cleanup, rc := monthAndDir(*month, sf.dir, "fleetsim-farm-", now, stderr)
		if rc != 0 {
			return rc
		}
		defer cleanup()
		srv, err := sf.open(*seed, dir, m.First().Start(480).Add(-48*time.Hour), now, nil, logf)
		if err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
			return 1
		}
		defer srv.Close()
		cfg.Month, cfg.Seed, cfg.FarmMaker, cfg.Server, cfg.Out, cfg.Logf = m, *seed, *farmMaker, srv, stdout, logf
		_, err = attack.RunFarm(ctx, cfg)
		code = report(stderr, err)
	case "phantom":
		var sf serverFlags
		sf.register(fs, "konka,tcl,phantomco")
		month := fs.String("month", "", "YYYY-MM (default: the previous month)")
		var cfg attack.PhantomConfig
		fs.StringVar(&cfg.PhantomMaker, "phantom-maker", "phantomco", "the maker that certifies the phantoms")
		fs.IntVar(&cfg.Phantoms, "phantoms", 2000, "keys the phantom maker certifies")
		fs.Float64Var(&cfg.StolenShare, "stolen-share", 0.10, "share of the phantoms certified with serial tags of the honest makers' sold handsets (0: none)")
		fs.IntVar(&cfg.Honest, "honest", 1000, "sold handsets of the other makers")
		fs.IntVar(&cfg.Workers, "workers", 32, "devices working at once")
		mode := fs.String("attestation", "off", "every maker's attestation mode: required, preferred or off (off: no chains, the scenario as before attestation)")
		authDir := fs.String("attestation-authority", "", "with --attestation: the directory of the development attestation authority that attests the honest keys (as amos-keystored --authority; created if absent; required with --collector) (default: DIR/attestation of --dir)")
		fs.IntVar(&cfg.Dormant, "dormant", 300, "with --attestation: the phantom maker's handsets registered as sold that never report, for whose serial tags it certifies unattested, own-root and replayed-chain keys")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		if cfg.Phantoms <= 0 || cfg.Honest <= 0 || cfg.StolenShare < 0 || cfg.StolenShare > 1 || cfg.Dormant <= 0 {
			fmt.Fprintf(stderr, "amos-fleetsim: --phantoms, --honest and --dormant must be positive, --stolen-share 0..1\n")
			return 2
		}
		switch cfg.Attestation = collector.AttestationMode(*mode); cfg.Attestation {
		case collector.AttestationRequired, collector.AttestationPreferred, collector.AttestationOff:
		default:
			fmt.Fprintf(stderr, "amos-fleetsim: --attestation %q: want required, preferred or off\n", *mode)
			return 2
		}
		switch attesting := attack.Attesting(cfg.Attestation); {
		case *authDir != "" && !attesting:
			fmt.Fprintf(stderr, "amos-fleetsim: --attestation-authority needs --attestation required or preferred\n")
			return 2
		case *authDir == "" && attesting && sf.url != "":
			fmt.Fprintf(stderr, "amos-fleetsim: with --collector, --attestation needs --attestation-authority DIR: the authority whose root.pem the collector's attestation.roots names\n")
			return 2
		}
		if cfg.StolenShare == 0 {
			cfg.StolenShare = -1 // none (PhantomConfig takes 0 for its default)
		}
		if err := sf.pickSeed(fs, seed, stderr); err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
			return 1
		}
		m, dir, cleanup, rc := monthAndDir(*month, sf.dir, "fleetsim-phantom-", now, stderr)
		if rc != 0 {
			return rc
		}
		defer cleanup()
		var policy collector.Attestor
		if attack.Attesting(cfg.Attestation) {
			if *authDir == "" {
				*authDir = filepath.Join(dir, "attestation")
			}
			var err error
			if cfg.Authority, policy, err = sf.openAuthority(*authDir, cfg.Attestation, logf); err != nil {
				fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
				return 1
			}
		}
		srv, err := sf.open(*seed, dir, m.First().Start(480).Add(-48*time.Hour), now, policy, logf)
		if err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
			return 1
		}
		defer srv.Close()
		cfg.Month, cfg.Seed, cfg.Server, cfg.Out, cfg.Logf = m, *seed, srv, stdout, logf
		_, err = attack.RunPhantom(ctx, cfg)
		code = report(stderr, err)
	case "outage":
		devices := fs.Int("devices", 1_000_000, "devices")
		offset := fs.Int("utc-offset", 480, "utc_offset_minutes of the fleet")
		start := fs.Duration("start", 21*time.Hour, "local time of day the outage begins, as a duration after midnight")
		length := fs.Duration("length", 6*time.Hour, "how long the collector is down")
		mode := fs.String("mode", "down", "what devices get during the outage: down (no answer, or 5xx without Retry-After), retry-after (503 with --retry-after), retry-date (503 with Retry-After the HTTP date of the end)")
		retryAfter := fs.Duration("retry-after", time.Hour, "the Retry-After of --mode retry-after")
		awake := fs.Float64("awake", 0.3, "share of phones awake at local midnight (they upload within seconds)")
		wake := fs.Duration("wake-mean", 15*time.Minute, "mean delay of the first wake-up after midnight of the others")
		capacity := fs.Int("capacity", 0, "requests a second the collector serves, beyond which it answers 503 Retry-After: 5 (0: unlimited)")
		spread := fs.Duration("sync-spread", config.DefaultSyncSpread, "the agent's sync.spread: upload a random 0..D after the midnight mint (0: at once)")
		csv := fs.String("csv", "", "write the requests of every simulated minute to this CSV file")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		m, err := outagesim.ParseOutageMode(*mode)
		if err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: --mode: %v\n", err)
			return 2
		}
		cfg := outagesim.OutageConfig{Devices: *devices, Seed: *seed, Offset: *offset, Start: *start, Length: *length, Mode: m,
			RetryAfter: *retryAfter, Awake: *awake, WakeMean: *wake, Capacity: *capacity, SyncSpread: *spread, Out: stdout}
		if *csv != "" {
			f, err := os.Create(*csv)
			if err != nil {
				fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
				return 1
			}
			defer f.Close()
			cfg.CSV = f
		}
		began := time.Now()
		_, err = outagesim.RunOutage(cfg)
		logf("amos-fleetsim: outage simulated in %s", time.Since(began).Round(time.Millisecond))
		code = report(stderr, err)
	default:
		fmt.Fprintf(stderr, "amos-fleetsim: unknown scenario %q\n%s", scenario, usageText)
		return 2
	}
	return code
}

func report(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
		return 1
	}
	return 0
}

// monthAndDir is the step every scenario starts with: the month of --month (default: the
// previous month of now) and its working directory; a non-zero code to exit with on error.
func monthAndDir(month, parent, prefix string, now func() time.Time, stderr io.Writer) (collector.Month, string, func(), int) {
	m := fleetsim.PreviousMonth(now())
	if month != "" {
		var err error
		if m, err = collector.ParseMonth(month); err != nil {
			fmt.Fprintf(stderr, "amos-fleetsim: --month: %v\n", err)
			return m, "", nil, 2
		}
	}
	dir, cleanup, err := fleetsim.TempDir(parent, prefix)
	if err != nil {
		fmt.Fprintf(stderr, "amos-fleetsim: %v\n", err)
		return m, "", nil, 1
	}
	return m, dir, cleanup, 0
}
