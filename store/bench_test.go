package store

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"amos.example/amosd/proof"
)

var (
	benchOnce sync.Once
	benchRecs [][]byte // a genesis and 12,000 days, signed once for every benchmark
)

func benchRecords() [][]byte {
	benchOnce.Do(func() {
		c := newChainNoT("bench")
		benchRecs = append(benchRecs, c.genesis())
		for range 12000 {
			benchRecs = append(benchRecs, c.day())
		}
	})
	return benchRecs
}

// bulkMint mints records in one transaction: benchmark setup only, where an fsync
// per record would take minutes.
func bulkMint(tb testing.TB, s *Store, recs [][]byte) {
	tb.Helper()
	var n int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, rec := range recs {
			r, err := proof.Decode(rec)
			if err != nil {
				return err
			}
			if _, err := mintTx(tx, r, rec, nil); err != nil {
				return err
			}
			n += int64(len(rec))
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.payload.Add(n)
}

// BenchmarkMint is one record per transaction, fsync'd, as the agent mints.
func BenchmarkMint(b *testing.B) {
	recs := benchRecords()
	s := openTest(b, b.TempDir(), Options{MaxBytes: 64 << 20})
	mustMint(b, s, recs[0], nil)
	i := 1
	for b.Loop() {
		if i == len(recs) {
			b.Fatalf("more than %d iterations", len(recs))
		}
		if _, err := s.Mint(recs[i], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAck256 acknowledges a whole 256-record batch in one transaction.
func BenchmarkAck256(b *testing.B) {
	recs := benchRecords()[1:257]
	s := openTest(b, b.TempDir(), Options{MaxBytes: 64 << 20})
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// The same 256 records queued again: Ack reads only their epoch and seq.
		if err := s.db.Update(func(tx *bolt.Tx) error {
			q := tx.Bucket(bucketQueue)
			for _, r := range recs {
				k, err := q.NextSequence()
				if err != nil {
					return err
				}
				if err := q.Put(u64key(k), r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		items, err := s.Peek(256, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := s.Ack(ids(items)...); err != nil || n != len(items) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkPeek256 reads the oldest 256 records of a queue of 10,000.
func BenchmarkPeek256(b *testing.B) {
	recs := benchRecords()
	s := openTest(b, b.TempDir(), Options{MaxBytes: 64 << 20})
	bulkMint(b, s, recs[:10001])
	b.ReportAllocs()
	for b.Loop() {
		items, err := s.Peek(256, 64<<10)
		if err != nil || len(items) != 256 {
			b.Fatal(len(items), err)
		}
	}
}

// BenchmarkOpen10k opens and fully checks a store of 10,000 queued records.
func BenchmarkOpen10k(b *testing.B) {
	recs := benchRecords()
	dir := b.TempDir()
	s := openTest(b, dir, Options{})
	bulkMint(b, s, recs[:10001])
	s.Close()
	for b.Loop() {
		s, err := Open(Options{Dir: dir})
		if err != nil || s.Recovered() != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkFileSize10kMinted mints 10,000 records one transaction each, as a device
// would over the years, and reports the resulting file size (one iteration).
func BenchmarkFileSize10kMinted(b *testing.B) {
	recs := benchRecords()
	for b.Loop() {
		dir := b.TempDir()
		s := openTest(b, dir, Options{})
		for _, r := range recs[:10001] {
			if _, err := s.Mint(r, nil); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		fi, _ := os.Stat(filepath.Join(dir, FileName))
		b.ReportMetric(float64(fi.Size()), "file-bytes")
	}
}
