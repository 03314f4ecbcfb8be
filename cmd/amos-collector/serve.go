package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"

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
	c, err := collector.New(l, collector.Options{Makers: cfg.Registry(), Eligibility: cfg.Eligibility, Now: env.now})
	if err != nil {
		return failed(env.stderr, "%v", err)
	}
	logger := log.New(env.stderr, "", log.LstdFlags)
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
