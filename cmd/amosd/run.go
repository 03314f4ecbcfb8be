package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"amos.example/amosd/agent"
)

// loadConfig reads the configuration; a problem is a usage error (exit 2).
func loadConfig(env *cliEnv) (*agent.Config, int) {
	cfg, err := agent.LoadConfig(env.config)
	if err != nil {
		fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		return nil, exitUsage
	}
	return cfg, exitOK
}

// runDaemon is `amosd run`: the daemon, until SIGTERM or SIGINT.
func runDaemon(env *cliEnv, args []string) int {
	if len(args) > 0 {
		return usageError(env.stderr, "run takes no arguments, got %q", strings.Join(args, " "))
	}
	cfg, code := loadConfig(env)
	if cfg == nil {
		return code
	}
	logf, closeLog, toLogd := agent.NewLogger(cfg.Log, agent.LogdSocket, env.stderr)
	defer closeLog()
	fatal := func(err error) { // where the operator looks, and in the log
		logf("%v", err)
		if toLogd {
			fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		}
	}
	clock, err := agent.NewSystemClock()
	if err != nil {
		logf("clock: %v", err)
		return exitFailed
	}
	a, err := agent.New(agent.Options{Config: cfg, Clock: clock, Version: version, Logf: logf})
	if err != nil {
		fatal(err)
		if errors.Is(err, agent.ErrIdentity) || errors.Is(err, agent.ErrConfig) {
			return exitUsage
		}
		return exitFailed
	}
	defer a.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logf("running %s, device_id %s", version, a.DeviceID())
	if err := a.Run(ctx); err != nil {
		fatal(err)
		return exitFailed
	}
	return exitOK
}
