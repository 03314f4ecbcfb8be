package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/attest"
	"amos.example/amosd/collector/console"
	"amos.example/amosd/collector/httpapi"
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
	l, ledgerName, err := openConfigured(cfg, false, 0)
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	defer l.Close()
	logger := log.New(env.stderr, "", log.LstdFlags)
	opts, status, code := attestationOptions(env, cfg, logger.Printf)
	if code != exitOK {
		return code
	}
	c, err := collector.New(l, opts)
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	if status != nil {
		// Loaded now, then every status_refresh_minutes until the server stops.
		statusCtx, stopStatus := context.WithCancel(env.ctx)
		done := status.Start(statusCtx)
		defer func() {
			stopStatus()
			<-done
		}()
	}
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
	hopts := httpapi.FromConfig(cfg, c, logger.Printf)
	hopts.Now, hopts.Status = env.now, status
	h, err := httpapi.New(hopts)
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	copts := console.Options{Collector: c, MakerTokens: hopts.MakerTokens, PayerToken: hopts.PayerToken, Now: env.now, Logf: logger.Printf}
	con, err := console.New(copts)
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, con)
	mux.Handle("/", h)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return failed(env.stderr, "listen on %s (config %s, key listen): %v", cfg.Listen, env.config, err)
	}
	ln = httpapi.LimitListener(ln, cfg.Limits.MaxConnections)
	logger.Printf("amos-collector %s: serving %s on %s (ledger %s, %d makers)", version, scheme, ln.Addr(), ledgerName, len(cfg.Makers))
	if err := httpapi.Serve(env.ctx, httpapi.NewServer(mux, tlsConfig, logger), ln); err != nil {
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

// attestationOptions returns the collector options of cfg with its clock and its
// attestation policy, and the status list source (not started; nil if none).
func attestationOptions(env *cliEnv, cfg *collector.Config, logf func(string, ...any)) (collector.Options, *attest.Source, int) {
	o := withClock(cfg.Options(), env.now)
	policy, status, err := cfg.NewAttestation(env.now, logf)
	if err != nil {
		fmt.Fprintf(env.stderr, "amos-collector: config %s: %v\n", env.config, err)
		return o, nil, exitUsage
	}
	o.Attestation = policy
	return o, status, exitOK
}

// withClock sets the collector's clock.
func withClock(o collector.Options, now func() time.Time) collector.Options {
	o.Now = now
	return o
}
