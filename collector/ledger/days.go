package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"amos.example/amosd/proof"
)

// Day is one accepted activity record as the month aggregate keeps it: what claims and
// the fleet signals read, without the record's signature or header.
type Day struct {
	MintedAt int64 // the record's minted_at, unix seconds
	Activity proof.ActivityDay
}

// daysKey: month u32 | device_id | epoch u32. A month's aggregates are one key range,
// in device_id then epoch order.
func daysKey(m MonthKey, id proof.DeviceID, epoch uint32) []byte {
	k := make([]byte, 0, daysKeySize)
	k = binary.BigEndian.AppendUint32(k, uint32(m))
	k = append(k, id[:]...)
	return binary.BigEndian.AppendUint32(k, epoch)
}

const daysKeySize = 4 + proof.HashSize + 4

// Days value, version 1: 0 version | then per day, in seq order: minted_at i64 | date
// u32 | utc_offset_minutes i16 | interactive_seconds u32 | unlocks u16 | screen_ons u16 |
// active_hours u32 (26 bytes).
const daySize = 26

func appendDay(b []byte, d *Day) []byte {
	if len(b) == 0 {
		b = append(b, 1)
	}
	a := &d.Activity
	b = binary.BigEndian.AppendUint64(b, uint64(d.MintedAt))
	b = binary.BigEndian.AppendUint32(b, uint32(a.Date))
	b = binary.BigEndian.AppendUint16(b, uint16(a.UTCOffsetMinutes))
	b = binary.BigEndian.AppendUint32(b, a.InteractiveSeconds)
	b = binary.BigEndian.AppendUint16(b, a.Unlocks)
	b = binary.BigEndian.AppendUint16(b, a.ScreenOns)
	return binary.BigEndian.AppendUint32(b, a.ActiveHours)
}

// decodeDays decodes a days value, appending its days to buf[:0].
func decodeDays(key, v []byte, buf []Day) (m MonthKey, id proof.DeviceID, epoch uint32, days []Day, err error) {
	if len(key) != daysKeySize {
		return 0, id, 0, nil, corrupt(bucketDays, key, "key is %d bytes, want %d", len(key), daysKeySize)
	}
	m = MonthKey(binary.BigEndian.Uint32(key))
	copy(id[:], key[4:])
	epoch = binary.BigEndian.Uint32(key[36:])
	if !validMonth(m) || epoch == 0 {
		return 0, id, 0, nil, corrupt(bucketDays, key, "month %d epoch %d", m, epoch)
	}
	if len(v) < 1+daySize || v[0] != 1 || (len(v)-1)%daySize != 0 {
		return 0, id, 0, nil, corrupt(bucketDays, key, "value of %d bytes is not a version 1 list of days", len(v))
	}
	n := (len(v) - 1) / daySize
	days = slices.Grow(buf[:0], n)[:n]
	first, last := proof.Date(m)*100+1, proof.Date(m)*100+proof.Date(daysIn(int(m/100), int(m%100))) // the month's dates
	for i := range days {
		b := v[1+i*daySize:]
		d := &days[i]
		d.MintedAt = int64(binary.BigEndian.Uint64(b))
		a := &d.Activity
		a.Date = proof.Date(binary.BigEndian.Uint32(b[8:]))
		a.UTCOffsetMinutes = int16(binary.BigEndian.Uint16(b[12:]))
		a.InteractiveSeconds = binary.BigEndian.Uint32(b[14:])
		a.Unlocks = binary.BigEndian.Uint16(b[18:])
		a.ScreenOns = binary.BigEndian.Uint16(b[20:])
		a.ActiveHours = binary.BigEndian.Uint32(b[22:])
		switch {
		case a.Date < first || a.Date > last: // not a real date of month m
			return 0, id, 0, nil, corrupt(bucketDays, key, "day %d: date %d is not in month %d", i, uint32(a.Date), m)
		case i > 0 && a.Date <= days[i-1].Activity.Date:
			return 0, id, 0, nil, corrupt(bucketDays, key, "day %d: date %s is not after %s", i, a.Date, days[i-1].Activity.Date)
		}
	}
	return m, id, epoch, days, nil
}

// daysIn returns the number of days of a month (1..12) of a Gregorian year.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// AddDay appends an accepted activity record of the device's epoch to its month's
// aggregate; records are added in seq order, so dates increase.
func (t ledgerTx) AddDay(id proof.DeviceID, epoch uint32, d *Day) error {
	if !d.Activity.Date.Valid() || epoch == 0 {
		return fmt.Errorf("collector: day of device %s epoch %d: date %d", id, epoch, uint32(d.Activity.Date))
	}
	k := daysKey(MonthKey(d.Activity.Date.Year()*100+int(d.Activity.Date.Month())), id, epoch)
	v, err := t.kv.Get(bucketDays, k)
	if err != nil {
		return err
	}
	if len(v) >= 1+daySize {
		if last := proof.Date(binary.BigEndian.Uint32(v[len(v)-daySize+8:])); d.Activity.Date <= last {
			return fmt.Errorf("collector: day of device %s epoch %d: date %s is not after %s", id, epoch, d.Activity.Date, last)
		}
	}
	return t.kv.Put(bucketDays, k, appendDay(bytes.Clone(v), d))
}

// MonthDays calls fn for every device-epoch with accepted days in month m, in device_id
// then epoch order, with its days in seq order; days is valid only until fn returns.
func (t ledgerTx) MonthDays(m MonthKey, fn func(id proof.DeviceID, epoch uint32, days []Day) error) error {
	p := monthKey(m)
	return t.scanDays(p, fn)
}

// DeviceMonthDays is MonthDays for one device.
func (t ledgerTx) DeviceMonthDays(m MonthKey, id proof.DeviceID, fn func(epoch uint32, days []Day) error) error {
	p := append(monthKey(m), id[:]...)
	return t.scanDays(p, func(_ proof.DeviceID, epoch uint32, days []Day) error { return fn(epoch, days) })
}

func (t ledgerTx) scanDays(prefix []byte, fn func(id proof.DeviceID, epoch uint32, days []Day) error) error {
	var buf []Day
	return t.kv.Scan(bucketDays, prefix, prefixEnd(prefix), func(k, v []byte) error {
		_, id, epoch, days, err := decodeDays(k, v, buf)
		if err != nil {
			return err
		}
		buf = days
		return fn(id, epoch, days)
	})
}

// buildDays fills the days bucket from the stored records: the upgrade of a ledger
// written before the aggregates existed (schema 2). It reads every linked record once.
func buildDays(t ledgerTx) (int, error) {
	type add struct {
		id    proof.DeviceID
		epoch uint32
		day   Day
	}
	var adds []add
	err := t.kv.Scan(bucketChains, nil, nil, func(k, v []byte) error {
		if len(k) != chainKeySize || binary.BigEndian.Uint64(k[36:]) == headSeq {
			return nil
		}
		r, err := decodeRecord(k, v)
		if err != nil || r.Verdict != VerdictAccepted {
			return err
		}
		rec, err := proof.Decode(r.Bytes)
		if err != nil {
			return corrupt(bucketChains, k, "record: %v", err)
		}
		if a, ok := rec.Activity(); ok {
			adds = append(adds, add{rec.DeviceID, rec.Epoch, Day{MintedAt: rec.MintedAt, Activity: *a}})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for i := range adds {
		if err := t.AddDay(adds[i].id, adds[i].epoch, &adds[i].day); err != nil {
			return 0, err
		}
	}
	return len(adds), nil
}
