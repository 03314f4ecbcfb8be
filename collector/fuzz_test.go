package collector

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"collector.json", "collector-dev.json"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "collector", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"allow_insecure_http": true, "eligibility": {"min_active_days": 3}}`))
	f.Add([]byte(`{"makers": [{"id": "a"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("fuzz.json", b)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) || ce.File != "fuzz.json" {
				t.Fatalf("error %v is not a *ConfigError naming the file", err)
			}
			return
		}
		// What parses is valid: a registry entry and a token per maker.
		if len(c.Registry()) != len(c.Makers) || len(c.TokenHashes()) != len(c.Makers) {
			t.Fatalf("registry %d, tokens %d, makers %d", len(c.Registry()), len(c.TokenHashes()), len(c.Makers))
		}
		if !c.UsesTLS() && !c.AllowInsecureHTTP {
			t.Fatal("neither TLS nor allow_insecure_http")
		}
	})
}

func FuzzParseMonth(f *testing.F) {
	for _, s := range []string{"2026-10", "1970-01", "9999-12", "2026-13", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMonth(s)
		if err != nil {
			if !errors.Is(err, ErrMonth) {
				t.Fatalf("error %v is not ErrMonth", err)
			}
			return
		}
		if m.String() != s || !m.First().Valid() || !m.Last().Valid() || m.Last() < m.First() {
			t.Fatalf("%q parsed as %v (%s..%s)", s, m, m.First(), m.Last())
		}
	})
}

// FuzzIngest throws arbitrary batch bodies at the ingest path, after a golden chain
// is stored: it must never panic, answer exactly one result per decoded record (or
// refuse the batch as a whole), use only docs/protocol.md's statuses and reasons, and leave
// every stored chain valid.
func FuzzIngest(f *testing.F) {
	g := loadGolden(f)
	whole, err := os.ReadFile(filepath.Join(goldenDir, "chain31.batch"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(whole)
	files, _ := filepath.Glob(filepath.Join(goldenDir, "invalid", "*.bin"))
	for _, p := range files {
		b, _ := os.ReadFile(p)
		if len(b) <= proof.MaxBatchBytes {
			f.Add(b)
			if batch, err := proof.EncodeBatch([][]byte{b}); err == nil {
				f.Add(batch)
			}
		}
	}
	clock := &fixedClock{at(2026, time.October, 20, 12)}
	valid := map[string]bool{"accepted": true, "duplicate": true, "retry chain_gap": true}
	for _, r := range []Reason{ReasonBadFormat, ReasonBadSignature, ReasonUnknownDevice, ReasonChainFork,
		ReasonFutureDate, ReasonBadCert, ReasonUnknownMaker, ReasonStale, ReasonLate, ReasonImplausible} {
		valid["rejected "+string(r)] = true
	}
	base := ledger.NewMem()
	ingest(f, newCollector(f, base, clock, g.registry()), g.chain[:10]...)
	f.Fuzz(func(t *testing.T, body []byte) {
		c := newCollector(t, copyLedger(t, base), clock, g.registry())
		records, decodeErr := proof.DecodeBatch(body)
		rc, err := c.IngestBatch(body)
		if decodeErr != nil {
			if err == nil || !(errors.Is(err, proof.ErrBatchFraming) || errors.Is(err, proof.ErrBatchTooMany) || errors.Is(err, proof.ErrBatchTooLarge)) {
				t.Fatalf("batch refused by DecodeBatch (%v), IngestBatch said %v", decodeErr, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rc.Results) != len(records) {
			t.Fatalf("%d results for %d records", len(rc.Results), len(records))
		}
		linked := false
		for i, v := range verdicts(rc.Results) {
			if !valid[v] {
				t.Fatalf("result %d: %q is not a docs/protocol.md verdict", i, v)
			}
			switch v {
			case "rejected future_date", "rejected stale", "rejected bad_cert", "rejected unknown_maker", "rejected late", "rejected implausible_mint":
				linked = true // possibly linked: check the chains
			case "accepted":
				linked = true
				if _, err := proof.Decode(records[i]); err != nil {
					t.Fatalf("accepted an undecodable record: %v", err)
				}
			}
		}
		if linked {
			checkChains(t, c)
		}
	})
}

// copyLedger returns a ledger.Mem that holds what src holds, read and written through
// the ledger's transactions.
func copyLedger(t testing.TB, src ledger.Ledger) *ledger.Mem {
	t.Helper()
	dst := ledger.NewMem()
	err := src.View(func(from ledger.Tx) error {
		return dst.Update(func(to ledger.Tx) error {
			return from.Devices(func(d *ledger.Device) error {
				if err := to.PutDevice(d); err != nil {
					return err
				}
				err := from.Heads(d.ID, func(h *ledger.Head) error {
					if err := to.PutHead(h); err != nil {
						return err
					}
					return from.Records(d.ID, h.Epoch, 1, math.MaxUint64, func(seq uint64, r *ledger.Record) error {
						return to.PutRecord(d.ID, h.Epoch, seq, r)
					})
				})
				if err != nil {
					return err
				}
				return from.ForkEvidence(d.ID, func(record []byte) error {
					_, err := to.AddForkEvidence(d.ID, record)
					return err
				})
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
