// Command demo is `make demo`: a private D-Bus, the real amos-collector over TLS with a
// development CA and makers made by `amos-collector maker keygen`, amos-keystored (the
// DEVELOPMENT reference keystore: software keys, a development attestation root, never
// on a handset), one real amosd whose key the factory step makes in that keystore,
// fed by real D-Bus signals, that mints a day at a near local midnight, and the fleet
// simulator for a month of 1,000 phones; then the claims, the real device's
// attestation verdict, and a guide. Everything goes under out/demo, and every process
// it started is stopped when it ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var o Options
	flag.StringVar(&o.Repo, "repo", ".", "the repository's root")
	flag.StringVar(&o.Out, "out", "out/demo", "where everything goes (wiped first)")
	flag.IntVar(&o.Devices, "devices", 1000, "simulated phones")
	flag.BoolVar(&o.Quick, "quick", false, "do not wait for the real midnight (the real amosd uploads its genesis only)")
	flag.BoolVar(&o.Keep, "keep", false, "leave everything running after the report, until Ctrl-C")
	flag.StringVar(&o.Ledger, "ledger", "", "postgres: the collector's ledger on a local PostgreSQL server started in OUT/postgres (Debian's postgresql package) and stopped at the end; default bbolt in OUT/collector")
	today := flag.String("today", "", "YYYY-MM-DD: the demo's date (the collector's clock is shifted to it; the fleet simulates the month before); default the machine's")
	flag.Parse()
	if *today != "" {
		t, err := time.Parse(time.DateOnly, *today)
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: --today %q: want YYYY-MM-DD: %v\n", *today, err)
			os.Exit(2)
		}
		o.Today = t
	}
	o.Stdout = os.Stdout
	// A closed stdout (make demo | head) must not kill the demo before it stops its
	// processes: writes then just fail.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if _, err := Run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}
