package proof

import "testing"

func BenchmarkEncodeActivity(b *testing.B) {
	f := newFixture(b)
	r, err := Decode(f.days[0])
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, ActivityRecordSize)
	b.ReportAllocs()
	b.SetBytes(ActivityRecordSize)
	for b.Loop() {
		if _, err := r.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeActivity(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	b.SetBytes(ActivityRecordSize)
	for b.Loop() {
		if _, err := Decode(f.days[0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeGenesis(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(f.genesis); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignActivity(b *testing.B) {
	f := newFixture(b)
	r := f.dayRecord(0, HashRecord(f.genesis))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Sign(f.device); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyActivity(b *testing.B) {
	f := newFixture(b)
	pub := f.device.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyEncoded(f.days[0], pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChainVerifyPerRecord is the cost of Chain.Append: decode, signature, links.
func BenchmarkChainVerifyPerRecord(b *testing.B) {
	f := newFixture(b)
	start, _, err := StartChain(f.genesis, f.makers)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	c := *start
	for b.Loop() {
		if i == len(f.days) {
			c, i = *start, 0
		}
		if _, err := c.Append(f.days[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDecodeBatch256(b *testing.B) {
	f := newFixture(b)
	recs := make([][]byte, MaxBatchRecords)
	for i := range recs {
		recs[i] = f.days[i%len(f.days)]
	}
	batch, err := EncodeBatch(recs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if _, err := DecodeBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignActivityP256 is the device's cost of a P-256 record with the file
// backend (ECDSA over SHA-256, low s).
func BenchmarkSignActivityP256(b *testing.B) {
	f := newFixture(b)
	r := f.dayRecord(0, HashRecord(f.p256Genesis))
	r.DeviceID = f.p256.PublicKey().DeviceID()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Sign(f.p256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyActivityP256 is the collector's cost of a P-256 record's signature.
func BenchmarkVerifyActivityP256(b *testing.B) {
	f := newFixture(b)
	pub := f.p256.PublicKey()
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyEncoded(f.p256Days[0], pub); err != nil {
			b.Fatal(err)
		}
	}
}
