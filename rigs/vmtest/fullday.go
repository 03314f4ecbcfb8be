package vmtest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// FullDay is the state of README.md's idle budgets, "a full day of tally and 1,000
// queued records": a phone that was offline for 999 days and whose owner has used it
// all of today.
type FullDay struct {
	Today         proof.Date // the date of the open tally
	OffsetMinutes int        // the reporting zone, as amosd's utc_offset_minutes
	SavedAt       time.Time  // when the tally was saved
	BootID        [16]byte   // the boot that saved it (another boot's: restored all the same)
	UptimeMS      uint64     // CLOCK_BOOTTIME of that save
	// Signer signs the records: a keystore key (agent/keystore's Signer, the key.backend
	// keystore of the VM's amosd). Nil: the file key FullDaySeed, written to keyDir.
	Signer proof.Signer
	// Chain is the attestation chain of Signer's key, which the genesis carries.
	Chain [][]byte
}

// FullDaySeed is the device key's seed in the state FullDay.Write makes.
var FullDaySeed = sha256.Sum256([]byte("amosd budget bench device"))

// Write puts the state into keyDir (epoch 1, and the device key FullDaySeed unless
// Signer is given) and dataDir (amosd's store): consent granted, a genesis (carrying
// Chain) and 999 activity days queued, the last of them the day before Today, and
// Today's tally of a full day of use.
func (f FullDay) Write(dataDir, keyDir string) error {
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return err
	}
	signer := f.Signer
	if signer == nil {
		if err := os.WriteFile(filepath.Join(keyDir, "device.key"), FullDaySeed[:], 0o600); err != nil {
			return err
		}
		k, err := proof.NewKeySigner(FullDaySeed[:])
		if err != nil {
			return err
		}
		signer = k
	}
	if err := os.WriteFile(filepath.Join(keyDir, "epoch"), []byte("1\n"), 0o600); err != nil {
		return err
	}
	s, err := store.Open(store.Options{Dir: dataDir})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.SetConsent(true); err != nil {
		return err
	}
	id := signer.PublicKey().DeviceID()
	const days = 999
	date := proof.DateOf(f.Today.Start(f.OffsetMinutes).AddDate(0, 0, -days), f.OffsetMinutes)
	g := &proof.Record{DeviceID: id, Epoch: 1, Seq: 1, MintedAt: date.Start(f.OffsetMinutes).Unix() - 3600,
		Body: &proof.Genesis{PublicKey: signer.PublicKey(), Attestation: f.Chain, Reason: proof.ReasonFirstStart}}
	rec, err := g.Sign(signer)
	if err != nil {
		return err
	}
	if _, err := s.Mint(rec, nil); err != nil {
		return err
	}
	prev := proof.HashRecord(rec)
	for i := range days {
		r := &proof.Record{DeviceID: id, Epoch: 1, Seq: uint64(i + 2), PrevHash: prev, MintedAt: date.Next().Start(f.OffsetMinutes).Unix() + 5,
			UptimeMS: uint64(i+1) * 86_400_000,
			Body: &proof.ActivityDay{Date: date, UTCOffsetMinutes: int16(f.OffsetMinutes), InteractiveSeconds: 5400 + uint32(i%600), Unlocks: 40 + uint16(i%20),
				ScreenOns: 60 + uint16(i%30), ActiveHours: 0x3FFF80}}
		if rec, err = r.Sign(signer); err != nil {
			return err
		}
		if _, err := s.Mint(rec, nil); err != nil {
			return err
		}
		prev, date = proof.HashRecord(rec), date.Next()
	}
	if date != f.Today {
		return fmt.Errorf("the queued days end before %s, not before %s", date, f.Today)
	}
	return s.SaveTally(store.Tally{Date: f.Today, UTCOffsetMinutes: int16(f.OffsetMinutes), InteractiveSeconds: 6 * 3600, Unlocks: 80,
		ScreenOns: 110, ActiveHours: 0xFFFF80, SavedAt: f.SavedAt.Unix(), SavedBootID: f.BootID, SavedUptimeMS: f.UptimeMS})
}
