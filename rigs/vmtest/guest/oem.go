package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"amos.example/amosd/rigs/adbd"
)

// amos.adb=PORT (the check boot): after the check, the handset as an OEM engineer
// finds it on adb. amosd runs again with the power manager on the bus and a keyboard
// plugged in, eth0 (QEMU's user-mode network, whose host forwards a loopback port to
// PORT) is up, and rigs/adbd answers adb there with root's shell (busybox, amosd on
// PATH, AMOSD_CONFIG the image's configuration). The host runs
// android-build/oem-check.sh over its real adb, breaks the phone between runs through
// adb itself, and ends the phase with `adb shell touch /run/vm/oem-done`.
const (
	oemDone  = "/run/vm/oem-done"
	oemLimit = 15 * time.Minute
	guestIP  = "10.0.2.15" // QEMU user-mode networking's first guest address
)

func (g *guest) oemPhase(port string) error {
	// The applets of busybox as commands (id, chmod, pidof, ...), for adb's shell.
	if out, err := exec.Command("/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
		return fmt.Errorf("busybox --install: %w: %s", err, out)
	}
	if err := ifUp("eth0", guestIP, "255.255.255.0"); err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	if _, err := g.conn.RequestName("com.amos.PowerManager", dbus.NameFlagDoNotQueue); err != nil {
		return fmt.Errorf("own com.amos.PowerManager: %w", err)
	}
	kbd, err := newKeyboard()
	if err != nil {
		return fmt.Errorf("uinput: %w", err)
	}
	defer kbd.Close()
	// The check boot starts where the last boot left the clock, as late as bootLead
	// before a midnight: oem-check.sh's count of a use session must not straddle one.
	zone := time.FixedZone("amos", offsetMinutes*60)
	l := time.Now().In(zone)
	if next := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, zone); time.Until(next) < 10*time.Minute {
		if err := setClock(next.Add(time.Minute)); err != nil {
			return err
		}
		if err := g.saveClock(); err != nil {
			return err
		}
		g.say("clock set to %s, past the midnight", time.Now().UTC().Format(time.RFC3339))
	}
	if err := g.startAmosd(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return fmt.Errorf("adbd: %w", err)
	}
	os.MkdirAll("/run/vm", 0o755)
	srv := &adbd.Server{Product: "amos_vm", Shell: "/bin/sh", Dir: "/",
		Env: []string{"PATH=/usr/bin:/bin", "HOME=/", "AMOSD_CONFIG=" + amosdConfig},
		Log: func(format string, args ...any) { g.say(format, args...) }}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	g.say("adbd listening on %s:%s", guestIP, port)
	werr := waitPath(oemDone, oemLimit)
	cancel()
	if err := <-served; err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("the host did not end the adb phase: %w", werr)
	}
	g.say("adb phase done")
	return nil
}

// ifUp gives an interface its address and brings it up.
func ifUp(name, addr, mask string) error {
	if err := waitPath("/sys/class/net/"+name, 30*time.Second); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, s := range []struct {
		req uint
		ip  string
	}{{unix.SIOCSIFADDR, addr}, {unix.SIOCSIFNETMASK, mask}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(net.ParseIP(s.ip).To4()); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, s.req, ifr); err != nil {
			return fmt.Errorf("%s %s: %w", name, s.ip, err)
		}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
