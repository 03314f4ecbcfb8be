package collector

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/internal/benchline"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/pgtest"

	"github.com/jackc/pgx/v5"
)

// The benchmark fleet: 1,000 devices, each with a genesis and 255 days, so that each
// device's queue is one full batch of 256 records.
const (
	benchDevices = 1000
	benchRecords = proof.MaxBatchRecords
)

// benchNow is the server's clock in the benchmarks: every day of the fleet is within
// the last 13 months and none is in the future.
func benchNow() time.Time { return at(2026, time.November, 5, 12) }

// benchFleet returns every device's records, signed before any timing starts.
func benchFleet(b *testing.B) [][][]byte {
	b.Helper()
	m := newMaker(b, "konka")
	issued := at(2025, time.August, 1, 0)
	first := proof.NewDate(2026, time.January, 1)
	out := make([][][]byte, benchDevices)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range out {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d := newDevice(b, fmt.Sprintf("bench %d", i), func(k proof.Signer) *proof.Certificate {
				return m.certify(b, k, fmt.Sprintf("bench %d", i), issued)
			})
			recs := make([][]byte, 0, benchRecords)
			recs = append(recs, d.genesis())
			for day := first; len(recs) < benchRecords; day = day.Next() {
				recs = append(recs, d.day(day, 600, 2))
			}
			out[i] = recs
		})
	}
	wg.Wait()
	return out
}

// perDevice lays the fleet out as the sync protocol sends it: each batch is one
// device's queue of 256 records. The devices are dealt to n submitters.
func perDevice(fleet [][][]byte, n int) [][][][]byte {
	streams := make([][][][]byte, n)
	for i, recs := range fleet {
		streams[i%n] = append(streams[i%n], recs)
	}
	return streams
}

// interleaved lays the fleet out as the worst case for storage: each batch holds one
// record of each of 256 devices (every genesis first, then every first day, ...), so
// that every batch touches 256 devices' pages. The devices are dealt to n submitters.
func interleaved(fleet [][][]byte, n int) [][][][]byte {
	streams := make([][][][]byte, n)
	for g := range n {
		var flat [][]byte
		for round := range benchRecords {
			for i := g; i < len(fleet); i += n {
				flat = append(flat, fleet[i][round])
			}
		}
		for j := 0; j < len(flat); j += proof.MaxBatchRecords {
			streams[g] = append(streams[g], flat[j:min(j+proof.MaxBatchRecords, len(flat))])
		}
	}
	return streams
}

// BenchmarkIngest measures README.md's budget table's collector figure: records/s ingested, signature
// verification and durable storage included, in batches of 256 records from 1,000
// devices, on bbolt (fsync'd) and, side by side in the same run, on a real PostgreSQL
// server with its durable defaults ("postgres/..."). "submitters-N" ingests N streams of
// batches at once, as concurrent HTTP requests do. Each iteration starts from an empty
// ledger.
func BenchmarkIngest(b *testing.B) {
	fleet := benchFleet(b)
	total := benchDevices * benchRecords
	for _, backend := range []string{"bolt", "postgres"} {
		for _, layout := range []struct {
			name string
			fn   func([][][]byte, int) [][][][]byte
		}{{"per-device", perDevice}, {"interleaved", interleaved}} {
			for _, n := range []int{1, 2} {
				streams := layout.fn(fleet, n)
				name := fmt.Sprintf("%s/submitters-%d", layout.name, n)
				if backend == "postgres" {
					name = "postgres/" + name
				}
				b.Run(name, func(b *testing.B) {
					var srv *pgtest.Server
					if backend == "postgres" {
						srv = pgtest.Start(b, pgtest.Options{Durable: true})
					}
					var elapsed time.Duration
					for range b.N {
						b.StopTimer()
						var l ledger.Ledger
						var err error
						if srv != nil {
							l, err = pgledger.Open(srv.NewDatabase(b), pgledger.Options{})
						} else {
							l, err = ledger.OpenBolt(b.TempDir(), ledger.BoltOptions{})
						}
						if err != nil {
							b.Fatal(err)
						}
						// Every month of the fleet stays open: its records are accepted, not late.
						c, err := New(l, Options{Makers: registry(newMaker(b, "konka")), Now: benchNow, Schedule: claim.Schedule{AfterDays: 366, OffsetMinutes: 480}})
						if err != nil {
							b.Fatal(err)
						}
						accepted := make([]int, n)
						var wg sync.WaitGroup
						b.StartTimer()
						start := time.Now()
						for g, batches := range streams {
							wg.Go(func() {
								for _, batch := range batches {
									rc, err := c.Ingest(batch)
									if err != nil {
										b.Error(err)
										return
									}
									for _, r := range rc.Results {
										if r.Status == StatusAccepted {
											accepted[g]++
										}
									}
								}
							})
						}
						wg.Wait()
						elapsed += time.Since(start)
						b.StopTimer()
						sum := 0
						for _, a := range accepted {
							sum += a
						}
						if sum != total {
							b.Fatalf("%d of %d records accepted", sum, total)
						}
						l.Close()
						b.StartTimer()
					}
					rate := float64(total*b.N) / elapsed.Seconds()
					b.ReportMetric(rate, "records/s")
					b.ReportMetric(0, "ns/op")
					store := "bbolt (fsync per batch)"
					if srv != nil {
						store = "PostgreSQL on this machine (fsync and synchronous_commit on, SERIALIZABLE)"
					}
					benchline.Print("collector_ingest/"+name, rate, "records/s", fmt.Sprintf(
						"%d records of %d devices in batches of %d, verified and stored in %s, %d concurrent submitters, GOMAXPROCS %d",
						total, benchDevices, proof.MaxBatchRecords, store, n, runtime.GOMAXPROCS(0)))
				})
			}
		}
	}
}

// BenchmarkEd25519Verify is the pure signature verification rate of one activity
// record, on one core and on all of them, beside which BenchmarkIngest is read.
func BenchmarkEd25519Verify(b *testing.B) {
	d := newDevice(b, "verify", nil)
	d.genesis()
	rec := d.active(oct(1))
	pub := d.key.PublicKey()
	b.Run("1-core", func(b *testing.B) {
		for b.Loop() {
			if err := proof.VerifyEncoded(rec, pub); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
		benchline.Print("ed25519_verify/1-core", float64(b.N)/b.Elapsed().Seconds(), "verifies/s", "proof.VerifyEncoded of one activity record, one goroutine")
	})
	b.Run("all-cores", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := proof.VerifyEncoded(rec, pub); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
		benchline.Print("ed25519_verify/all-cores", float64(b.N)/b.Elapsed().Seconds(), "verifies/s",
			fmt.Sprintf("proof.VerifyEncoded of one activity record, GOMAXPROCS %d goroutines", runtime.GOMAXPROCS(0)))
	})
}

// claimsMonth is the month the claims benchmarks compute: October 2026, 31 days, open
// at benchNow under benchSchedule.
var claimsMonth = Month{Year: 2026, Month: time.October}

// benchSchedule keeps every month of the benchmark fleets open at benchNow.
var benchSchedule = claim.Schedule{AfterDays: 366, OffsetMinutes: 480}

// fillClaims writes n certified, sold devices of maker m straight into the ledger, each
// with 20 active days of claimsMonth in its month aggregate (the counters differ from
// device to device: no clones), as ingest would have left them. It returns the devices'
// ids. The keys are not real Ed25519 points: claims never verify a record.
func fillClaims(b *testing.B, l ledger.Ledger, m maker, n int) {
	b.Helper()
	type dev struct {
		d    *ledger.Device
		sale *ledger.Sale
	}
	devs := make([]dev, n)
	for i := range devs {
		var pub [32]byte
		binary.BigEndian.PutUint64(pub[:], uint64(i)+1)
		pub[31] = 0x5a
		k := proof.Ed25519Key(pub)
		c := &proof.Certificate{DevicePublicKey: k, SerialTag: serial(fmt.Sprint("claims ", i)), MakerID: m.id, Model: "Amos T1", IssuedAt: at(2026, time.January, 1, 0).Unix()}
		cb, err := c.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		devs[i] = dev{
			d:    &ledger.Device{ID: k.DeviceID(), PublicKey: k, FirstSeen: at(2026, time.January, 2, 0).Unix(), Cert: cb, CertMakerKey: m.key.PublicKey(), CertEpoch: 1},
			sale: &ledger.Sale{SerialTag: c.SerialTag, MakerID: m.id, SoldAt: proof.NewDate(2026, time.January, 1), Channel: "taobao", RegisteredAt: at(2026, time.January, 1, 0).Unix()},
		}
	}
	slices.SortFunc(devs, func(x, y dev) int { return bytes.Compare(x.d.ID[:], y.d.ID[:]) })
	const chunk = 20000
	for lo := 0; lo < n; lo += chunk {
		err := l.Update(func(tx ledger.Tx) error {
			for i := lo; i < min(lo+chunk, n); i++ {
				if err := tx.PutDevice(devs[i].d); err != nil {
					return err
				}
				if err := tx.PutSale(devs[i].sale); err != nil {
					return err
				}
				for day := 1; day <= 20; day++ {
					date := proof.NewDate(2026, time.October, day)
					a := proof.ActivityDay{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: 600 + uint32(i%50000), Unlocks: uint16(2 + i/50000%1000), ScreenOns: uint16(day), ActiveHours: 1 << 10}
					if err := tx.AddDay(devs[i].d.ID, 1, &ledger.Day{MintedAt: date.Next().Start(480).Unix() + 600, Activity: a}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchLedgers opens an empty ledger of each backend for a benchmark. fn's settle, called
// once the ledger is filled, does what a database does in the background after a bulk
// load, so that it does not run during the measurement: on PostgreSQL, VACUUM ANALYZE
// (which autovacuum starts on its own some time after a million inserts).
func benchLedgers(b *testing.B, fn func(b *testing.B, name string, l ledger.Ledger, settle func())) {
	b.Run("bolt", func(b *testing.B) {
		l, err := ledger.OpenBolt(b.TempDir(), ledger.BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		fn(b, "bolt", l, func() {})
	})
	b.Run("postgres", func(b *testing.B) {
		// A payer's server keeps its working set in shared buffers: a month's
		// aggregates of 1 M devices are 685 MB.
		srv := pgtest.Start(b, pgtest.Options{Settings: []string{"shared_buffers=1GB"}})
		url := srv.NewDatabase(b)
		l, err := pgledger.Open(url, pgledger.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		fn(b, "postgres", l, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkClaims measures a month's provisional claim over AMOS_BENCH_CLAIMS_DEVICES
// (default 1,000,000) paid devices, read from the month aggregates, on bbolt and on
// PostgreSQL: README's claims figure (issue 18: under 5 s for 1 M devices).
func BenchmarkClaims(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("AMOS_BENCH_CLAIMS_DEVICES")); err == nil && v > 0 {
		n = v
	}
	benchLedgers(b, func(b *testing.B, name string, l ledger.Ledger, settle func()) {
		m := newMaker(b, "konka")
		fillClaims(b, l, m, n)
		settle()
		c, err := New(l, Options{Makers: registry(m), Now: benchNow, Schedule: benchSchedule})
		if err != nil {
			b.Fatal(err)
		}
		// A first claim, not measured, as the collector has computed one before: the
		// page cache and the database's buffers are warm. Then the median of three: the
		// machine is shared.
		start := time.Now()
		if _, err := c.Claims(claimsMonth); err != nil {
			b.Fatal(err)
		}
		cold := time.Since(start)
		const runs = 3
		var times []float64
		b.ResetTimer()
		for range b.N {
			for range runs {
				c.generation.Add(1) // no cached claim: computed every time
				start := time.Now()
				cl, err := c.Claims(claimsMonth)
				times = append(times, time.Since(start).Seconds())
				if err != nil {
					b.Fatal(err)
				}
				if len(cl.Rows) != 1 || cl.Rows[0].Paid != n {
					b.Fatalf("claim %+v, want %d paid", cl.Rows, n)
				}
			}
		}
		slices.Sort(times)
		s := times[len(times)/2]
		b.ReportMetric(s, "s/claim")
		benchline.Print("collector_claims/"+name, s, "s", fmt.Sprintf("provisional claim of %s for %d paid devices (20 active days each) from the month aggregates, GOMAXPROCS %d: the median of %d claims (%.2f-%.2f s) after a first one (%.2f s)",
			claimsMonth, n, runtime.GOMAXPROCS(0), len(times), times[0], times[len(times)-1], cold.Seconds()))
	})
}

// BenchmarkIngestUnderClaims measures what concurrent claims calls cost ingest: the
// latency of 256-record batches while 16 callers ask for a month's claim over 20,000
// paid devices without pause, beside the same batches with no caller (issue 18: 85 ms
// became 0.8-1.5 s before claims read aggregates and shared one computation).
func BenchmarkIngestUnderClaims(b *testing.B) {
	fleet := benchFleet(b)[:200]
	benchLedgers(b, func(b *testing.B, name string, l ledger.Ledger, settle func()) {
		m := newMaker(b, "konka")
		fillClaims(b, l, m, 20000)
		settle()
		c, err := New(l, Options{Makers: registry(m), Now: benchNow, Schedule: benchSchedule})
		if err != nil {
			b.Fatal(err)
		}
		ingest := func(batches [][][]byte) []time.Duration {
			var lat []time.Duration
			for _, batch := range batches {
				start := time.Now()
				if _, err := c.Ingest(batch); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			return lat
		}
		quiet := ingest(fleet[:100])
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var claims atomic.Int64
		for range 16 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := c.Claims(claimsMonth); err != nil {
						b.Error(err)
						return
					}
					claims.Add(1)
				}
			})
		}
		busy := ingest(fleet[100:])
		close(stop)
		wg.Wait()
		for _, f := range []struct {
			label string
			lat   []time.Duration
		}{{"quiet", quiet}, {"16-claims-callers", busy}} {
			for _, q := range []struct {
				name string
				p    float64
			}{{"p50", 0.5}, {"p99", 0.99}} {
				v := f.lat[int(q.p*float64(len(f.lat)-1))].Seconds() * 1000
				benchline.Print(fmt.Sprintf("collector_ingest_under_claims/%s/%s/%s", name, f.label, q.name), v, "ms", fmt.Sprintf(
					"latency of a 256-record batch, %d batches; %d claims answered meanwhile over 20,000 paid devices, GOMAXPROCS %d", len(f.lat), claims.Load(), runtime.GOMAXPROCS(0)))
			}
		}
	})
}
