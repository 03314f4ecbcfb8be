package proof

import (
	"crypto/sha256"
	"testing"
	"time"
)

// cst is the default reporting zone of docs/protocol.md: UTC+08:00.
const cst = 480

// fixture holds the deterministic keys and records behind the golden vectors: the same
// seeds always give the same bytes, since Ed25519 signatures are deterministic.
type fixture struct {
	maker, device, other *KeySigner
	cert                 *Certificate
	certBytes            []byte
	genesis              []byte
	days                 [][]byte // activity records for 2026-10-01..31, seq 2..32
}

func seed(label string) []byte {
	s := sha256.Sum256([]byte("amosd golden " + label))
	return s[:]
}

func mustSigner(t testing.TB, label string) *KeySigner {
	t.Helper()
	s, err := NewKeySigner(seed(label))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bootID() (b [16]byte) {
	copy(b[:], seed("boot id"))
	return b
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		maker:  mustSigner(t, "maker key"),
		device: mustSigner(t, "device key"),
		other:  mustSigner(t, "other key"),
	}
	f.cert = &Certificate{
		DevicePublicKey: f.device.PublicKey(),
		MakerID:         "amos-golden",
		Model:           "Amos G1 测试机",
		IssuedAt:        time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).Unix(),
	}
	copy(f.cert.SerialTag[:], seed("serial tag"))
	var err error
	if f.certBytes, err = f.cert.Sign(f.maker); err != nil {
		t.Fatal(err)
	}
	g := f.genesisRecord()
	if f.genesis, err = g.Sign(f.device); err != nil {
		t.Fatal(err)
	}
	prev := HashRecord(f.genesis)
	for i := 0; i < 31; i++ {
		r := f.dayRecord(i, prev)
		b, err := r.Sign(f.device)
		if err != nil {
			t.Fatal(err)
		}
		f.days = append(f.days, b)
		prev = HashRecord(b)
	}
	return f
}

func (f *fixture) genesisRecord() *Record {
	return &Record{
		Flags:    FlagClockUnconfirmed,
		DeviceID: f.device.PublicKey().DeviceID(),
		Epoch:    1,
		Seq:      1,
		MintedAt: time.Date(2026, 9, 30, 10, 0, 0, 0, time.UTC).Unix(),
		BootID:   bootID(),
		UptimeMS: 12_345_678,
		Body:     &Genesis{PublicKey: f.device.PublicKey(), Cert: f.cert, Reason: ReasonFirstStart},
	}
}

// dayRecord returns the unsigned activity record for 2026-10-(i+1), seq i+2.
func (f *fixture) dayRecord(i int, prev Hash) *Record {
	date := NewDate(2026, time.October, i+1)
	hours := uint32(0x3F0<<uint(i%6)) & AllHours // 6 active hours
	a := &ActivityDay{
		Date:               date,
		UTCOffsetMinutes:   cst,
		InteractiveSeconds: uint32(60 + i*613%7200),
		Unlocks:            uint16(1 + i%7),
		ScreenOns:          uint16(2 + i%11),
		ActiveHours:        hours,
	}
	var flags Flags
	if i == 14 {
		flags = FlagClockJumped
	}
	return &Record{
		Flags:    flags,
		DeviceID: f.device.PublicKey().DeviceID(),
		Epoch:    1,
		Seq:      uint64(i + 2),
		PrevHash: prev,
		MintedAt: date.Next().Start(cst).Unix() + 5,
		BootID:   bootID(),
		UptimeMS: 86_400_000 * uint64(i+1),
		Body:     a,
	}
}

// chain returns the genesis and the 31 activity records in order.
func (f *fixture) chain() [][]byte {
	return append([][]byte{f.genesis}, f.days...)
}

func (f *fixture) makers(id string) (PublicKey, bool) {
	if id == f.cert.MakerID {
		return f.maker.PublicKey(), true
	}
	return PublicKey{}, false
}
