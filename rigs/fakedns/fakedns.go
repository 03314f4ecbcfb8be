// Package fakedns is the name services of the resolver's tests: Android's netd on its
// dnsproxyd socket, and a minimal UDP DNS server.
package fakedns

import (
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Values of bionic and Linux that netd's answers carry, written down independently of
// the resolver that reads them.
const (
	AiAddrconfig = 0x400 // AI_ADDRCONFIG (bionic netdb.h)
	AfInet       = 2     // AF_INET
	AfInet6      = 10    // AF_INET6 (Linux)
	SockStream   = 1     // SOCK_STREAM
	EaiNodata    = 7     // bionic EAI_NODATA
	EaiNoname    = 8     // bionic EAI_NONAME
)

// ---- the wire format, as netd writes it ----

// Answer builds dnsproxyd answers byte by byte, as DnsProxyListener and SocketClient
// write them.
type Answer []byte

func (a Answer) Code(c string) Answer { return append(a, c...) } // "222\x00", "401\x00", "500 ..."
func (a Answer) BE32(v int32) Answer  { return binary.BigEndian.AppendUint32(a, uint32(v)) }

// Entry appends one addrinfo as sendaddrinfo writes it, continuation word included.
func (a Answer) Entry(ip netip.Addr, canon string) Answer {
	sa := Sockaddr(ip)
	family := int32(AfInet)
	if ip.Is6() {
		family = AfInet6
	}
	a = a.BE32(1).BE32(AiAddrconfig).BE32(family).BE32(SockStream).BE32(6).BE32(int32(len(sa)))
	a = append(a, sa...)
	if canon == "" {
		return a.BE32(0)
	}
	return append(a.BE32(int32(len(canon)+1)), canon+"\x00"...)
}

// Failure appends a 401 answer: SocketClient::sendBinaryMsg of the int32 EAI code, whose
// length is big-endian and whose value is in host order.
func (a Answer) Failure(eai int32) Answer {
	a = a.Code("401\x00").BE32(4)
	return binary.NativeEndian.AppendUint32(a, uint32(eai))
}

// Success is a complete 222 answer for ips.
func Success(ips ...netip.Addr) Answer {
	a := Answer(nil).Code("222\x00")
	for _, ip := range ips {
		a = a.Entry(ip, "")
	}
	return a.BE32(0)
}

// Sockaddr is the kernel's sockaddr_in or sockaddr_in6 for ip, port 0: sa_family in host
// order, the rest in network order, the scope id in host order.
func Sockaddr(ip netip.Addr) []byte {
	if ip.Is4() {
		b := binary.NativeEndian.AppendUint16(nil, AfInet)
		b = append(b, 0, 0) // sin_port
		b = append(b, ip.AsSlice()...)
		return append(b, make([]byte, 8)...) // sin_zero
	}
	b := binary.NativeEndian.AppendUint16(nil, AfInet6)
	b = append(b, 0, 0, 0, 0, 0, 0) // sin6_port, sin6_flowinfo
	b = append(b, ip.AsSlice()...)
	scope, _ := strconv.ParseUint(ip.Zone(), 10, 32)
	return binary.NativeEndian.AppendUint32(b, uint32(scope))
}

// ---- a dnsproxyd server ----

// Netd is Android's netd as a test sees it: it listens on a unix stream socket and serves getaddrinfo as DnsProxyListener
// does: a command is what one read of at most 1024 bytes brings, NUL-terminated, split
// on spaces; unknown commands and wrong arguments get a text answer; a name of hosts gets
// 222 and its addresses, any other name 401 EAI_NODATA; the connection stays open for
// further commands until the client closes it.
type Netd struct {
	Path    string // the socket
	ln      *net.UnixListener
	hosts   map[string][]netip.Addr
	respond func(f *Netd, conn net.Conn, argv []string) (keepOpen bool) // if set, replaces the lookup
	Stop    chan struct{}                                               // closed at cleanup: stalls end

	mu    sync.Mutex
	cmds  []string
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// StartNetd starts a Netd answering for hosts (or by respond, if set); it stops with
// the test.
func StartNetd(t testing.TB, hosts map[string][]netip.Addr, respond func(*Netd, net.Conn, []string) bool) *Netd {
	t.Helper()
	f := &Netd{Path: filepath.Join(t.TempDir(), "dnsproxyd"), hosts: hosts, respond: respond, Stop: make(chan struct{}), conns: map[net.Conn]bool{}}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.Path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[conn] = true
			f.mu.Unlock()
			f.wg.Add(1)
			go f.serve(conn)
		}
	}()
	t.Cleanup(func() {
		close(f.Stop)
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *Netd) serve(conn net.Conn) {
	defer f.wg.Done()
	defer conn.Close()
	buf := make([]byte, 1024) // FrameworkListener's CMD_BUF_SIZE
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		if buf[n-1] != 0 {
			conn.Write([]byte("500 Command too large for buffer\x00"))
			continue
		}
		for _, cmd := range strings.SplitAfter(string(buf[:n]), "\x00") {
			if cmd == "" {
				continue
			}
			cmd = strings.TrimSuffix(cmd, "\x00")
			f.mu.Lock()
			f.cmds = append(f.cmds, cmd)
			f.mu.Unlock()
			if !f.dispatch(conn, strings.Split(cmd, " ")) {
				return
			}
		}
	}
}

func (f *Netd) dispatch(conn net.Conn, argv []string) bool {
	if argv[0] != "getaddrinfo" {
		conn.Write([]byte("500 Command not recognized\x00"))
		return true
	}
	if len(argv) != 8 {
		conn.Write([]byte("501 GetAddrInfoCmd::runCommand: invalid number of arguments: " + strconv.Itoa(len(argv)) + "\x00"))
		return true
	}
	for _, a := range argv[3:7] {
		if _, err := strconv.ParseInt(a, 10, 32); err != nil {
			conn.Write([]byte("501 GetAddrInfoCmd::runCommand: \x00"))
			return true
		}
	}
	if _, err := strconv.ParseUint(argv[7], 10, 32); err != nil {
		conn.Write([]byte("501 GetAddrInfoCmd::runCommand: \x00"))
		return true
	}
	if f.respond != nil {
		return f.respond(f, conn, argv)
	}
	ips, ok := f.hosts[argv[1]]
	if !ok {
		conn.Write(Answer(nil).Failure(EaiNodata))
		return true
	}
	conn.Write(Success(ips...))
	return true
}

// Commands returns the commands received so far, without their NUL.
func (f *Netd) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

// DNS is a minimal UDP DNS server for the tests: it answers A queries for
// records.test with 127.0.0.1 and every other query with no answer.
type DNS struct {
	conn    net.PacketConn
	Queries atomic.Int64 // queries answered
}

// StartDNS starts the server on a free loopback port; it stops with the test.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &DNS{conn: pc}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := s.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, addr)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return s
}

// Addr is the server's ip:port.
func (s *DNS) Addr() string { return s.conn.LocalAddr().String() }

// answer builds the response to one query, or nil for a malformed one.
func (s *DNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	s.Queries.Add(1)
	// The question: labels up to the root, then type and class.
	off := 12
	var labels []string
	for off < len(q) && q[off] != 0 {
		l := int(q[off])
		if off+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[off+1:off+1+l]))
		off += 1 + l
	}
	if off+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[off+1:])
	question := q[12 : off+5]
	match := strings.EqualFold(strings.Join(labels, "."), "records.test") && qtype == 1 // A
	resp := binary.BigEndian.AppendUint16(nil, binary.BigEndian.Uint16(q))              // ID
	resp = binary.BigEndian.AppendUint16(resp, 0x8180)                                  // response, RD, RA, NOERROR
	ancount := uint16(0)
	if match {
		ancount = 1
	}
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, ancount)
	resp = binary.BigEndian.AppendUint32(resp, 0) // NSCOUNT, ARCOUNT
	resp = append(resp, question...)
	if match {
		resp = append(resp, 0xC0, 12)                  // the name, by pointer
		resp = binary.BigEndian.AppendUint16(resp, 1)  // A
		resp = binary.BigEndian.AppendUint16(resp, 1)  // IN
		resp = binary.BigEndian.AppendUint32(resp, 60) // TTL
		resp = binary.BigEndian.AppendUint16(resp, 4)  // RDLENGTH
		resp = append(resp, 127, 0, 0, 1)
	}
	return resp
}
