package proof

import (
	"bytes"
	"math"
	"math/bits"
)

// RecordMagic opens every record.
const RecordMagic = "AMR1"

// Sizes of docs/protocol.md.
const (
	HeaderSize         = 117                                // bytes before the body
	ActivityBodySize   = 18                                 // the activity-day body
	ActivityRecordSize = HeaderSize + ActivityBodySize + 64 // 199
	MaxRecordSize      = HeaderSize + math.MaxUint16 + SignatureSize
	genesisFixedSize   = PublicKeySize + 2 + 1 // public key, cert length, reason
)

// Byte offsets of the header fields (docs/protocol.md), used in error messages.
const (
	offKind     = 4
	offFlags    = 5
	offDeviceID = 7
	offEpoch    = 39
	offSeq      = 43
	offPrevHash = 51
	offMintedAt = 83
	offBootID   = 91
	offUptime   = 107
	offBodyLen  = 115
)

// Kind is the record kind.
type Kind uint8

// Record kinds of docs/protocol.md.
const (
	KindGenesis  Kind = 1
	KindActivity Kind = 2
	// KindGenesisExt is the kind byte of an extended genesis (a P-256 key or an
	// attestation chain, docs/protocol.md 4.4a); its body is a *Genesis and Kind()
	// returns KindGenesis.
	KindGenesisExt Kind = 3
)

// Flags are the record flags of docs/protocol.md.
type Flags uint16

// The flags of docs/protocol.md. No other bit may be set.
const (
	FlagClockUnconfirmed Flags = 0x0001 // no server time yet since boot
	FlagClockJumped      Flags = 0x0002 // wall clock jumped > 5 min against CLOCK_BOOTTIME
	FlagTallyLost        Flags = 0x0004 // part of the day's tally was lost
	FlagDebuggable       Flags = 0x0008 // the build allows debugging
	KnownFlags                 = FlagClockUnconfirmed | FlagClockJumped | FlagTallyLost | FlagDebuggable
)

// Record is one activity record of docs/protocol.md: a header, a Body (*Genesis or *ActivityDay)
// and the device's signature.
type Record struct {
	Flags     Flags
	DeviceID  DeviceID
	Epoch     uint32 // starts at 1
	Seq       uint64 // 1 for the genesis, then +1 per record
	PrevHash  Hash   // hash of record seq-1 of the same epoch; zeros for seq 1
	MintedAt  int64  // unix seconds, trusted time at minting
	BootID    [16]byte
	UptimeMS  uint64 // CLOCK_BOOTTIME at minting, milliseconds
	Body      Body
	Signature Signature
}

// Body is the kind-specific part of a record: *Genesis or *ActivityDay.
type Body interface {
	Kind() Kind
	kindByte() byte // the header's kind byte
	bodyLen() int
	appendBody(b []byte) []byte
	validate(r *Record) error
}

// Kind returns the kind of the record's body, or 0 if it has none.
func (r *Record) Kind() Kind {
	if r.Body == nil {
		return 0
	}
	return r.Body.Kind()
}

// Genesis returns the genesis body, if the record is a genesis.
func (r *Record) Genesis() (*Genesis, bool) {
	g, ok := r.Body.(*Genesis)
	return g, ok && g != nil
}

// Activity returns the activity-day body, if the record is an activity record.
func (r *Record) Activity() (*ActivityDay, bool) {
	a, ok := r.Body.(*ActivityDay)
	return a, ok && a != nil
}

// Validate checks every field against docs/protocol.md: what Decode accepts, and what encoding
// requires.
func (r *Record) Validate() error {
	const obj = "record"
	switch {
	case r.Body == nil:
		return formatErr(obj, "kind", offKind, ErrKind, "no body")
	case r.Flags&^KnownFlags != 0:
		return formatErr(obj, "flags", offFlags, ErrFlags, "%#04x, known bits are %#04x", uint16(r.Flags), uint16(KnownFlags))
	case r.Epoch == 0:
		return formatErr(obj, "epoch", offEpoch, ErrRange, "0, epochs start at 1")
	case r.Seq == 0:
		return formatErr(obj, "seq", offSeq, ErrRange, "0, sequences start at 1")
	case r.MintedAt < 0:
		return formatErr(obj, "minted_at", offMintedAt, ErrRange, "%d is before 1970", r.MintedAt)
	case r.Body.bodyLen() > math.MaxUint16:
		return formatErr(obj, "body length", offBodyLen, ErrBodyLength, "%d bytes, at most %d", r.Body.bodyLen(), math.MaxUint16)
	}
	return r.Body.validate(r)
}

// appendSigned appends the bytes the signature covers; r must be valid.
func (r *Record) appendSigned(b []byte) []byte {
	b = append(b, RecordMagic...)
	b = append(b, r.Body.kindByte())
	b = appendU16(b, uint16(r.Flags))
	b = append(b, r.DeviceID[:]...)
	b = appendU32(b, r.Epoch)
	b = appendU64(b, r.Seq)
	b = append(b, r.PrevHash[:]...)
	b = appendU64(b, uint64(r.MintedAt))
	b = append(b, r.BootID[:]...)
	b = appendU64(b, r.UptimeMS)
	b = appendU16(b, uint16(r.Body.bodyLen()))
	return r.Body.appendBody(b)
}

// Size returns the length of the encoded record.
func (r *Record) Size() int {
	if r.Body == nil {
		return HeaderSize + SignatureSize
	}
	return HeaderSize + r.Body.bodyLen() + SignatureSize
}

// SignedBytes returns bytes [0, 117+L) of the record, which the signature covers.
func (r *Record) SignedBytes() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r.appendSigned(make([]byte, 0, r.Size())), nil
}

// AppendBinary appends the canonical byte form of the record to b.
func (r *Record) AppendBinary(b []byte) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b = r.appendSigned(b)
	return append(b, r.Signature[:]...), nil
}

// MarshalBinary returns the canonical byte form of the record, signature included.
func (r *Record) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, r.Size()))
}

// Sign signs the record with the device key, stores the signature in r and returns the
// encoded record. The signer's key must be the one whose SHA-256 is r.DeviceID.
func (r *Record) Sign(s Signer) ([]byte, error) {
	if id := s.PublicKey().DeviceID(); id != r.DeviceID {
		return nil, formatErr("record", "device_id", offDeviceID, ErrDeviceID, "record names %s, signer is %s", r.DeviceID, id)
	}
	msg, err := r.SignedBytes()
	if err != nil {
		return nil, err
	}
	if r.Signature, err = signWith(s, msg); err != nil {
		return nil, err
	}
	return append(msg, r.Signature[:]...), nil
}

// Verify checks the record's signature against the device public key, and that the key
// is the one the record's device_id names.
func (r *Record) Verify(pub PublicKey) error {
	msg, err := r.SignedBytes()
	if err != nil {
		return err
	}
	return verifySigned(msg, r.Signature, r.DeviceID, pub)
}

// VerifyEncoded checks the signature of a record that Decode accepted, without encoding
// it again: the signature is the last 64 bytes and covers all bytes before them.
func VerifyEncoded(encoded []byte, pub PublicKey) error {
	if len(encoded) < HeaderSize+SignatureSize {
		return formatErr("record", "", 0, ErrTruncated, "%d bytes", len(encoded))
	}
	var id DeviceID
	copy(id[:], encoded[offDeviceID:offEpoch])
	var sig Signature
	n := len(encoded) - SignatureSize
	copy(sig[:], encoded[n:])
	return verifySigned(encoded[:n], sig, id, pub)
}

func verifySigned(msg []byte, sig Signature, id DeviceID, pub PublicKey) error {
	if pub.DeviceID() != id {
		return formatErr("record", "device_id", offDeviceID, ErrDeviceID, "record names %s, key is %s", id, pub.DeviceID())
	}
	if !pub.Verify(msg, sig) {
		return formatErr("record", "signature", len(msg), ErrSignature, "")
	}
	return nil
}

// Decode decodes one record in its canonical byte form and checks every field (see
// Validate). It does not check the signature: see Verify, VerifyEncoded and Chain.
func Decode(b []byte) (*Record, error) {
	r := &reader{obj: "record", b: b}
	if m := r.take("magic", 4); m != nil && string(m) != RecordMagic {
		r.fail("magic", 4, ErrMagic, "%q, want %q", m, RecordMagic)
	}
	kind := Kind(r.u8("kind"))
	if r.err == nil && kind != KindGenesis && kind != KindActivity && kind != KindGenesisExt {
		r.fail("kind", 1, ErrKind, "%d, want 1 (genesis), 2 (activity day) or 3 (extended genesis)", kind)
	}
	rec := &Record{Flags: Flags(r.u16("flags"))}
	r.fixed("device_id", rec.DeviceID[:])
	rec.Epoch = r.u32("epoch")
	rec.Seq = r.u64("seq")
	r.fixed("prev_hash", rec.PrevHash[:])
	minted := r.u64("minted_at")
	rec.MintedAt = int64(minted)
	if r.err == nil && minted > math.MaxInt64 {
		r.fail("minted_at", 8, ErrRange, "%d is past the year 292277026596", minted)
	}
	r.fixed("boot_id", rec.BootID[:])
	rec.UptimeMS = r.u64("uptime_ms")
	n := int(r.u16("body length"))
	body := r.take("body", n)
	r.fixed("signature", rec.Signature[:])
	r.end()
	if r.err != nil {
		return nil, r.err
	}
	var err error
	switch kind {
	case KindGenesis, KindGenesisExt:
		rec.Body, err = decodeGenesis(body, kind == KindGenesisExt)
	case KindActivity:
		rec.Body, err = decodeActivity(body)
	}
	if err != nil {
		return nil, err
	}
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if again := rec.appendSigned(make([]byte, 0, len(b))); !bytes.Equal(again, b[:len(b)-SignatureSize]) {
		return nil, formatErr("record", "", -1, ErrNotCanonical, "")
	}
	return rec, nil
}

// GenesisReason says why an epoch started (docs/protocol.md).
type GenesisReason uint8

// Genesis reasons of docs/protocol.md.
const (
	ReasonFirstStart     GenesisReason = 1
	ReasonStoreRecreated GenesisReason = 2
	ReasonKeyRotated     GenesisReason = 3
	ReasonClockCorrected GenesisReason = 4
)

// Genesis is the body of the first record of every epoch (docs/protocol.md). An Ed25519
// key without an attestation chain is encoded as kind 1 (4.4); any other genesis as
// kind 3, the extended genesis (4.4a). Both are KindGenesis to callers.
type Genesis struct {
	PublicKey   PublicKey    // Ed25519 or P-256
	Cert        *Certificate // nil for an unattributed device
	Attestation [][]byte     // the key's attestation chain, DER, leaf first; nil if none
	Reason      GenesisReason
}

// Limits of the attestation chain of an extended genesis (docs/protocol.md, 4.4a).
const (
	MaxAttestationCerts = 8     // certificates in a chain
	MaxAttestationBytes = 16384 // their DER bytes together
)

// Kind implements Body.
func (g *Genesis) Kind() Kind { return KindGenesis }

// Extended reports whether the genesis is encoded as kind 3 (4.4a): a key other than
// Ed25519, or an attestation chain.
func (g *Genesis) Extended() bool {
	return g.PublicKey.Type() != KeyEd25519 || len(g.Attestation) > 0
}

func (g *Genesis) kindByte() byte {
	if g.Extended() {
		return byte(KindGenesisExt)
	}
	return byte(KindGenesis)
}

func (g *Genesis) certLen() int {
	if g.Cert == nil {
		return 0
	}
	return g.Cert.size()
}

func (g *Genesis) bodyLen() int {
	if !g.Extended() {
		return genesisFixedSize + g.certLen()
	}
	n := 1 + g.PublicKey.Type().Size() + 2 + g.certLen() + 1 + 1
	for _, c := range g.Attestation {
		n += 2 + len(c)
	}
	return n
}

func (g *Genesis) appendBody(b []byte) []byte {
	if g.Extended() {
		b = append(b, byte(g.PublicKey.Type()))
	}
	b = append(b, g.PublicKey.b[:g.PublicKey.Type().Size()]...)
	b = appendU16(b, uint16(g.certLen()))
	if g.Cert != nil {
		b = g.Cert.appendSigned(b)
		b = append(b, g.Cert.Signature[:]...)
	}
	if g.Extended() {
		b = append(b, byte(len(g.Attestation)))
		for _, c := range g.Attestation {
			b = appendU16(b, uint16(len(c)))
			b = append(b, c...)
		}
	}
	return append(b, byte(g.Reason))
}

func (g *Genesis) validate(r *Record) error {
	const obj = "record"
	offCert := HeaderSize + g.PublicKey.Type().Size()
	if g.Extended() {
		offCert++
	}
	switch {
	case r.Seq != 1:
		return formatErr(obj, "seq", offSeq, ErrRange, "%d, a genesis has seq 1", r.Seq)
	case r.PrevHash != Hash{}:
		return formatErr(obj, "prev_hash", offPrevHash, ErrRange, "a genesis has zero prev_hash")
	case g.PublicKey.Type().Size() == 0:
		return formatErr(obj, "genesis key type", HeaderSize, ErrKeyType, "no device key")
	case r.DeviceID != g.PublicKey.DeviceID():
		return formatErr(obj, "device_id", offDeviceID, ErrDeviceID, "names %s, the genesis key hashes to %s", r.DeviceID, g.PublicKey.DeviceID())
	case g.Reason < ReasonFirstStart || g.Reason > ReasonClockCorrected:
		return formatErr(obj, "genesis reason", HeaderSize+g.bodyLen()-1, ErrRange, "%d, want 1, 2, 3 or 4", g.Reason)
	}
	if g.Cert != nil {
		if err := g.Cert.validate(); err != nil {
			return formatErr(obj, "genesis certificate", offCert+2, ErrBadCert, "%v", err)
		}
		if g.Cert.DevicePublicKey != g.PublicKey {
			return formatErr(obj, "genesis certificate", offCert+2, ErrBadCert, "certifies key %s, the genesis key is %s", g.Cert.DevicePublicKey, g.PublicKey)
		}
	}
	offChain := offCert + 2 + g.certLen()
	if len(g.Attestation) > MaxAttestationCerts {
		return formatErr(obj, "attestation count", offChain, ErrAttestation, "%d certificates, at most %d", len(g.Attestation), MaxAttestationCerts)
	}
	total := 0
	for i, c := range g.Attestation {
		total += len(c)
		if !derSequence(c) {
			return formatErr(obj, "attestation certificate", offChain, ErrAttestation, "certificate %d (%d bytes) is not one DER SEQUENCE", i, len(c))
		}
	}
	if total > MaxAttestationBytes {
		return formatErr(obj, "attestation count", offChain, ErrAttestation, "%d bytes of certificates, at most %d", total, MaxAttestationBytes)
	}
	return nil
}

// derSequence reports whether b is exactly one DER SEQUENCE (tag 0x30, a minimal
// definite length that covers the rest of b). The certificate inside is the verifier's
// business; the record only frames it.
func derSequence(b []byte) bool {
	if len(b) < 2 || b[0] != 0x30 {
		return false
	}
	n, hdr := int(b[1]), 2
	switch {
	case b[1] < 0x80:
	case b[1] == 0x81 && len(b) >= 3 && b[2] >= 0x80:
		n, hdr = int(b[2]), 3
	case b[1] == 0x82 && len(b) >= 4 && b[2] != 0 && (int(b[2])<<8|int(b[3])) >= 0x100:
		n, hdr = int(b[2])<<8|int(b[3]), 4
	default:
		return false
	}
	return hdr+n == len(b)
}

func decodeGenesis(body []byte, ext bool) (*Genesis, error) {
	r := &reader{obj: "record", b: body}
	g := &Genesis{}
	t := KeyEd25519
	if ext {
		t = KeyType(r.u8("genesis key type"))
		if r.err == nil && t.Size() == 0 {
			return nil, formatErr("record", "genesis key type", HeaderSize, ErrKeyType, "%d, want 1 (ed25519) or 2 (p256)", t)
		}
	}
	if key := r.take("genesis public key", t.Size()); key != nil {
		k, err := NewPublicKey(t, key)
		if err != nil {
			return nil, formatErr("record", "genesis public key", HeaderSize, ErrKeyType, "%v", err)
		}
		g.PublicKey = k
	}
	offCert := HeaderSize + r.off + 2
	n := int(r.u16("genesis certificate length"))
	cert := r.take("genesis certificate", n)
	if ext && r.err == nil {
		count := int(r.u8("attestation count"))
		if count > MaxAttestationCerts {
			return nil, formatErr("record", "attestation count", HeaderSize+r.off-1, ErrAttestation, "%d certificates, at most %d", count, MaxAttestationCerts)
		}
		for i := 0; i < count && r.err == nil; i++ {
			if c := r.take("attestation certificate", int(r.u16("attestation certificate length"))); c != nil {
				g.Attestation = append(g.Attestation, c)
			}
		}
	}
	g.Reason = GenesisReason(r.u8("genesis reason"))
	r.end()
	if r.err != nil {
		return nil, formatErr("record", "body length", offBodyLen, ErrBodyLength, "%d bytes do not hold a genesis body: %v", len(body), r.err)
	}
	if n > 0 {
		c, err := ParseCertificate(cert)
		if err != nil {
			return nil, formatErr("record", "genesis certificate", offCert, ErrBadCert, "%v", err)
		}
		g.Cert = c
	}
	return g, nil
}

// ActivityDay is the body of an activity record: the counters of one date (docs/protocol.md).
type ActivityDay struct {
	Date               Date   // in the reporting zone
	UTCOffsetMinutes   int16  // of the reporting zone
	InteractiveSeconds uint32 // 0..86400
	Unlocks            uint16
	ScreenOns          uint16
	ActiveHours        uint32 // bit h: interaction in local hour h (0..23)
}

// Kind implements Body.
func (a *ActivityDay) Kind() Kind { return KindActivity }

func (a *ActivityDay) kindByte() byte { return byte(KindActivity) }

func (a *ActivityDay) bodyLen() int { return ActivityBodySize }

func (a *ActivityDay) appendBody(b []byte) []byte {
	b = appendU32(b, uint32(a.Date))
	b = appendU16(b, uint16(a.UTCOffsetMinutes))
	b = appendU32(b, a.InteractiveSeconds)
	b = appendU16(b, a.Unlocks)
	b = appendU16(b, a.ScreenOns)
	return appendU32(b, a.ActiveHours)
}

// AllHours is the mask of the 24 valid active_hours bits.
const AllHours = 1<<24 - 1

func (a *ActivityDay) validate(r *Record) error {
	const obj = "record"
	const (
		offDate    = HeaderSize
		offOffset  = HeaderSize + 4
		offSeconds = HeaderSize + 6
		offHours   = HeaderSize + 14
	)
	switch {
	case r.Seq < 2:
		return formatErr(obj, "seq", offSeq, ErrRange, "%d, seq 1 is the genesis", r.Seq)
	case !a.Date.Valid():
		return formatErr(obj, "date", offDate, ErrDate, "%d is not a calendar date YYYYMMDD", uint32(a.Date))
	case a.UTCOffsetMinutes < MinUTCOffsetMinutes || a.UTCOffsetMinutes > MaxUTCOffsetMinutes:
		return formatErr(obj, "utc_offset_minutes", offOffset, ErrRange, "%d, want %d..%d", a.UTCOffsetMinutes, MinUTCOffsetMinutes, MaxUTCOffsetMinutes)
	case a.InteractiveSeconds > 86400:
		return formatErr(obj, "interactive_seconds", offSeconds, ErrRange, "%d, at most 86400", a.InteractiveSeconds)
	case a.ActiveHours&^AllHours != 0:
		return formatErr(obj, "active_hours", offHours, ErrRange, "%#x sets bits above 23", a.ActiveHours)
	case a.InteractiveSeconds > 3600*uint32(bits.OnesCount32(a.ActiveHours)):
		return formatErr(obj, "interactive_seconds", offSeconds, ErrRange, "%d seconds do not fit in the %d active hours", a.InteractiveSeconds, bits.OnesCount32(a.ActiveHours))
	}
	return nil
}

func decodeActivity(body []byte) (*ActivityDay, error) {
	if len(body) != ActivityBodySize {
		return nil, formatErr("record", "body length", offBodyLen, ErrBodyLength, "%d, an activity-day body is %d bytes", len(body), ActivityBodySize)
	}
	r := &reader{obj: "record", b: body}
	a := &ActivityDay{}
	a.Date = Date(r.u32("date"))
	a.UTCOffsetMinutes = int16(r.u16("utc_offset_minutes"))
	a.InteractiveSeconds = r.u32("interactive_seconds")
	a.Unlocks = r.u16("unlocks")
	a.ScreenOns = r.u16("screen_ons")
	a.ActiveHours = r.u32("active_hours")
	return a, r.err
}
