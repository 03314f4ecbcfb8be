package adbd

import (
	"bufio"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
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
