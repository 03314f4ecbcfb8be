package proof

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// addGoldenSeeds seeds a fuzz target with every golden file, valid and invalid.
func addGoldenSeeds(f *testing.F) {
	for _, pattern := range []string{"*.bin", "*.batch", "invalid/*.bin"} {
		files, err := filepath.Glob(filepath.Join(goldenDir, pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode/encode is not the identity:\n in %x\nout %x", b, again)
		}
		if r.Size() != len(b) {
			t.Fatalf("Size %d, encoded %d", r.Size(), len(b))
		}
	})
}

// FuzzParseCertificate: ParseCertificate never panics, and what it accepts re-encodes
// to the same bytes.
func FuzzParseCertificate(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCertificate(b)
		if err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed certificate does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse/encode is not the identity:\n in %x\nout %x", b, again)
		}
	})
}

// FuzzDecodeBatch: DecodeBatch never panics, keeps to the limits, and what it accepts
// re-frames to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeBatch(b)
		if err != nil {
			return
		}
		if len(recs) == 0 || len(recs) > MaxBatchRecords || len(b) > MaxBatchBytes {
			t.Fatalf("accepted %d records in %d bytes", len(recs), len(b))
		}
		again, err := EncodeBatch(recs)
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("decode/encode of a batch is not the identity")
		}
	})
}

// FuzzVerifyChain: chain verification of any batch never panics, and a chain it accepts
// has a head that is the hash of the last record.
func FuzzVerifyChain(f *testing.F) {
	addGoldenSeeds(f)
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := DecodeBatch(b)
		if err != nil {
			return
		}
		c, err := VerifyChain(recs, fx.makers)
		if err != nil {
			return
		}
		if c.Head != HashRecord(recs[len(recs)-1]) || c.Seq != uint64(len(recs)) {
			t.Fatalf("head %+v after %d records", c, len(recs))
		}
	})
}
