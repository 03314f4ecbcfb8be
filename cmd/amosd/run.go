package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"amos.example/amosd/agent"
	"amos.example/amosd/agent/clock"
	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/agent/logd"
)

// loadConfig reads the configuration; a problem is a usage error (exit 2).
func loadConfig(env *cliEnv) (*config.Config, int) {
	cfg, err := config.Load(env.config)
	if err != nil {
		fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		return nil, exitUsage
	}
	return cfg, exitOK
}

// heapHeadroom is how much the Go heap of `amosd run` may grow between collections:
// the memory limit is the runtime's own memory at start plus this, the 4 MB that Go's
// default gives a small heap before its first collection. Live, amosd's heap is about
// 150 KiB; an upload of a full batch adds a few hundred KiB of garbage.
const heapHeadroom = 4 << 20

// tuneRuntime sets the Go runtime of `amosd run` for a daemon that sleeps for hours
// (README.md's budget table idle budgets); GOMAXPROCS, GOGC and GOMEMLIMIT in the environment keep
// the last word:
//   - one P: amosd has nothing to run in parallel, and each P costs threads to wake
//     and cached memory (a phone has 8 cores);
//   - no proportional GC (GOGC=off) but a memory limit: once a first GC has run, Go's
//     default forces another every 2 minutes even when nothing was allocated, each
//     waking several threads; so an idle daemon has no GC at all;
//   - the returned hook (Options.Idle) gives the freed memory back to the system
//     when work is over (debug.FreeOSMemory: one GC), so that the garbage of a sync or
//     of a day's events does not stay resident for the hours the daemon then sleeps.
func tuneRuntime(getenv func(string) string) (idle func()) {
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if getenv("GOGC") == "" && getenv("GOMEMLIMIT") == "" {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms) // what the limit counts: mapped, not released
		debug.SetMemoryLimit(int64(ms.Sys-ms.HeapReleased) + heapHeadroom)
		debug.SetGCPercent(-1)
	}
	return debug.FreeOSMemory
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
	logf, closeLog, toLogd := logd.NewLogger(cfg.Log, logd.Socket, env.stderr)
	defer closeLog()
	fatal := func(err error) { // where the operator looks, and in the log
		logf("%v", err)
		if toLogd {
			fmt.Fprintf(env.stderr, "amosd: %v\n", err)
		}
	}
	clock, err := clock.NewSystemClock()
	if err != nil {
		logf("clock: %v", err)
		return exitFailed
	}
	idle := tuneRuntime(os.Getenv)
	a, err := agent.New(agent.Options{Config: cfg, Clock: clock, Version: version, Built: builtAt(), Logf: logf, Idle: idle})
	if err != nil {
		fatal(err)
		if errors.Is(err, identity.ErrIdentity) || errors.Is(err, config.ErrConfig) {
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
