package ledger

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/proof"
)

const goldenDir = "../../testdata/proof"

// golden holds the keys and the chain of testdata/proof.
type golden struct {
	maker  *proof.KeySigner
	device *proof.KeySigner
	chain  [][]byte // genesis and 31 days of October 2026
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	g := collectortest.LoadGolden(t, goldenDir)
	return &golden{maker: g.Maker, device: g.Device, chain: g.Chain}
}

// FuzzLedgerValues throws arbitrary bytes at the decoders of stored values: no panic,
// and what decodes re-encodes to the same bytes.
func FuzzLedgerValues(f *testing.F) {
	g := loadGolden(f)
	dev := &Device{ID: g.device.PublicKey().DeviceID(), PublicKey: g.device.PublicKey(), FirstSeen: 1790000000}
	f.Add(uint8(0), dev.ID[:], encodeDevice(dev))
	rec, _ := proof.Decode(g.chain[0])
	gen, _ := rec.Genesis()
	dev.Cert, _ = gen.Cert.MarshalBinary()
	dev.CertEpoch, dev.CertMakerKey = 1, g.maker.PublicKey()
	f.Add(uint8(0), dev.ID[:], encodeDevice(dev))
	dev.Attestation = &Attestation{Accepted: true, SecurityLevel: "StrongBox", OSPatchLevel: 202610, VerifiedAt: 1790000000, Epoch: 1, Serials: []string{"1", "e8fa196314d2fa18"}}
	f.Add(uint8(0), dev.ID[:], encodeDevice(dev))
	p256, err := proof.NewP256Signer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	pdev := &Device{ID: p256.PublicKey().DeviceID(), PublicKey: p256.PublicKey(), FirstSeen: 1790000000,
		Attestation: &Attestation{Reason: "challenge", Detail: "wrong", VerifiedAt: 1790000000, Epoch: 2}}
	f.Add(uint8(0), pdev.ID[:], encodeDevice(pdev))
	pdev.Attestation = nil
	f.Add(uint8(0), pdev.ID[:], encodeDevice(pdev))
	h := &Head{DeviceID: dev.ID, Epoch: 1, Seq: 5, LastDate: proof.NewDate(2026, time.October, 4), Genesis: VerdictBadCert, Counts: Counts{Accepted: 3, Stale: 1, ClockJumped: 2}}
	f.Add(uint8(1), headKey(dev.ID, 1), encodeHead(h))
	f.Add(uint8(2), recordKey(dev.ID, 1, 1), encodeRecord(&Record{Verdict: VerdictStale, Bytes: g.chain[1]}))
	var serial [32]byte
	serial[0] = 7
	f.Add(uint8(3), serial[:], encodeSale(&Sale{SerialTag: serial, MakerID: "konka", SoldAt: proof.NewDate(2026, time.November, 30), Channel: "taobao", RegisteredAt: 1795000000}))
	f.Add(uint8(4), monthKey(202611), encodeClosedMonth(&ClosedMonth{Month: 202611, ClosedAt: 1796000000, Claim: []byte(`{"month":"2026-11"}`)}))
	f.Add(uint8(5), decisionKey(202611, dev.ID, 2), encodeDecision(&Decision{Month: 202611, DeviceID: dev.ID, N: 2, Release: true, At: 1796000000, By: "li", Why: "a shop demo phone"}))
	var days []byte
	for i, date := range []proof.Date{proof.NewDate(2028, time.February, 28), proof.NewDate(2028, time.February, 29)} {
		days = appendDay(days, &Day{MintedAt: 1835000000 + int64(i), Activity: proof.ActivityDay{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: 900, Unlocks: 3, ScreenOns: 5, ActiveHours: 1 << 9}})
	}
	f.Add(uint8(6), daysKey(202802, dev.ID, 1), days)
	f.Fuzz(func(t *testing.T, which uint8, key, v []byte) {
		check := func(err error, again []byte) {
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v is not ErrCorrupt", err)
				}
				return
			}
			if !bytes.Equal(again, v) {
				t.Fatalf("decoded value re-encodes to %x, was %x", again, v)
			}
		}
		switch which % 7 {
		case 0:
			d, err := decodeDevice(key, v)
			if err == nil {
				check(nil, encodeDevice(d))
			} else {
				check(err, nil)
			}
		case 1:
			h, err := decodeHead(key, v)
			if err == nil {
				check(nil, encodeHead(h))
			} else {
				check(err, nil)
			}
		case 2:
			r, err := decodeRecord(key, v)
			if err == nil {
				check(nil, encodeRecord(r))
			} else {
				check(err, nil)
			}
		case 3:
			s, err := decodeSale(key, v)
			if err == nil {
				check(nil, encodeSale(s))
			} else {
				check(err, nil)
			}
		case 4:
			c, err := decodeClosedMonth(key, v)
			if err == nil {
				check(nil, encodeClosedMonth(c))
			} else {
				check(err, nil)
			}
		case 5:
			d, err := decodeDecision(key, v)
			if err == nil {
				check(nil, encodeDecision(d))
			} else {
				check(err, nil)
			}
		case 6:
			m, id, epoch, days, err := decodeDays(key, v, nil)
			if err == nil {
				var again []byte
				for i := range days {
					again = appendDay(again, &days[i])
				}
				if !bytes.Equal(daysKey(m, id, epoch), key) {
					t.Fatalf("key %x decodes to another key", key)
				}
				check(nil, again)
			} else {
				check(err, nil)
			}
		}
	})
}
