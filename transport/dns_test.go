package transport

import (
	"amos.example/amosd/internal/resolve"
	"amos.example/amosd/rigs/fakedns"
	"net"
	"path/filepath"
	"slices"
	"testing"
)

// TestDNSServers: without /etc/resolv.conf and dnsproxyd, names are resolved with
// dns_servers, in turn, so that a dead first server does not stop the upload. Which
// source wins when is TestResolverPrecedence.
func TestDNSServers(t *testing.T) {
	s := startTLS(t, true)
	dns := fakedns.StartDNS(t)
	none := filepath.Join(t.TempDir(), "absent")
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	url := "https://records.test:" + port
	recs, ids := makeRecords(t, 2)
	for _, servers := range [][]string{{dns.Addr()}, {"127.0.0.1:1", dns.Addr()}} {
		c, err := newClient(Config{ServerURL: url, CAFile: s.pki.CAFile, Timeout: testTimeout, DNSServers: servers},
			options{resolvConf: none, dnsproxyd: none})
		if err != nil {
			t.Fatal(err)
		}
		before := dns.Queries.Load()
		res := mustUpload(t, c, recs)
		if !slices.Equal(res.Acked, ids) {
			t.Fatalf("%v: %+v", servers, res)
		}
		if c.Resolver().Source() != resolve.SourceDNSServers || dns.Queries.Load() == before {
			t.Errorf("%v: the DNS server got no query", servers)
		}
	}
}
