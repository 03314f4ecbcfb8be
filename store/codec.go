package store

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"

	"amos.example/amosd/proof"
)

// Every stored value starts with a format version byte; this package writes version 1
// and refuses any other, so that a downgrade never misreads a newer layout.
const valueVersion = 1

// Head is the chain head: the last record minted, whether acknowledged or not.
type Head struct {
	DeviceID proof.DeviceID // device that signed the chain
	Epoch    uint32
	Seq      uint64
	Hash     proof.Hash
	LastDate proof.Date // date of the last activity record of the epoch, 0 if none
	MintedAt int64      // minted_at of the head record
}

// Tally is the running tally of the current date in the reporting zone, with the
// bookkeeping the agent needs to restore it after a restart.
type Tally struct {
	Date               proof.Date
	UTCOffsetMinutes   int16
	InteractiveSeconds uint32
	Unlocks            uint16
	ScreenOns          uint16
	ActiveHours        uint32
	Flags              proof.Flags // flags the day's record will carry
	SavedAt            int64       // unix seconds (wall clock) of the save
	SavedBootID        [16]byte    // boot that saved it
	SavedUptimeMS      uint64      // CLOCK_BOOTTIME at the save
	State              uint8       // the agent's last known source state, its own bits
}

// SyncState is what the sync loop keeps across restarts: its backoff, its last result,
// and the anchor of trusted time (docs/protocol.md).
type SyncState struct {
	LastAttempt     int64         // unix seconds, 0 if never
	LastSuccess     int64         // unix seconds of the last 200 answer, 0 if never
	LastResult      string        // short text for status, at most 255 bytes
	BackoffInterval time.Duration // current backoff interval, 0 when not backing off
	NextRetry       int64         // unix seconds of the next scheduled attempt, 0 if none
	ServerTime      int64         // server_time of the latest 200 answer
	ServerUptimeMS  uint64        // CLOCK_BOOTTIME when it was received
	ServerBootID    [16]byte      // boot in which it was received
}

// DeadLetter is a record the server refused for good, with its reason.
type DeadLetter struct {
	Key    uint64 // position in the dead-letter bucket
	At     int64  // unix seconds when it was moved
	Reason string // the server's reason (docs/protocol.md), at most 255 bytes
	Record []byte
}

// Recovery describes a store that was found corrupt and recreated.
type Recovery struct {
	At          int64  // unix seconds
	CorruptPath string // where the bad file was moved, kept for analysis
	Cause       string // why it was judged corrupt
	Salvaged    uint64 // queued records carried over into the new store
}

// Outcome is what the daemon made of the last recovery, kept beside it for status
// (meta/recovery_outcome).
type Outcome struct {
	OldEpoch uint32 // the epoch of the chain before the recovery
	NewEpoch uint32 // the epoch the daemon continued in
	Consent  string // where consent came from: "kept", "key_dir" or "consent_default"
}

func encodeOutcome(o Outcome) []byte {
	e := newEncoder(32)
	e.u32(o.OldEpoch)
	e.u32(o.NewEpoch)
	e.str(clip(o.Consent))
	return e.b
}

func decodeOutcome(b []byte) (Outcome, error) {
	d := newDecoder("recovery outcome", b)
	var o Outcome
	o.OldEpoch = d.u32()
	o.NewEpoch = d.u32()
	o.Consent = d.str()
	return o, d.done()
}

type encoder struct{ b []byte }

func newEncoder(n int) *encoder { return &encoder{b: append(make([]byte, 0, n+1), valueVersion)} }
func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) raw(v []byte) { e.b = append(e.b, v...) }
func (e *encoder) str(s string) { e.b = append(append(e.b, byte(len(s))), s...) }

type decoder struct {
	what string
	b    []byte
	err  error
}

func newDecoder(what string, b []byte) *decoder {
	d := &decoder{what: what, b: b}
	if len(b) == 0 || b[0] != valueVersion {
		d.err = fmt.Errorf("%s: unknown format version: %w", what, errValue)
		return d
	}
	d.b = b[1:]
	return d
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%s: truncated: %w", d.what, errValue)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) fixed(dst []byte) {
	if v := d.take(len(dst)); v != nil {
		copy(dst, v)
	}
}

func (d *decoder) str() string {
	n := d.take(1)
	if n == nil {
		return ""
	}
	v := d.take(int(n[0]))
	if d.err == nil && !utf8.Valid(v) {
		d.err = fmt.Errorf("%s: text is not UTF-8: %w", d.what, errValue)
	}
	return string(v)
}

// rest returns what is left; it is the last field of a value.
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	v := d.b
	d.b = nil
	return v
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%s: %d trailing bytes: %w", d.what, len(d.b), errValue)
	}
	return d.err
}

func clip(s string) string {
	for len(s) > 255 || !utf8.ValidString(s) {
		s = s[:min(len(s), 255)]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func encodeHead(h Head) []byte {
	e := newEncoder(88)
	e.raw(h.DeviceID[:])
	e.u32(h.Epoch)
	e.u64(h.Seq)
	e.raw(h.Hash[:])
	e.u32(uint32(h.LastDate))
	e.u64(uint64(h.MintedAt))
	return e.b
}

func decodeHead(b []byte) (Head, error) {
	d := newDecoder("chain head", b)
	var h Head
	d.fixed(h.DeviceID[:])
	h.Epoch = d.u32()
	h.Seq = d.u64()
	d.fixed(h.Hash[:])
	h.LastDate = proof.Date(d.u32())
	h.MintedAt = int64(d.u64())
	if err := d.done(); err != nil {
		return Head{}, err
	}
	if h.Epoch == 0 || h.Seq == 0 {
		return Head{}, fmt.Errorf("chain head: epoch %d seq %d: %w", h.Epoch, h.Seq, errValue)
	}
	return h, nil
}

func encodeTally(t Tally) []byte {
	e := newEncoder(64)
	e.u32(uint32(t.Date))
	e.u16(uint16(t.UTCOffsetMinutes))
	e.u32(t.InteractiveSeconds)
	e.u16(t.Unlocks)
	e.u16(t.ScreenOns)
	e.u32(t.ActiveHours)
	e.u16(uint16(t.Flags))
	e.u64(uint64(t.SavedAt))
	e.raw(t.SavedBootID[:])
	e.u64(t.SavedUptimeMS)
	e.b = append(e.b, t.State)
	return e.b
}

func decodeTally(b []byte) (Tally, error) {
	d := newDecoder("tally", b)
	var t Tally
	t.Date = proof.Date(d.u32())
	t.UTCOffsetMinutes = int16(d.u16())
	t.InteractiveSeconds = d.u32()
	t.Unlocks = d.u16()
	t.ScreenOns = d.u16()
	t.ActiveHours = d.u32()
	t.Flags = proof.Flags(d.u16())
	t.SavedAt = int64(d.u64())
	d.fixed(t.SavedBootID[:])
	t.SavedUptimeMS = d.u64()
	if v := d.take(1); v != nil {
		t.State = v[0]
	}
	if err := d.done(); err != nil {
		return Tally{}, err
	}
	return t, nil
}

func encodeSync(s SyncState) []byte {
	e := newEncoder(96)
	e.u64(uint64(s.LastAttempt))
	e.u64(uint64(s.LastSuccess))
	e.str(clip(s.LastResult))
	e.u64(uint64(s.BackoffInterval))
	e.u64(uint64(s.NextRetry))
	e.u64(uint64(s.ServerTime))
	e.u64(s.ServerUptimeMS)
	e.raw(s.ServerBootID[:])
	return e.b
}

func decodeSync(b []byte) (SyncState, error) {
	d := newDecoder("sync state", b)
	var s SyncState
	s.LastAttempt = int64(d.u64())
	s.LastSuccess = int64(d.u64())
	s.LastResult = d.str()
	s.BackoffInterval = time.Duration(d.u64())
	s.NextRetry = int64(d.u64())
	s.ServerTime = int64(d.u64())
	s.ServerUptimeMS = d.u64()
	d.fixed(s.ServerBootID[:])
	if err := d.done(); err != nil {
		return SyncState{}, err
	}
	return s, nil
}

func encodeDead(at int64, reason string, rec []byte) []byte {
	e := newEncoder(10 + len(reason) + len(rec))
	e.u64(uint64(at))
	e.str(clip(reason))
	e.raw(rec)
	return e.b
}

func decodeDead(key uint64, b []byte) (DeadLetter, error) {
	d := newDecoder("dead-letter record", b)
	dl := DeadLetter{Key: key}
	dl.At = int64(d.u64())
	dl.Reason = d.str()
	dl.Record = d.rest()
	if err := d.done(); err != nil {
		return DeadLetter{}, err
	}
	if len(dl.Record) == 0 {
		return DeadLetter{}, fmt.Errorf("dead-letter record: empty: %w", errValue)
	}
	return dl, nil
}

func encodeRecovery(r Recovery) []byte {
	e := newEncoder(64)
	e.u64(uint64(r.At))
	e.str(clip(r.CorruptPath))
	e.str(clip(r.Cause))
	e.u64(r.Salvaged)
	return e.b
}

func decodeRecovery(b []byte) (Recovery, error) {
	d := newDecoder("recovery", b)
	var r Recovery
	r.At = int64(d.u64())
	r.CorruptPath = d.str()
	r.Cause = d.str()
	r.Salvaged = d.u64()
	return r, d.done()
}

// formatVersion decodes meta/schema: the store's format version, a u64 from 1.
func formatVersion(v []byte) (uint64, error) {
	if v == nil {
		return 0, fmt.Errorf("no format version (meta/schema): %w", errValue)
	}
	n, err := keyU64(v)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("format version (meta/schema) %x is not a number from 1: %w", v, errValue)
	}
	return n, nil
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func keyU64(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("key of %d bytes: %w", len(k), errValue)
	}
	return binary.BigEndian.Uint64(k), nil
}
