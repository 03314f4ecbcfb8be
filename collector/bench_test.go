package collector

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/internal/benchline"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/pgtest"
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
