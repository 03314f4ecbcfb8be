package proof

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	unattributed := f.genesisRecord()
	unattributed.Body.(*Genesis).Cert = nil
	unattributed.Body.(*Genesis).Reason = ReasonStoreRecreated
	unattributed.Epoch = 7
	all := &Record{
		Flags:    KnownFlags,
		DeviceID: f.device.PublicKey().DeviceID(),
		Epoch:    1<<32 - 1,
		Seq:      1<<64 - 1,
		MintedAt: 1<<63 - 1,
		UptimeMS: 1<<64 - 1,
		Body: &ActivityDay{
			Date: 99991231, UTCOffsetMinutes: MinUTCOffsetMinutes,
			InteractiveSeconds: 86400, Unlocks: 65535, ScreenOns: 65535, ActiveHours: AllHours,
		},
	}
	tests := []struct {
		name string
		rec  *Record
		size int
	}{
		{"genesis with certificate", f.genesisRecord(), HeaderSize + genesisFixedSize + len(f.certBytes) + SignatureSize},
		{"genesis without certificate", unattributed, HeaderSize + genesisFixedSize + SignatureSize},
		{"activity day", f.dayRecord(0, HashRecord(f.genesis)), ActivityRecordSize},
		{"activity day at every limit", all, ActivityRecordSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.rec.Sign(f.device)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.size || tc.rec.Size() != tc.size {
				t.Fatalf("encoded %d bytes, Size %d, want %d", len(b), tc.rec.Size(), tc.size)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.rec) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, tc.rec)
			}
			if err := got.Verify(f.device.PublicKey()); err != nil {
				t.Fatal(err)
			}
			if err := VerifyEncoded(b, f.device.PublicKey()); err != nil {
				t.Fatal(err)
			}
			if err := VerifyEncoded(b, f.other.PublicKey()); !errors.Is(err, ErrDeviceID) {
				t.Fatalf("verify with another key: %v, want ErrDeviceID", err)
			}
			again, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encode differs: %v", err)
			}
		})
	}
}

func TestSignRefusesInvalidRecords(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		mutate func(r *Record)
		want   error
	}{
		{"signer is another device", func(r *Record) { r.DeviceID = f.other.PublicKey().DeviceID() }, ErrDeviceID},
		{"no body", func(r *Record) { r.Body = nil }, ErrKind},
		{"unknown flag", func(r *Record) { r.Flags |= 0x8000 }, ErrFlags},
		{"negative minted_at", func(r *Record) { r.MintedAt = -1 }, ErrRange},
		{"29 February 2027", func(r *Record) { r.Body.(*ActivityDay).Date = 20270229 }, ErrDate},
		{"utc offset -721", func(r *Record) { r.Body.(*ActivityDay).UTCOffsetMinutes = -721 }, ErrRange},
		{"seconds with no hour", func(r *Record) { r.Body.(*ActivityDay).ActiveHours = 0 }, ErrRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.dayRecord(0, HashRecord(f.genesis))
			tc.mutate(r)
			if _, err := r.Sign(f.device); !errors.Is(err, tc.want) {
				t.Fatalf("Sign: %v, want %v", err, tc.want)
			}
			if _, err := r.MarshalBinary(); err == nil && tc.want != ErrDeviceID {
				t.Fatal("MarshalBinary accepted an invalid record")
			}
		})
	}

	t.Run("certificate for another key", func(t *testing.T) {
		g := f.genesisRecord()
		c := *f.cert
		c.DevicePublicKey = f.other.PublicKey()
		g.Body.(*Genesis).Cert = &c
		if _, err := g.Sign(f.device); !errors.Is(err, ErrBadCert) {
			t.Fatalf("Sign: %v, want ErrBadCert", err)
		}
	})
	t.Run("model of 65 bytes", func(t *testing.T) {
		c := *f.cert
		c.Model = string(bytes.Repeat([]byte("m"), 65))
		if _, err := c.Sign(f.maker); !errors.Is(err, ErrText) {
			t.Fatalf("Sign: %v, want ErrText", err)
		}
	})
}

// brokenSigner stands for a faulty hardware key: it signs with a key other than the
// one it claims.
type brokenSigner struct{ claimed, real *KeySigner }

func (b brokenSigner) PublicKey() PublicKey             { return b.claimed.PublicKey() }
func (b brokenSigner) Sign(m []byte) (Signature, error) { return b.real.Sign(m) }

type failingSigner struct{ *KeySigner }

func (failingSigner) Sign([]byte) (Signature, error) {
	return Signature{}, errors.New("keystore unavailable")
}

func TestSignerFaults(t *testing.T) {
	f := newFixture(t)
	r := f.dayRecord(0, HashRecord(f.genesis))
	if _, err := r.Sign(brokenSigner{claimed: f.device, real: f.other}); !errors.Is(err, ErrSignature) {
		t.Fatalf("a signer whose signatures do not verify: %v, want ErrSignature", err)
	}
	if _, err := r.Sign(failingSigner{f.device}); err == nil || err.Error() != "proof: sign: keystore unavailable" {
		t.Fatalf("a failing signer: %v", err)
	}
	if _, err := NewKeySigner(make([]byte, 31)); !errors.Is(err, ErrRange) {
		t.Fatalf("31-byte seed: %v", err)
	}
}

func TestDate(t *testing.T) {
	tests := []struct {
		d     Date
		valid bool
	}{
		{20261124, true}, {20240229, true}, {20000229, true}, {19700101, true}, {99991231, true},
		{20250229, false}, {21000229, false}, {20261131, false}, {20261300, false}, {20260001, false},
		{20261100, false}, {19691231, false}, {0, false}, {100000101, false},
	}
	for _, tc := range tests {
		if got := tc.d.Valid(); got != tc.valid {
			t.Errorf("Date(%d).Valid() = %v", tc.d, got)
		}
	}
	// 2026-11-24 15:59:59 UTC is 23:59:59 in China; a second later it is the 25th.
	at := time.Date(2026, 11, 24, 15, 59, 59, 0, time.UTC)
	if got := DateOf(at, cst); got != 20261124 {
		t.Errorf("DateOf(%v, +480) = %d", at, got)
	}
	if got := DateOf(at.Add(time.Second), cst); got != 20261125 {
		t.Errorf("DateOf(%v, +480) = %d", at.Add(time.Second), got)
	}
	if got := DateOf(at, -300); got != 20261124 {
		t.Errorf("DateOf(%v, -300) = %d", at, got)
	}
	if got := Date(20261125).Start(cst); !got.Equal(at.Add(time.Second)) {
		t.Errorf("Start = %v", got)
	}
	if got := Date(20261231).Next(); got != 20270101 {
		t.Errorf("Next of 2026-12-31 = %d", got)
	}
	if got := Date(20280228).Next(); got != 20280229 {
		t.Errorf("Next of 2028-02-28 = %d", got)
	}
	if s := Date(20260305).String(); s != "2026-03-05" {
		t.Errorf("String = %s", s)
	}
}

func TestBatch(t *testing.T) {
	f := newFixture(t)
	chain := f.chain()
	b, err := EncodeBatch(chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != BatchSize(chain) {
		t.Fatalf("batch is %d bytes, BatchSize says %d", len(b), BatchSize(chain))
	}
	got, err := DecodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, chain) {
		t.Fatal("batch does not round-trip")
	}
	// 256 activity records fit in 64 KiB (256 × 201 = 51,456 bytes).
	full := make([][]byte, MaxBatchRecords)
	for i := range full {
		full[i] = f.days[i%len(f.days)]
	}
	if _, err := EncodeBatch(full); err != nil {
		t.Fatalf("256 records: %v", err)
	}
	tests := []struct {
		name string
		recs [][]byte
		want error
	}{
		{"no records", nil, ErrBatchFraming},
		{"257 records", append(full, f.genesis), ErrBatchTooMany},
		{"over 64 KiB", [][]byte{make([]byte, 40000), make([]byte, 30000)}, ErrBatchTooLarge},
		{"empty record", [][]byte{f.genesis, {}}, ErrBatchFraming},
		{"record over 65535 bytes", [][]byte{make([]byte, 65536)}, ErrBatchTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := EncodeBatch(tc.recs); !errors.Is(err, tc.want) {
				t.Fatalf("EncodeBatch: %v, want %v", err, tc.want)
			}
		})
	}
	// Exactly 64 KiB is allowed.
	exact := [][]byte{make([]byte, 65534)}
	if b, err := EncodeBatch(exact); err != nil || len(b) != MaxBatchBytes {
		t.Fatalf("a batch of exactly 64 KiB: %v", err)
	}
}

func TestChainAppendLeavesHeadOnError(t *testing.T) {
	f := newFixture(t)
	c, _, err := StartChain(f.genesis, f.makers)
	if err != nil {
		t.Fatal(err)
	}
	before := *c
	if _, err := c.Append(f.days[1]); !errors.Is(err, ErrChainSeq) {
		t.Fatalf("Append out of order: %v", err)
	}
	if !reflect.DeepEqual(*c, before) {
		t.Fatal("a refused record moved the head")
	}
	for i, d := range f.days {
		if _, err := c.Append(d); err != nil {
			t.Fatalf("day %d: %v", i, err)
		}
	}
	if _, err := c.Append(f.days[30]); !errors.Is(err, ErrChainSeq) {
		t.Fatalf("replay of the head: %v", err)
	}
	// Without a maker registry the certificate is format-checked only.
	c2, _, err := StartChain(f.genesis, nil)
	if err != nil || c2.CertVerified || c2.Cert == nil {
		t.Fatalf("StartChain without makers: %v, %+v", err, c2)
	}
	if _, err := VerifyChain(nil, nil); !errors.Is(err, ErrChainStart) {
		t.Fatalf("empty chain: %v", err)
	}
}

func TestParseHexKeys(t *testing.T) {
	f := newFixture(t)
	k, err := ParsePublicKey(f.device.PublicKey().String())
	if err != nil || k != f.device.PublicKey() {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	h, err := ParseHash(HashRecord(f.genesis).String())
	if err != nil || h != HashRecord(f.genesis) {
		t.Fatalf("ParseHash: %v", err)
	}
	for _, s := range []string{"", "00", string(bytes.Repeat([]byte("zz"), 32))} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", s)
		}
	}
}
