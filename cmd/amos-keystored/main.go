// Command amos-keystored is the DEVELOPMENT reference implementation of
// com.amos.Keystore1 (docs/dbus-api.md) for tests and the demo: software keys and a
// development attestation root, never on a handset. It only parses the command line
// and wires internal/devkeystore.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"amos.example/amosd/internal/devkeystore"
	"amos.example/amosd/sources"
)

// Exit codes, as amosd's.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const banner = `amos-keystored: ******************************************************************
amos-keystored: DEVELOPMENT KEYSTORE, NOT FOR PRODUCTION: keys are kept in SOFTWARE in %s
amos-keystored: and attested by a DEVELOPMENT root (%s) that no payer may trust.
amos-keystored: A handset needs the OS vendor's com.amos.Keystore1 on its TEE or StrongBox.
amos-keystored: ******************************************************************
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// uidList is the repeatable --allow-uid flag.
type uidList []uint32

func (l *uidList) String() string { return fmt.Sprint(*l) }

func (l *uidList) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a uid", s)
	}
	*l = append(*l, uint32(n))
	return nil
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("amos-keystored", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bus := fs.String("bus", "system", `the bus: "system", "session" or a D-Bus address`)
	state := fs.String("state", "/var/lib/amos-keystored", "the directory of the keys (created 0700)")
	authority := fs.String("authority", "", "the directory of the development attestation authority, created if absent (default STATE/authority)")
	var allow uidList
	fs.Var(&allow, "allow-uid", "a uid that may call (repeatable; default: this process's uid and 0)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: amos-keystored [--bus ADDRESS] [--state DIR] [--authority DIR] [--allow-uid N]...\n\n"+
			"The DEVELOPMENT reference implementation of com.amos.Keystore1 (docs/dbus-api.md):\nsoftware keys and a development attestation root, for tests and the demo only.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "amos-keystored: unexpected arguments %q\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	if *authority == "" {
		*authority = filepath.Join(*state, "authority")
	}
	if len(allow) == 0 {
		allow = uidList{uint32(os.Getuid())}
		if os.Getuid() != 0 {
			allow = append(allow, 0)
		}
	}
	logger := log.New(stderr, "amos-keystored: ", 0)
	fmt.Fprintf(stderr, banner, *state, *authority)
	a, created, err := devkeystore.LoadAuthority(*authority, "Amos development keystore")
	if err != nil {
		logger.Printf("authority %s: %v", *authority, err)
		return exitFailed
	}
	if created {
		logger.Printf("created a development attestation authority in %s (its root: %s)", *authority, filepath.Join(*authority, "root.pem"))
	}
	svc, err := devkeystore.New(devkeystore.Options{StateDir: *state, Authority: a, AllowUIDs: allow, Logf: logger.Printf})
	if err != nil {
		logger.Print(err)
		return exitFailed
	}
	conn, err := sources.Dial(ctx, *bus)
	if err != nil {
		logger.Printf("bus %s: %v", *bus, err)
		return exitFailed
	}
	defer conn.Close()
	if err := svc.Serve(ctx, conn); err != nil {
		logger.Print(err)
		return exitFailed
	}
	return exitOK
}
