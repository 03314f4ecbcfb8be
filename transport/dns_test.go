package transport

import (
	"encoding/binary"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// dnsServer is a minimal UDP DNS server for the tests: it answers A queries for
// records.test with 127.0.0.1 and every other query with no answer.
type dnsServer struct {
	conn    net.PacketConn
	queries atomic.Int64
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: pc}
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

func (s *dnsServer) addr() string { return s.conn.LocalAddr().String() }

// answer builds the response to one query, or nil for a malformed one.
func (s *dnsServer) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	s.queries.Add(1)
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

// TestDNSServers: without /etc/resolv.conf and dnsproxyd, names are resolved with
// dns_servers, in turn, so that a dead first server does not stop the upload. Which
// source wins when is TestResolverPrecedence.
func TestDNSServers(t *testing.T) {
	s := startTLS(t, true)
	dns := startDNS(t)
	none := filepath.Join(t.TempDir(), "absent")
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	url := "https://records.test:" + port
	recs, ids := makeRecords(t, 2)
	for _, servers := range [][]string{{dns.addr()}, {"127.0.0.1:1", dns.addr()}} {
		c, err := newClient(Config{ServerURL: url, CAFile: s.pki.CAFile, Timeout: testTimeout, DNSServers: servers},
			options{resolvConf: none, dnsproxyd: none})
		if err != nil {
			t.Fatal(err)
		}
		before := dns.queries.Load()
		res := mustUpload(t, c, recs)
		if !slices.Equal(res.Acked, ids) {
			t.Fatalf("%v: %+v", servers, res)
		}
		if c.Resolver().Source() != SourceDNSServers || dns.queries.Load() == before {
			t.Errorf("%v: the DNS server got no query", servers)
		}
	}
}
