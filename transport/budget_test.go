package transport

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"amos.example/amosd/internal/benchline"
)

// wireBudget is README.md's budget table: bytes on the wire per device-month, both directions, TLS
// included, for 31 daily syncs.
const wireBudget = 48 << 10

// dailySyncs uploads one activity record a day for 31 days to a fresh TLS collector, on
// a new connection each day (Upload closes its connections: a phone sleeps a day between
// syncs), and returns the bytes the server's listener read and wrote, TLS records
// included (TCP/IP headers are not), and the client's own count. The client connects to
// https://records.amos.example (dialled to the test server) so that the SNI and Host
// bytes are those of the real name.
func dailySyncs(t testing.TB, resume bool) (server, client int64) {
	s := startTLS(t, true)
	c, err := newClient(Config{ServerURL: "https://records.amos.example", CAFile: s.pki.CAFile, Timeout: testTimeout},
		options{noSessionCache: !resume, dialTo: s.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	recs, ids := makeRecords(t, 31)
	for i := range recs {
		res, err := c.Upload(context.Background(), recs[i:i+1])
		if err != nil || !slices.Equal(res.Acked, ids[i:i+1]) {
			t.Fatalf("day %d: %v, %+v", i+1, err, res)
		}
	}
	s.Close() // waits for the server's side of every connection to finish
	s.col.mu.Lock()
	resumed := 0
	for _, r := range s.col.resumed {
		if r {
			resumed++
		}
	}
	s.col.mu.Unlock()
	if want := map[bool]int{true: 30, false: 0}[resume]; resumed != want {
		t.Fatalf("%d of 31 handshakes resumed, want %d", resumed, want)
	}
	if n := s.count.accepted.Load(); n != 31 {
		t.Fatalf("%d connections, want 31", n)
	}
	return s.count.n.Load(), c.WireBytes()
}

// TestWireBudget measures 31 daily syncs of one 199-byte record against the 48 KiB of
// README.md's budget table, with TLS session resumption (the client's configuration) and, for
// comparison, with a full handshake every day.
func TestWireBudget(t *testing.T) {
	withResume, clientCount := dailySyncs(t, true)
	full, _ := dailySyncs(t, false)
	t.Logf("31 daily syncs of 1 record: %d bytes with session resumption (%d a day; client counted %d), %d with full handshakes; budget %d",
		withResume, withResume/31, clientCount, full, wireBudget)
	if withResume > wireBudget {
		t.Errorf("%d bytes on the wire for 31 daily syncs, budget %d", withResume, wireBudget)
	}
}

// TestYearDrain: a year of queued records (365) goes up in at most 2 requests (README.md's budget table).
func TestYearDrain(t *testing.T) {
	s := startTLS(t, true)
	recs, ids := makeRecords(t, 365)
	start := time.Now()
	res := mustUpload(t, s.client(t, ""), recs)
	t.Logf("365 records: %d requests, %v, %d bytes on the wire", res.Requests, time.Since(start), res.WireBytes)
	if res.Requests > 2 || !slices.Equal(res.Acked, ids) {
		t.Fatalf("%d requests, %d acked", res.Requests, len(res.Acked))
	}
}

// BenchmarkBudgetWireMonth reports the wire bytes of a month of daily syncs (README.md's budget table),
// counted by the server's listener, as a line for tools/benchreport.
func BenchmarkBudgetWireMonth(b *testing.B) {
	for range b.N {
		n, client := dailySyncs(b, true)
		full, _ := dailySyncs(b, false)
		b.ReportMetric(float64(n), "wire-bytes/month")
		benchline.Print("wire_month", float64(n), "bytes", fmt.Sprintf(
			"31 daily syncs of one 199-byte record, each on a new TLS 1.3 connection resuming the session, counted by the server's listener (TCP payload, TLS and HTTP included; the client counted %d); %d with a full handshake every day",
			client, full))
	}
}

// BenchmarkYearDrain reports the time and requests to upload 365 queued records.
func BenchmarkYearDrain(b *testing.B) {
	recs, _ := makeRecords(b, 365)
	for range b.N {
		b.StopTimer()
		s := startTLS(b, true)
		c := s.client(b, "")
		b.StartTimer()
		res, err := c.Upload(context.Background(), recs)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Requests), "requests")
	}
}
