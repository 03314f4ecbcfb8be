package httpapi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/proof"
)

func TestAddrKey(t *testing.T) {
	tests := []struct {
		remote, want string
	}{
		{"203.0.113.7:443", "203.0.113.7/32"},
		{"203.0.113.7", "203.0.113.7/32"},
		{"[::ffff:203.0.113.7]:5", "203.0.113.7/32"}, // IPv4-mapped: the IPv4 address
		{"[2001:db8:1:2:3:4:5:6]:1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:2", "2001:db8:1:2::/64"}, // same /64: same bucket
		{"[2001:db8:1:3::1]:1", "2001:db8:1:3::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"}, // zone dropped
		{"[::1]:8443", "::/64"},
		{"", "invalid Prefix"},
		{"@", "invalid Prefix"}, // a Unix socket
		{"example.com:80", "invalid Prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.remote, func(t *testing.T) {
			if got := addrKey(tc.remote).String(); got != tc.want {
				t.Errorf("addrKey(%q) = %s, want %s", tc.remote, got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ remote, want string }{
		{"203.0.113.7:1", "203.0.113.7"}, {"[2001:db8::9]:1", "2001:db8::/64"}, {"@", "unknown"},
	} {
		if got := addrString(addrKey(tc.remote)); got != tc.want {
			t.Errorf("addrString(%q) = %s, want %s", tc.remote, got, tc.want)
		}
	}
}

// TestAddrLimiterBucket: burst requests at once, then one per 1/rate, Retry-After the
// time until the next token; the bucket never holds more than burst; two addresses of
// one IPv6 /64 share a bucket, another /64 has its own.
func TestAddrLimiterBucket(t *testing.T) {
	ck := &clock{t: time.Unix(1790000000, 0)}
	l := newAddrLimiter(2, 3, 16, ck.now)
	a, sameA, b := addrKey("[2001:db8:0:1::1]:1"), addrKey("[2001:db8:0:1::2]:2"), addrKey("[2001:db8:0:2::1]:1")
	steps := []struct {
		advance time.Duration
		key     netip.Prefix
		ok      bool
		wait    time.Duration
	}{
		{0, a, true, 0},
		{0, sameA, true, 0},
		{0, a, true, 0},
		{0, sameA, false, 500 * time.Millisecond},
		{0, b, true, 0},
		{250 * time.Millisecond, a, false, 250 * time.Millisecond},
		{250 * time.Millisecond, a, true, 0},
		{0, a, false, 500 * time.Millisecond},
		{time.Hour, a, true, 0}, // refilled to the burst, not beyond
		{0, a, true, 0},
		{0, a, true, 0},
		{0, a, false, 500 * time.Millisecond},
	}
	for i, s := range steps {
		ck.add(s.advance)
		if ok, wait := l.take(s.key); ok != s.ok || wait != s.wait {
			t.Errorf("step %d (%s): %v %v, want %v %v", i, s.key, ok, wait, s.ok, s.wait)
		}
	}
	if got := retryAfter(500 * time.Millisecond); got != "1" {
		t.Errorf("Retry-After of 0.5 s: %s", got)
	}
}

// TestAddrLimiterBounded: however many addresses come, the table holds at most max;
// each address forgotten while still limited is counted as an eviction; buckets that
// have refilled are dropped as the table is used, so it shrinks back without a sweep.
func TestAddrLimiterBounded(t *testing.T) {
	ck := &clock{t: time.Unix(1790000000, 0)}
	const max, n = 16, 10000
	l := newAddrLimiter(1, 2, max, ck.now)
	evicted := 0
	l.evicted = func() { evicted++ }
	for i := range n {
		var key netip.Prefix
		if i%2 == 0 {
			var v4 [4]byte
			binary.BigEndian.PutUint32(v4[:], 0x0a000000+uint32(i))
			key = addrKey(netip.AddrFrom4(v4).String())
		} else {
			var v6 [16]byte
			binary.BigEndian.PutUint64(v6[:8], 0x20010db800000000+uint64(i)) // a /64 each
			key = addrKey(netip.AddrPortFrom(netip.AddrFrom16(v6), 1).String())
		}
		for range 3 { // exhausts the bucket: every entry is still limited
			l.take(key)
		}
		if got := l.len(); got > max {
			t.Fatalf("after %d addresses: %d tracked, max %d", i+1, got, max)
		}
	}
	if l.len() != max || l.lru.Len() != max || evicted != n-max {
		t.Errorf("%d tracked (list %d), %d evicted; want %d, %d", l.len(), l.lru.Len(), evicted, max, n-max)
	}
	// Two seconds later every bucket is full again: each take drops two of them.
	ck.add(2 * time.Second)
	last := addrKey("192.0.2.1:1")
	for range max / 2 {
		if ok, _ := l.take(last); !ok {
			t.Fatal("refused")
		}
		ck.add(time.Second) // keeps last's bucket from emptying
	}
	if got := l.len(); got != 1 || evicted != n-max {
		t.Errorf("after the refill: %d tracked, %d evicted; want 1, %d", got, evicted, n-max)
	}
}

// TestAddrLimiterLRU: with the table full, the address used least recently is the one
// forgotten: a flooding address that keeps coming back stays limited.
func TestAddrLimiterLRU(t *testing.T) {
	ck := &clock{t: time.Unix(1790000000, 0)}
	l := newAddrLimiter(1, 1, 2, ck.now)
	flood, quiet, next := addrKey("198.51.100.1:1"), addrKey("198.51.100.2:1"), addrKey("198.51.100.3:1")
	for _, s := range []struct {
		key netip.Prefix
		ok  bool
	}{{flood, true}, {quiet, true}, {flood, false}, {next, true}, {flood, false}, {quiet, true}} {
		if ok, _ := l.take(s.key); ok != s.ok {
			t.Fatalf("%s: %v, want %v", s.key, ok, s.ok)
		}
	}
}

// clientFrom returns a client of the rig's server whose connections come from the
// local address ip (a loopback address), or skips the test when it cannot bind it.
func (r *rig) clientFrom(ip string) *http.Client {
	r.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		r.t.Skipf("cannot use the loopback address %s: %v", ip, err)
	}
	ln.Close()
	tr := r.client.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr.DialContext = d.DialContext
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	r.t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestAddressLimit: on a real server, an address that floods POST /v1/records gets 429
// with Retry-After (before its body is even looked at), while another address's
// uploads are accepted; the flooder's next token comes back on the limiter's clock; the
// 429s are counted as address_limited, and the address table is exported.
func TestAddressLimit(t *testing.T) {
	r := newRig(t, nil, nil, func(o *Options) { o.AddressRequestsPerSecond, o.AddressBurst, o.MaxAddresses = 1, 3, 16 })
	flooder, other := r.clientFrom("127.0.0.1"), r.clientFrom("127.0.0.2")
	upload := func(c *http.Client, label, contentType string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest("POST", r.srv.URL+"/v1/records", bytes.NewReader(batch(t, newDevice(t, label, nil, "").Genesis())))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
	}
	steps := []struct {
		name    string
		client  *http.Client
		ctype   string
		advance time.Duration
		status  int
		retry   string
	}{
		{"flood 1", flooder, proof.BatchContentType, 0, 200, ""},
		{"flood 2", flooder, proof.BatchContentType, 0, 200, ""},
		{"flood 3", flooder, proof.BatchContentType, 0, 200, ""},
		{"flood 4", flooder, proof.BatchContentType, 0, 429, "1"},
		{"flood, wrong type", flooder, "application/json", 0, 429, "1"}, // the address is checked first
		{"other 1", other, proof.BatchContentType, 0, 200, ""},
		{"other 2", other, proof.BatchContentType, 0, 200, ""},
		{"other 3", other, proof.BatchContentType, 0, 200, ""},
		{"flood 5", flooder, proof.BatchContentType, 0, 429, "1"},
		{"flood after 1 s", flooder, proof.BatchContentType, time.Second, 200, ""},
		{"flood 6", flooder, proof.BatchContentType, 0, 429, "1"},
	}
	for i, s := range steps {
		r.clock.add(s.advance)
		status, retry, body := upload(s.client, fmt.Sprintf("address %d", i), s.ctype)
		if status != s.status || retry != s.retry {
			t.Errorf("%s: %d Retry-After %q, want %d %q: %s", s.name, status, retry, s.status, s.retry, body)
		}
		if status == 429 && !strings.Contains(body, `"error":"address 127.0.0.1: more than 1 requests a second (burst 3)"`) {
			t.Errorf("%s: body %s", s.name, body)
		}
	}
	checkMetrics(t, r.scrape(), []metricWant{
		{"amos_collector_uploads_total", []string{"outcome=address_limited"}, 4},
		{"amos_collector_uploads_total", []string{"outcome=stored"}, 7},
		{"amos_collector_uploads_total", []string{"outcome=device_limited"}, 0},
		{"amos_collector_records_total", []string{"verdict=accepted", "reason="}, 7},
		{"amos_collector_addresses", nil, 2},
		{"amos_collector_address_evictions_total", nil, 0},
	})
	// GET requests are not limited by address.
	for range 5 {
		if status, _, _ := r.get("/healthz", ""); status != 200 {
			t.Fatalf("healthz: %d", status)
		}
	}
}

// TestFromConfigAddressLimits: the limits keys reach the Handler's options, with the
// defaults of docs/config.md; out-of-range values are refused naming the key.
func TestFromConfigAddressLimits(t *testing.T) {
	tests := []struct {
		name, file  string
		rate, burst int
		max         int
		err         string
	}{
		{"defaults", `{"allow_insecure_http": true}`, 10, 40, 65536, ""},
		{"set", `{"allow_insecure_http": true, "limits": {"address_requests_per_second": 2, "address_burst": 5, "max_addresses": 16}}`, 2, 5, 16, ""},
		{"off", `{"allow_insecure_http": true, "limits": {"address_requests_per_second": 0}}`, 0, 40, 65536, ""},
		{"negative rate", `{"allow_insecure_http": true, "limits": {"address_requests_per_second": -1}}`, 0, 0, 0, "key limits.address_requests_per_second: -1, want 0 (off)..100000"},
		{"rate too high", `{"allow_insecure_http": true, "limits": {"address_requests_per_second": 100001}}`, 0, 0, 0, "key limits.address_requests_per_second: 100001, want 0 (off)..100000"},
		{"no burst", `{"allow_insecure_http": true, "limits": {"address_burst": 0}}`, 0, 0, 0, "key limits.address_burst: 0, want 1..100000"},
		{"tiny table", `{"allow_insecure_http": true, "limits": {"max_addresses": 15}}`, 0, 0, 0, "key limits.max_addresses: 15, want 16..1000000"},
		{"huge table", `{"allow_insecure_http": true, "limits": {"max_addresses": 1000001}}`, 0, 0, 0, "key limits.max_addresses: 1000001, want 16..1000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := collector.ParseConfig("config.json", []byte(tc.file))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := FromConfig(cfg, nil, nil)
			if o.AddressRequestsPerSecond != tc.rate || o.AddressBurst != tc.burst || o.MaxAddresses != tc.max {
				t.Errorf("options %d/s burst %d max %d, want %d %d %d", o.AddressRequestsPerSecond, o.AddressBurst, o.MaxAddresses, tc.rate, tc.burst, tc.max)
			}
		})
	}
}
