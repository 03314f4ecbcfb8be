package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"amos.example/amosd/proof"
)

// --- keys and values -------------------------------------------------------------

// Bucket names one keyspace of the ledger. Every backend keeps the same keys and the
// same versioned binary values:
//
//   - "devices": device_id → public key, first seen, fork evidence count, the
//     credited certificate and the maker key it verified against;
//   - "chains": device_id|epoch|seq → verdict and record bytes, and the epoch's head
//     under seq 2^64-1, right after its last record, so that appending a record and
//     moving the head dirty the same page;
//   - "forks": device_id|record hash → the contradicting record;
//   - "sales": serial_tag → the sold handset (maker, date of sale, channel, import time);
//   - "months": YYYYMM u32 → the claim stored when the month closed;
//   - "decisions": YYYYMM|device_id|n → the payer's n-th decision on a held device;
//   - "late": YYYYMM|device_id → how many records of the month arrived after it closed;
//   - "days": YYYYMM|device_id|epoch → the accepted activity records of the month, as
//     claims read them (the month aggregate, kept at ingest);
//   - "meta": the schema version.
type Bucket int

// The buckets.
const (
	bucketMeta Bucket = iota
	bucketDevices
	bucketChains
	bucketForks
	bucketSales
	bucketMonths
	bucketDecisions
	bucketLate
	bucketDays
	numBuckets
)

var bucketNames = [numBuckets]string{"meta", "devices", "chains", "forks", "sales", "months", "decisions", "late", "days"}

func (b Bucket) String() string { return bucketNames[b] }

// Buckets returns every bucket, in a fixed order.
func Buckets() []Bucket {
	out := make([]Bucket, numBuckets)
	for i := range out {
		out[i] = Bucket(i)
	}
	return out
}

// schemaVersion is stored under meta/schema. A ledger of schema 1 (no payer buckets) or
// 2 (no month aggregates) is upgraded when it is opened for writing: its missing
// buckets are created and the aggregates built from its records. Opened read-only it
// is refused, since its claims would be computed without aggregates; any other version
// is refused.
const schemaVersion = 3

var keySchema = []byte("schema")

// headSeq is the seq under which a device-epoch's head is kept: after every record.
const headSeq = math.MaxUint64

// chainKeySize is the size of every key of the chains bucket.
const chainKeySize = proof.HashSize + 4 + 8

func recordKey(id proof.DeviceID, epoch uint32, seq uint64) []byte {
	k := make([]byte, 0, chainKeySize)
	k = append(k, id[:]...)
	k = binary.BigEndian.AppendUint32(k, epoch)
	return binary.BigEndian.AppendUint64(k, seq)
}

func headKey(id proof.DeviceID, epoch uint32) []byte { return recordKey(id, epoch, headSeq) }

// prefixEnd returns the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no end
}

func corrupt(b Bucket, key []byte, format string, args ...any) error {
	return fmt.Errorf("%s key %x: %s: %w", b, key, fmt.Sprintf(format, args...), ErrCorrupt)
}

// Device value, version 1 (an Ed25519 key, no attestation verdict):
// 0 version | 1 public key 32 | 33 first_seen i64 | 41 fork evidence u32 |
// 45 cert epoch u32 | 49 cert maker key 32 | 81 cert length u16 | 83 cert.
// Version 2 (any other device): 0 version | 1 key type u8 | 2 public key k | then the
// fields of version 1 from first_seen to the cert | attestation length u16 |
// the attestation verdict as JSON.
const deviceFixed = 83

func encodeDevice(d *Device) []byte {
	v2 := d.PublicKey.Type() != proof.KeyEd25519 || d.Attestation != nil
	b := make([]byte, 0, deviceFixed+len(d.Cert)+256)
	if v2 {
		b = append(b, 2, byte(d.PublicKey.Type()))
	} else {
		b = append(b, 1)
	}
	b = append(b, d.PublicKey.Bytes()...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.FirstSeen))
	b = binary.BigEndian.AppendUint32(b, d.ForkEvidence)
	b = binary.BigEndian.AppendUint32(b, d.CertEpoch)
	b = append(b, makerKeyBytes(d.CertMakerKey)...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.Cert)))
	b = append(b, d.Cert...)
	if v2 {
		var js []byte
		if d.Attestation != nil {
			js, _ = json.Marshal(d.Attestation) // plain strings and numbers: cannot fail
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(js)))
		b = append(b, js...)
	}
	return b
}

// makerKeyBytes is the 32 bytes of a maker key (Ed25519), zeros for none.
func makerKeyBytes(k proof.PublicKey) []byte {
	if k.IsZero() {
		return make([]byte, proof.PublicKeySize)
	}
	return k.Bytes()
}

func decodeDevice(key, v []byte) (*Device, error) {
	d := &Device{}
	if err := decodeDeviceInto(d, key, v, false, nil); err != nil {
		return nil, err
	}
	return d, nil
}

// decodeDeviceInto decodes a device value into the zero Device d. A lean decoding is
// what claims read: d.Cert is v's bytes, not a copy of them; the public key is left
// zero, and neither it (a point of its curve, hashing to the device_id, the one the
// certificate names) nor the canonical form of the attestation verdict is checked:
// ingest checked them before storing the device, and they cost more than the rest.
// The certificate, if any, is decoded into into (nil: a new one).
func decodeDeviceInto(d *Device, key, v []byte, lean bool, into *proof.Certificate) error {
	if len(key) != proof.HashSize {
		return corrupt(bucketDevices, key, "key is %d bytes, want %d", len(key), proof.HashSize)
	}
	if len(v) < 2 || (v[0] != 1 && v[0] != 2) {
		return corrupt(bucketDevices, key, "value of %d bytes is not a version 1 or 2 device", len(v))
	}
	copy(d.ID[:], key)
	t, rest := proof.KeyEd25519, v[1:]
	if v[0] == 2 {
		t, rest = proof.KeyType(v[1]), v[2:]
	}
	if t.Size() == 0 || len(rest) < t.Size()+deviceFixed-1-proof.PublicKeySize {
		return corrupt(bucketDevices, key, "value of %d bytes does not hold a version %d device with key type %d", len(v), v[0], t)
	}
	if !lean {
		pub, err := proof.NewPublicKey(t, rest[:t.Size()])
		if err != nil {
			return corrupt(bucketDevices, key, "public key: %v", err)
		}
		d.PublicKey = pub
	}
	rest = rest[t.Size():]
	d.FirstSeen = int64(binary.BigEndian.Uint64(rest))
	d.ForkEvidence = binary.BigEndian.Uint32(rest[8:])
	d.CertEpoch = binary.BigEndian.Uint32(rest[12:])
	var mk [proof.PublicKeySize]byte
	copy(mk[:], rest[16:48])
	if mk != ([proof.PublicKeySize]byte{}) {
		d.CertMakerKey = proof.Ed25519Key(mk)
	}
	n := int(binary.BigEndian.Uint16(rest[48:]))
	rest = rest[50:]
	if len(rest) < n {
		return corrupt(bucketDevices, key, "certificate length %d, %d bytes follow", n, len(rest))
	}
	cert, rest := rest[:n], rest[n:]
	if v[0] == 2 {
		if len(rest) < 2 || len(rest) != 2+int(binary.BigEndian.Uint16(rest)) {
			return corrupt(bucketDevices, key, "attestation verdict framing: %d bytes", len(rest))
		}
		if js := rest[2:]; len(js) > 0 {
			d.Attestation = &Attestation{}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(d.Attestation); err != nil || dec.More() {
				return corrupt(bucketDevices, key, "attestation verdict: %v", err)
			}
			if !lean {
				if again, _ := json.Marshal(d.Attestation); !bytes.Equal(again, js) {
					return corrupt(bucketDevices, key, "attestation verdict is not in its canonical form")
				}
			}
		}
		rest = nil
		if t == proof.KeyEd25519 && d.Attestation == nil {
			return corrupt(bucketDevices, key, "version 2 value of an Ed25519 device without attestation")
		}
	}
	switch {
	case !lean && d.PublicKey.DeviceID() != d.ID:
		return corrupt(bucketDevices, key, "public key %s does not hash to the device_id", d.PublicKey)
	case len(rest) != 0:
		return corrupt(bucketDevices, key, "certificate length %d, %d bytes follow", n, n+len(rest))
	case d.FirstSeen < 0:
		return corrupt(bucketDevices, key, "first_seen %d", d.FirstSeen)
	case d.ForkEvidence > MaxForkEvidence:
		return corrupt(bucketDevices, key, "%d fork evidence records, at most %d", d.ForkEvidence, MaxForkEvidence)
	}
	if n == 0 {
		if d.CertEpoch != 0 || !d.CertMakerKey.IsZero() {
			return corrupt(bucketDevices, key, "certificate epoch or maker key without a certificate")
		}
		return nil
	}
	d.Cert = cert
	if !lean {
		d.Cert = bytes.Clone(cert)
	}
	c := into
	if c == nil {
		c = &proof.Certificate{}
	}
	err := proof.ParseCertificateInto(c, d.Cert)
	switch {
	case err != nil:
		return corrupt(bucketDevices, key, "certificate: %v", err)
	case !lean && c.DevicePublicKey != d.PublicKey:
		return corrupt(bucketDevices, key, "certificate names another key")
	case d.CertEpoch == 0:
		return corrupt(bucketDevices, key, "certificate of epoch 0")
	}
	d.parsed = c
	return nil
}

// Head value, version 1:
// 0 version | 1 seq u64 | 9 hash 32 | 41 last date u32 | 45 genesis verdict u8 |
// 46 seven counters u32 | 74 updated i64 | 82.
const headSize = 82

func encodeHead(h *Head) []byte {
	b := make([]byte, 0, headSize)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = append(b, h.Hash[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.LastDate))
	b = append(b, byte(h.Genesis))
	c := &h.Counts
	for _, n := range []uint32{c.Accepted, c.FutureDate, c.Stale, c.ClockUnconfirmed, c.ClockJumped, c.TallyLost, c.Debuggable} {
		b = binary.BigEndian.AppendUint32(b, n)
	}
	return binary.BigEndian.AppendUint64(b, uint64(h.Updated))
}

func decodeHead(key, v []byte) (*Head, error) {
	if len(key) != chainKeySize || binary.BigEndian.Uint64(key[36:]) != headSeq {
		return nil, corrupt(bucketChains, key, "not a head key")
	}
	if len(v) != headSize || v[0] != 1 {
		return nil, corrupt(bucketChains, key, "value of %d bytes is not a version 1 head", len(v))
	}
	h := &Head{Epoch: binary.BigEndian.Uint32(key[32:])}
	copy(h.DeviceID[:], key)
	h.Seq = binary.BigEndian.Uint64(v[1:])
	copy(h.Hash[:], v[9:41])
	h.LastDate = proof.Date(binary.BigEndian.Uint32(v[41:]))
	g := Verdict(v[45])
	c := &h.Counts
	for i, p := range []*uint32{&c.Accepted, &c.FutureDate, &c.Stale, &c.ClockUnconfirmed, &c.ClockJumped, &c.TallyLost, &c.Debuggable} {
		*p = binary.BigEndian.Uint32(v[46+4*i:])
	}
	h.Updated = int64(binary.BigEndian.Uint64(v[74:]))
	switch {
	case h.Epoch == 0 || h.Seq == 0:
		return nil, corrupt(bucketChains, key, "epoch %d seq %d", h.Epoch, h.Seq)
	case h.LastDate != 0 && !h.LastDate.Valid():
		return nil, corrupt(bucketChains, key, "last date %d", uint32(h.LastDate))
	case g != VerdictAccepted && g != VerdictBadCert && g != VerdictUnknownMaker && g != VerdictImplausible:
		return nil, corrupt(bucketChains, key, "genesis verdict %d", g)
	case uint64(c.Accepted)+uint64(c.FutureDate)+uint64(c.Stale)+1 > h.Seq:
		return nil, corrupt(bucketChains, key, "counters exceed the %d linked records", h.Seq)
	}
	h.Genesis = g
	return h, nil
}

// Record value: verdict u8, then the record bytes.
func encodeRecord(r *Record) []byte {
	return append([]byte{byte(r.Verdict)}, r.Bytes...)
}

func decodeRecord(key, v []byte) (*Record, error) {
	if len(v) < 1+proof.HeaderSize+proof.SignatureSize {
		return nil, corrupt(bucketChains, key, "value of %d bytes", len(v))
	}
	vd := Verdict(v[0])
	if !vd.Valid() {
		return nil, corrupt(bucketChains, key, "verdict %d", vd)
	}
	return &Record{Verdict: vd, Bytes: bytes.Clone(v[1:])}, nil
}

// --- the typed transaction over a key-value transaction -------------------------

// KV is the byte-level transaction a backend provides; NewTx builds the typed Tx on
// it, so that every backend stores the same keys and values. A KV of a read-only
// transaction fails Put with ErrReadOnly.
type KV interface {
	// Get returns the value, valid until the transaction ends; nil if absent.
	Get(b Bucket, key []byte) ([]byte, error)
	// Put stores a value; key and value must not be modified afterwards.
	Put(b Bucket, key, value []byte) error
	// Scan calls fn for every key in [from, to) in order; to nil means no bound. fn
	// may read the transaction (Get, First, another Scan) while the scan goes on.
	Scan(b Bucket, from, to []byte, fn func(k, v []byte) error) error
	// First returns the first key in [from, to), nil if there is none.
	First(b Bucket, from, to []byte) ([]byte, error)
}

// NewTx returns the Tx on a backend's KV.
func NewTx(kv KV) Tx { return ledgerTx{kv} }

// ledgerTx implements Tx on a KV.
type ledgerTx struct{ kv KV }

func (t ledgerTx) Device(id proof.DeviceID) (*Device, error) {
	v, err := t.kv.Get(bucketDevices, id[:])
	if err != nil || v == nil {
		return nil, err
	}
	return decodeDevice(id[:], v)
}

func (t ledgerTx) PutDevice(d *Device) error {
	if d.PublicKey.DeviceID() != d.ID {
		return fmt.Errorf("collector: device %s: the public key does not hash to it", d.ID)
	}
	return t.kv.Put(bucketDevices, bytes.Clone(d.ID[:]), encodeDevice(d))
}

func (t ledgerTx) Devices(fn func(*Device) error) error {
	return t.kv.Scan(bucketDevices, nil, nil, func(k, v []byte) error {
		d, err := decodeDevice(k, v)
		if err != nil {
			return err
		}
		return fn(d)
	})
}

func (t ledgerTx) Head(id proof.DeviceID, epoch uint32) (*Head, error) {
	k := headKey(id, epoch)
	v, err := t.kv.Get(bucketChains, k)
	if err != nil || v == nil {
		return nil, err
	}
	return decodeHead(k, v)
}

func (t ledgerTx) PutHead(h *Head) error {
	if h.Epoch == 0 || h.Seq == 0 || h.Seq == headSeq {
		return fmt.Errorf("collector: head of device %s: epoch %d seq %d", h.DeviceID, h.Epoch, h.Seq)
	}
	return t.kv.Put(bucketChains, headKey(h.DeviceID, h.Epoch), encodeHead(h))
}

func (t ledgerTx) Heads(id proof.DeviceID, fn func(*Head) error) error {
	end := prefixEnd(id[:])
	for from := recordKey(id, 0, 0); ; {
		k, err := t.kv.First(bucketChains, from, end)
		if err != nil || k == nil {
			return err
		}
		if len(k) != chainKeySize {
			return corrupt(bucketChains, k, "key is %d bytes", len(k))
		}
		epoch := binary.BigEndian.Uint32(k[32:])
		h, err := t.Head(id, epoch)
		if err != nil {
			return err
		}
		if h == nil {
			return corrupt(bucketChains, k, "records of epoch %d but no head", epoch)
		}
		if err := fn(h); err != nil {
			return err
		}
		if epoch == math.MaxUint32 {
			return nil
		}
		from = recordKey(id, epoch+1, 0)
	}
}

func (t ledgerTx) Record(id proof.DeviceID, epoch uint32, seq uint64) (*Record, error) {
	if seq == headSeq {
		return nil, nil
	}
	k := recordKey(id, epoch, seq)
	v, err := t.kv.Get(bucketChains, k)
	if err != nil || v == nil {
		return nil, err
	}
	return decodeRecord(k, v)
}

func (t ledgerTx) PutRecord(id proof.DeviceID, epoch uint32, seq uint64, r *Record) error {
	if !r.Verdict.Valid() {
		return fmt.Errorf("collector: record of device %s epoch %d seq %d: %v is never stored", id, epoch, seq, r.Verdict)
	}
	if seq == 0 || seq == headSeq {
		return fmt.Errorf("collector: record of device %s epoch %d: seq %d", id, epoch, seq)
	}
	return t.kv.Put(bucketChains, recordKey(id, epoch, seq), encodeRecord(r))
}

func (t ledgerTx) Records(id proof.DeviceID, epoch uint32, first, last uint64, fn func(uint64, *Record) error) error {
	last = min(last, headSeq-1)
	if last < first {
		return nil
	}
	return t.kv.Scan(bucketChains, recordKey(id, epoch, first), recordKey(id, epoch, last+1), func(k, v []byte) error {
		r, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		return fn(binary.BigEndian.Uint64(k[36:]), r)
	})
}

func (t ledgerTx) AddForkEvidence(id proof.DeviceID, record []byte) (bool, error) {
	h := sha256.Sum256(record)
	k := append(bytes.Clone(id[:]), h[:]...)
	if v, err := t.kv.Get(bucketForks, k); err != nil || v != nil {
		return false, err
	}
	return true, t.kv.Put(bucketForks, k, bytes.Clone(record))
}

func (t ledgerTx) ForkEvidence(id proof.DeviceID, fn func([]byte) error) error {
	return t.kv.Scan(bucketForks, id[:], prefixEnd(id[:]), func(k, v []byte) error {
		return fn(bytes.Clone(v))
	})
}
