package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"amos.example/amosd/proof"
)

// Sale is one sold handset of the payer's sales registry: a serial tag belongs to
// exactly one maker.
type Sale struct {
	SerialTag    [32]byte
	MakerID      string
	SoldAt       proof.Date // the date of sale in the reporting zone
	Channel      string
	RegisteredAt int64 // server time of the import that added it, unix seconds
}

// MonthKey names a calendar month as year*100 + month (202611).
type MonthKey uint32

// ClosedMonth is a month's claim as it was computed once when the month closed.
type ClosedMonth struct {
	Month    MonthKey
	ClosedAt int64  // unix seconds: the moment the month closed
	Claim    []byte // the claim, encoded by the collector; the ledger does not read it
}

// Decision is the payer's decision on a device held in a month. Decisions are never
// changed or deleted: a later one takes effect over an earlier one, both are kept.
type Decision struct {
	Month    MonthKey
	DeviceID proof.DeviceID
	N        uint16 // 0 for the first decision on (month, device), then 1, 2...
	Release  bool   // true: paid despite the signals; false: denied
	At       int64  // server time, unix seconds
	By       string // who decided, as given (at most 255 bytes of UTF-8)
	Why      string // why (at most 4096 bytes of UTF-8)
}

// MaxDecisionsPerDevice bounds the decisions kept for one device and month.
const MaxDecisionsPerDevice = 1000

// Limits of the stored strings.
const (
	MaxByLen  = 255
	MaxWhyLen = 4096
)

// Sale value, version 1: 0 version | 1 sold_at u32 | 5 registered_at i64 |
// 13 maker_id length u8 | maker_id | channel length u8 | channel.
func encodeSale(s *Sale) []byte {
	b := make([]byte, 0, 15+len(s.MakerID)+len(s.Channel))
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(s.SoldAt))
	b = binary.BigEndian.AppendUint64(b, uint64(s.RegisteredAt))
	b = append(b, byte(len(s.MakerID)))
	b = append(b, s.MakerID...)
	b = append(b, byte(len(s.Channel)))
	return append(b, s.Channel...)
}

// intern returns string(b), the one of names if it holds it.
func intern(names map[string]string, b []byte) string {
	if s, ok := names[string(b)]; ok {
		return s
	}
	s := string(b)
	if names != nil && len(names) < 4096 {
		names[s] = s
	}
	return s
}

func decodeSale(key, v []byte) (*Sale, error) {
	s := &Sale{}
	if err := decodeSaleInto(s, key, v, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// decodeSaleInto decodes a sale value into s. With names, its strings are those of
// names when there, and added to it (up to 4096).
func decodeSaleInto(s *Sale, key, v []byte, names map[string]string) error {
	bad := func(why string, args ...any) error {
		return corrupt(bucketSales, key, why, args...)
	}
	if len(key) != 32 {
		return bad("key is %d bytes, want 32", len(key))
	}
	if len(v) < 15 || v[0] != 1 {
		return bad("value of %d bytes is not a version 1 sale", len(v))
	}
	*s = Sale{SoldAt: proof.Date(binary.BigEndian.Uint32(v[1:])), RegisteredAt: int64(binary.BigEndian.Uint64(v[5:]))}
	copy(s.SerialTag[:], key)
	n := int(v[13])
	if len(v) < 15+n {
		return bad("maker_id of %d bytes, %d follow", n, len(v)-14)
	}
	s.MakerID = intern(names, v[14:14+n])
	c := int(v[14+n])
	if len(v) != 15+n+c {
		return bad("channel of %d bytes, %d follow", c, len(v)-15-n)
	}
	s.Channel = intern(names, v[15+n:])
	if !proof.ValidMakerID(s.MakerID) || !s.SoldAt.Valid() || c == 0 {
		return bad("maker_id %q, sold_at %d, channel %q", s.MakerID, uint32(s.SoldAt), s.Channel)
	}
	return nil
}

// ClosedMonth value, version 1: 0 version | 1 closed_at i64 | 9 claim.
func encodeClosedMonth(c *ClosedMonth) []byte {
	b := make([]byte, 0, 9+len(c.Claim))
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(c.ClosedAt))
	return append(b, c.Claim...)
}

func decodeClosedMonth(key, v []byte) (*ClosedMonth, error) {
	if len(key) != 4 || !validMonth(MonthKey(binary.BigEndian.Uint32(key))) {
		return nil, corrupt(bucketMonths, key, "not a month key")
	}
	if len(v) < 9 || v[0] != 1 {
		return nil, corrupt(bucketMonths, key, "value of %d bytes is not a version 1 closed month", len(v))
	}
	return &ClosedMonth{Month: MonthKey(binary.BigEndian.Uint32(key)), ClosedAt: int64(binary.BigEndian.Uint64(v[1:])), Claim: bytes.Clone(v[9:])}, nil
}

func validMonth(m MonthKey) bool { return m/100 >= 1970 && m/100 <= 9999 && m%100 >= 1 && m%100 <= 12 }

func monthKey(m MonthKey) []byte { return binary.BigEndian.AppendUint32(nil, uint32(m)) }

// decisionKey: month u32 | device_id | n u16.
func decisionKey(m MonthKey, id proof.DeviceID, n uint16) []byte {
	k := monthKey(m)
	k = append(k, id[:]...)
	return binary.BigEndian.AppendUint16(k, n)
}

// Decision value, version 1: 0 version | 1 release u8 | 2 at i64 | 10 by length u8 |
// by | why length u16 | why.
func encodeDecision(d *Decision) []byte {
	b := make([]byte, 0, 13+len(d.By)+len(d.Why))
	b = append(b, 1, 0)
	if d.Release {
		b[1] = 1
	}
	b = binary.BigEndian.AppendUint64(b, uint64(d.At))
	b = append(b, byte(len(d.By)))
	b = append(b, d.By...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.Why)))
	return append(b, d.Why...)
}

func decodeDecision(key, v []byte) (*Decision, error) {
	bad := func(why string, args ...any) (*Decision, error) {
		return nil, corrupt(bucketDecisions, key, why, args...)
	}
	if len(key) != 4+proof.HashSize+2 {
		return bad("key is %d bytes", len(key))
	}
	d := &Decision{Month: MonthKey(binary.BigEndian.Uint32(key)), N: binary.BigEndian.Uint16(key[36:])}
	copy(d.DeviceID[:], key[4:36])
	if len(v) < 13 || v[0] != 1 || v[1] > 1 || !validMonth(d.Month) {
		return bad("value of %d bytes is not a version 1 decision", len(v))
	}
	d.Release, d.At = v[1] == 1, int64(binary.BigEndian.Uint64(v[2:]))
	n := int(v[10])
	if len(v) < 13+n {
		return bad("by of %d bytes, %d follow", n, len(v)-11)
	}
	d.By = string(v[11 : 11+n])
	w := int(binary.BigEndian.Uint16(v[11+n:]))
	if len(v) != 13+n+w {
		return bad("why of %d bytes, %d follow", w, len(v)-13-n)
	}
	d.Why = string(v[13+n:])
	return d, nil
}

func (t ledgerTx) Sale(serial [32]byte) (*Sale, error) {
	v, err := t.kv.Get(bucketSales, serial[:])
	if err != nil || v == nil {
		return nil, err
	}
	return decodeSale(serial[:], v)
}

func (t ledgerTx) PutSale(s *Sale) error {
	if !proof.ValidMakerID(s.MakerID) || !s.SoldAt.Valid() || len(s.Channel) == 0 || len(s.Channel) > 255 {
		return fmt.Errorf("collector: sale %x: maker_id %q, sold_at %d, channel %q", s.SerialTag, s.MakerID, uint32(s.SoldAt), s.Channel)
	}
	return t.kv.Put(bucketSales, bytes.Clone(s.SerialTag[:]), encodeSale(s))
}

func (t ledgerTx) Sales(fn func(*Sale) error) error {
	return t.kv.Scan(bucketSales, nil, nil, func(k, v []byte) error {
		s, err := decodeSale(k, v)
		if err != nil {
			return err
		}
		return fn(s)
	})
}

func (t ledgerTx) ClosedMonth(m MonthKey) (*ClosedMonth, error) {
	k := monthKey(m)
	v, err := t.kv.Get(bucketMonths, k)
	if err != nil || v == nil {
		return nil, err
	}
	return decodeClosedMonth(k, v)
}

func (t ledgerTx) PutClosedMonth(c *ClosedMonth) error {
	if !validMonth(c.Month) {
		return fmt.Errorf("collector: closed month %d is not YYYYMM", c.Month)
	}
	k := monthKey(c.Month)
	if v, err := t.kv.Get(bucketMonths, k); err != nil {
		return err
	} else if v != nil {
		return fmt.Errorf("collector: month %d is already closed: %w", c.Month, ErrExists)
	}
	return t.kv.Put(bucketMonths, k, encodeClosedMonth(c))
}

func (t ledgerTx) AddDecision(d *Decision) error {
	switch {
	case !validMonth(d.Month):
		return fmt.Errorf("collector: decision: month %d is not YYYYMM", d.Month)
	case len(d.By) == 0 || len(d.By) > MaxByLen || !utf8.ValidString(d.By):
		return fmt.Errorf("collector: decision: by must be 1..%d bytes of UTF-8", MaxByLen)
	case len(d.Why) == 0 || len(d.Why) > MaxWhyLen || !utf8.ValidString(d.Why):
		return fmt.Errorf("collector: decision: why must be 1..%d bytes of UTF-8", MaxWhyLen)
	}
	prefix := append(monthKey(d.Month), d.DeviceID[:]...)
	n := 0
	err := t.kv.Scan(bucketDecisions, prefix, prefixEnd(prefix), func(k, v []byte) error { n++; return nil })
	if err != nil {
		return err
	}
	if n >= MaxDecisionsPerDevice {
		return fmt.Errorf("collector: decision: %d decisions on device %s already: %w", n, d.DeviceID, ErrExists)
	}
	d.N = uint16(n)
	return t.kv.Put(bucketDecisions, decisionKey(d.Month, d.DeviceID, d.N), encodeDecision(d))
}

func (t ledgerTx) Decisions(m MonthKey, fn func(*Decision) error) error {
	p := monthKey(m)
	return t.kv.Scan(bucketDecisions, p, prefixEnd(p), func(k, v []byte) error {
		d, err := decodeDecision(k, v)
		if err != nil {
			return err
		}
		return fn(d)
	})
}

func (t ledgerTx) AddLate(m MonthKey, id proof.DeviceID) error {
	k := append(monthKey(m), id[:]...)
	var n uint32
	if v, err := t.kv.Get(bucketLate, k); err != nil {
		return err
	} else if len(v) == 4 {
		n = binary.BigEndian.Uint32(v)
	}
	return t.kv.Put(bucketLate, k, binary.BigEndian.AppendUint32(nil, n+1))
}

func (t ledgerTx) Late(m MonthKey, fn func(id proof.DeviceID, records uint32) error) error {
	p := monthKey(m)
	return t.kv.Scan(bucketLate, p, prefixEnd(p), func(k, v []byte) error {
		if len(k) != 4+proof.HashSize || len(v) != 4 {
			return corrupt(bucketLate, k, "value of %d bytes", len(v))
		}
		var id proof.DeviceID
		copy(id[:], k[4:])
		return fn(id, binary.BigEndian.Uint32(v))
	})
}
