package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/httpapi"
	"amos.example/amosd/collector/ledger"
)

// runServe serves until SIGTERM or SIGINT, then lets the batches in flight commit and
// exits 0.
func runServe(env *cliEnv, args []string) int {
	if _, code := parseFlags(env, flag.NewFlagSet("serve", flag.ContinueOnError), args, 0); code != exitOK {
		return code
	}
	cfg, code := env.loadConfig()
	if code != exitOK {
		return code
	}
	var tlsConfig *tls.Config
	scheme := "http"
	if cfg.UsesTLS() {
		var err error
		if tlsConfig, err = httpapi.LoadTLS(cfg.TLSCert, cfg.TLSKey); err != nil {
			fmt.Fprintf(env.stderr, "amos-collector: config %s: keys tls_cert and tls_key: %v\n", env.config, err)
			return exitUsage
		}
		scheme = "https"
	}
	l, err := ledger.OpenBolt(cfg.DataDir, ledger.BoltOptions{})
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	defer l.Close()
	c, err := collector.New(l, withClock(cfg.Options(), env.now))
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	logger := log.New(env.stderr, "", log.LstdFlags)
	// Each month closes at its moment even if nobody asks for its claim: the due months
	// now, then every minute until the server stops (before the ledger is closed).
	closeMonths := func() {
		if err := c.CloseDue(); err != nil {
			logger.Printf("amos-collector: closing the due months: %v", err)
		}
	}
	closeMonths()
	closeCtx, stopClosing := context.WithCancel(env.ctx)
	closing := make(chan struct{})
	go func() {
		defer close(closing)
		closeDueLoop(closeCtx, closeDueEvery, closeMonths)
	}()
	defer func() {
		stopClosing()
		<-closing
	}()
	opts := httpapi.FromConfig(cfg, c, logger.Printf)
	opts.Now = env.now
	h, err := httpapi.New(opts)
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return failed(env.stderr, "listen on %s (config %s, key listen): %v", cfg.Listen, env.config, err)
	}
	logger.Printf("amos-collector %s: serving %s on %s (ledger %s, %d makers)", version, scheme, ln.Addr(), l.Path(), len(cfg.Makers))
	if err := httpapi.Serve(env.ctx, httpapi.NewServer(h, tlsConfig, logger), ln); err != nil {
		return failed(env.stderr, "serve: %v", err)
	}
	logger.Printf("amos-collector: stopped")
	return exitOK
}

// closeDueEvery is how often serve closes the months whose moment has passed.
const closeDueEvery = time.Minute

// closeDueLoop calls closeMonths every interval until ctx is done.
func closeDueLoop(ctx context.Context, every time.Duration, closeMonths func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			closeMonths()
		}
	}
}

// withClock sets the collector's clock.
func withClock(o collector.Options, now func() time.Time) collector.Options {
	o.Now = now
	return o
}
