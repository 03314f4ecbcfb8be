package adbd

import (
	"bufio"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWire speaks the protocol by hand: the CNXN banner with its features, a refused
// service (CLSE with local id 0), a checksum of 0 accepted and a wrong one refused.
func TestWire(t *testing.T) {
	addr := serve(t)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	c, r := dial()
	if _, err := c.Write(encodePacket(packet{cmd: cmdCNXN, arg0: 0x01000001, arg1: 1 << 20, data: []byte("host::features=shell_v2,cmd,stat_v2")})); err != nil {
		t.Fatal(err)
	}
	p, err := readPacket(r)
	if err != nil {
		t.Fatal(err)
	}
	banner := string(p.data)
	if p.cmd != cmdCNXN || p.arg0 != version || p.arg1 != maxPayload || !strings.HasPrefix(banner, "device::ro.product.name=amos_test;") ||
		!strings.Contains(banner, ";features=shell_v2,cmd,stat_v2,fixed_push_mkdir") {
		t.Fatalf("CNXN reply: %#x %#x %#x %q", p.cmd, p.arg0, p.arg1, banner)
	}
	// An OPEN with a zero checksum (allowed from version 0x01000001), of a service
	// this side does not have.
	open := encodePacket(packet{cmd: cmdOPEN, arg0: 7, data: []byte("reboot:\x00")})
	binary.LittleEndian.PutUint32(open[16:], 0)
	c.Write(open)
	if p, err = readPacket(r); err != nil || p.cmd != cmdCLSE || p.arg0 != 0 || p.arg1 != 7 {
		t.Fatalf("OPEN reboot: got %#x %d %d (%v), want CLSE 0 7", p.cmd, p.arg0, p.arg1, err)
	}
	// A plain shell: OKAY, its output, CLSE.
	c.Write(encodePacket(packet{cmd: cmdOPEN, arg0: 8, data: []byte("shell:echo hi\x00")}))
	var out strings.Builder
	for closed := false; !closed; {
		if p, err = readPacket(r); err != nil {
			t.Fatal(err)
		}
		switch p.cmd {
		case cmdOKAY:
		case cmdWRTE:
			out.Write(p.data)
			c.Write(encodePacket(packet{cmd: cmdOKAY, arg0: 8, arg1: p.arg0}))
		case cmdCLSE:
			closed = true
		default:
			t.Fatalf("shell: message %#x", p.cmd)
		}
	}
	if out.String() != "hi\n" {
		t.Errorf("shell:echo hi gave %q", out.String())
	}
	// A wrong checksum ends the connection.
	bad := encodePacket(packet{cmd: cmdOPEN, arg0: 9, data: []byte("shell:true\x00")})
	binary.LittleEndian.PutUint32(bad[16:], 12345)
	c.Write(bad)
	if p, err = readPacket(r); err == nil {
		t.Errorf("after a wrong checksum: message %#x, want the connection closed", p.cmd)
	}
}

// wireClient is a connected host speaking the protocol by hand.
type wireClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func connectWire(t *testing.T, addr string) *wireClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	w := &wireClient{t: t, c: c, r: bufio.NewReader(c)}
	w.send(packet{cmd: cmdCNXN, arg0: version, arg1: 1 << 20, data: []byte("host::features=shell_v2,stat_v2")})
	if p := w.read(); p.cmd != cmdCNXN {
		t.Fatalf("CNXN: reply %#x", p.cmd)
	}
	return w
}

func (w *wireClient) send(p packet) {
	w.t.Helper()
	if _, err := w.c.Write(encodePacket(p)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wireClient) read() packet {
	w.t.Helper()
	p, err := readPacket(w.r)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// open opens a service as stream id and returns the device's id for it.
func (w *wireClient) open(id uint32, service string) uint32 {
	w.t.Helper()
	w.send(packet{cmd: cmdOPEN, arg0: id, data: []byte(service + "\x00")})
	p := w.read()
	if p.cmd != cmdOKAY || p.arg1 != id {
		w.t.Fatalf("OPEN %s: %#x %d %d", service, p.cmd, p.arg0, p.arg1)
	}
	return p.arg0
}

// data reads the next WRTE and acknowledges it.
func (w *wireClient) data(id uint32) []byte {
	w.t.Helper()
	p := w.read()
	if p.cmd != cmdWRTE {
		w.t.Fatalf("want WRTE, got %#x", p.cmd)
	}
	w.send(packet{cmd: cmdOKAY, arg0: id, arg1: p.arg0})
	return p.data
}

// TestHostCloseKills: a host that closes a shell's stream (adb's Ctrl-C) ends its
// command.
func TestHostCloseKills(t *testing.T) {
	w := connectWire(t, serve(t))
	remote := w.open(3, "shell,v2,raw:echo $$; exec sleep 30")
	pkt := w.data(3)
	if len(pkt) < 6 || pkt[0] != shellStdout {
		t.Fatalf("first packet %q", pkt)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pkt[5:])))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	w.send(packet{cmd: cmdCLSE, arg0: 3, arg1: remote})
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 10_000); err != nil || n != 1 {
		t.Fatalf("the command (pid %d) still runs 10 s after the host closed its stream (%v)", pid, err)
	}
}

// TestSyncStat: the first version's STAT, for hosts without stat_v2, and QUIT.
func TestSyncStat(t *testing.T) {
	w := connectWire(t, serve(t))
	remote := w.open(4, "sync:")
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("12345"), 0o640); err != nil {
		t.Fatal(err)
	}
	req := func(id, arg string) {
		b := make([]byte, 8+len(arg))
		copy(b, id)
		binary.LittleEndian.PutUint32(b[4:], uint32(len(arg)))
		copy(b[8:], arg)
		w.send(packet{cmd: cmdWRTE, arg0: 4, arg1: remote, data: b})
		if p := w.read(); p.cmd != cmdOKAY {
			t.Fatalf("WRTE %s: %#x", id, p.cmd)
		}
	}
	req("STAT", path)
	var reply []byte
	for len(reply) < 16 {
		reply = append(reply, w.data(4)...)
	}
	le := binary.LittleEndian
	if string(reply[:4]) != "STAT" || le.Uint32(reply[4:]) != 0o100640 || le.Uint32(reply[8:]) != 5 || le.Uint32(reply[12:]) == 0 {
		t.Errorf("STAT %s: % x", path, reply)
	}
	req("QUIT", "")
	if p := w.read(); p.cmd != cmdCLSE {
		t.Errorf("after QUIT: %#x, want CLSE", p.cmd)
	}
}
