package collectortest

import (
	"crypto/sha256"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// Key returns a deterministic Ed25519 key for label.
func Key(t testing.TB, label string) *proof.KeySigner {
	t.Helper()
	s := sha256.Sum256([]byte("amos-collector collectortest " + label))
	k, err := proof.NewKeySigner(s[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Certify signs a maker certificate of device key dev for the serial_tag
// SHA-256(serialLabel), issued at issued.
func Certify(t testing.TB, maker *proof.KeySigner, makerID string, dev proof.PublicKey, serialLabel string, issued time.Time) *proof.Certificate {
	t.Helper()
	c := &proof.Certificate{DevicePublicKey: dev, SerialTag: sha256.Sum256([]byte(serialLabel)), MakerID: makerID,
		Model: "Amos T1", IssuedAt: issued.Unix()}
	if _, err := c.Sign(maker); err != nil {
		t.Fatal(err)
	}
	return c
}

// Device mints the records of a simulated handset: a genesis per epoch, then one
// activity record per date, each chained to the one before.
type Device struct {
	Key   proof.Signer       // Ed25519 (NewDevice) or P-256 (NewP256Device)
	Cert  *proof.Certificate // carried by the next genesis; nil for none
	Chain [][]byte           // the attestation chain the next genesis carries; nil for none
	Epoch uint32
	Seq   uint64
	Prev  proof.Hash
	t     testing.TB
}

// NewDevice returns a handset with the deterministic key of label.
func NewDevice(t testing.TB, label string) *Device {
	return &Device{Key: Key(t, "device "+label), t: t}
}

// NewP256Device returns a handset with the deterministic P-256 key of label.
func NewP256Device(t testing.TB, label string) *Device {
	t.Helper()
	s := sha256.Sum256([]byte("amos-collector collectortest p256 device " + label))
	k, err := proof.NewP256Signer(s[:])
	if err != nil {
		t.Fatal(err)
	}
	return &Device{Key: k, t: t}
}

// ID returns the device_id.
func (d *Device) ID() proof.DeviceID { return d.Key.PublicKey().DeviceID() }

// Genesis starts the next epoch.
func (d *Device) Genesis() []byte {
	d.t.Helper()
	d.Epoch++
	reason := proof.ReasonFirstStart
	if d.Epoch > 1 {
		reason = proof.ReasonStoreRecreated
	}
	return d.sign(&proof.Record{DeviceID: d.ID(), Epoch: d.Epoch, Seq: 1, MintedAt: 1790000000, UptimeMS: 1000,
		Body: &proof.Genesis{PublicKey: d.Key.PublicKey(), Cert: d.Cert, Attestation: d.Chain, Reason: reason}})
}

// Day mints the activity record of date at UTC+08:00 with the given counters.
func (d *Device) Day(date proof.Date, seconds uint32, unlocks uint16) []byte {
	d.t.Helper()
	return d.sign(&proof.Record{DeviceID: d.ID(), Epoch: d.Epoch, Seq: d.Seq + 1, PrevHash: d.Prev,
		MintedAt: date.Next().Start(480).Unix() + 5, UptimeMS: d.Seq * 1000,
		Body: &proof.ActivityDay{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: seconds, Unlocks: unlocks,
			ScreenOns: unlocks + 1, ActiveHours: proof.AllHours}})
}

// Active mints an active day: 900 s, 3 unlocks.
func (d *Device) Active(date proof.Date) []byte { return d.Day(date, 900, 3) }

func (d *Device) sign(r *proof.Record) []byte {
	d.t.Helper()
	b, err := r.Sign(d.Key)
	if err != nil {
		d.t.Fatal(err)
	}
	d.Seq, d.Prev = r.Seq, proof.HashRecord(b)
	return b
}

// Batch frames records for the wire.
func Batch(t testing.TB, records ...[]byte) []byte {
	t.Helper()
	b, err := proof.EncodeBatch(records)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
