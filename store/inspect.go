package store

import (
	"fmt"
	"math"

	"amos.example/amosd/proof"
)

// Inspection is everything a store holds, read for `amosd inspect` (docs/store-and-epochs.md).
type Inspection struct {
	Path          string            `json:"path"`
	FileBytes     int64             `json:"file_bytes"`
	MaxBytes      int64             `json:"max_bytes"`
	Head          *InspectedHead    `json:"chain_head"`
	Consent       string            `json:"consent"` // granted, revoked, or not set (consent_default applies)
	Tally         *Tally            `json:"tally"`
	Queue         []InspectedRecord `json:"queue"`
	Dead          []InspectedRecord `json:"dead_letter"`
	EvictedQueued uint64            `json:"evicted_queued"`
	EvictedDead   uint64            `json:"evicted_dead_letter"`
	Recovery      *Recovery         `json:"last_recovery,omitempty"`
	Raw           [][]byte          `json:"-"` // the queued records' bytes, oldest first
}

// InspectedHead is the chain head, as text where it is a hash.
type InspectedHead struct {
	DeviceID string     `json:"device_id"`
	Epoch    uint32     `json:"epoch"`
	Seq      uint64     `json:"seq"`
	Hash     string     `json:"hash"`
	LastDate proof.Date `json:"last_date"`
}

// InspectedRecord is a queued or dead-lettered record, described in one line.
type InspectedRecord struct {
	Epoch  uint32 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	What   string `json:"what"`
	Reason string `json:"reason,omitempty"` // dead-letter only
	At     int64  `json:"at,omitempty"`     // dead-letter only: when it was dead-lettered
}

// Inspect reads the whole store: counts, chain head, consent, tally, every queued and
// dead-lettered record (described), and the last recovery.
func (s *Store) Inspect() (*Inspection, error) {
	cnt, err := s.Counts()
	if err != nil {
		return nil, err
	}
	rep := &Inspection{Path: s.Path(), FileBytes: cnt.FileBytes, MaxBytes: cnt.MaxBytes, EvictedQueued: cnt.EvictedQueued, EvictedDead: cnt.EvictedDead,
		Queue: []InspectedRecord{}, Dead: []InspectedRecord{}}
	if h, ok, err := s.Head(); err != nil {
		return nil, err
	} else if ok {
		rep.Head = &InspectedHead{DeviceID: h.DeviceID.String(), Epoch: h.Epoch, Seq: h.Seq, Hash: h.Hash.String(), LastDate: h.LastDate}
	}
	granted, set, err := s.Consent()
	if err != nil {
		return nil, err
	}
	rep.Consent = map[bool]string{true: "granted", false: "revoked"}[granted]
	if !set {
		rep.Consent = "not set (consent_default applies)"
	}
	if t, ok, err := s.Tally(); err != nil {
		return nil, err
	} else if ok {
		rep.Tally = &t
	}
	items, err := s.Peek(math.MaxInt32, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		e, q, what := describe(it.Record)
		rep.Queue = append(rep.Queue, InspectedRecord{Epoch: e, Seq: q, What: what})
		rep.Raw = append(rep.Raw, it.Record)
	}
	dead, err := s.DeadLetters(1 << 30)
	if err != nil {
		return nil, err
	}
	for _, d := range dead {
		e, q, what := describe(d.Record)
		rep.Dead = append(rep.Dead, InspectedRecord{Epoch: e, Seq: q, What: what, Reason: d.Reason, At: d.At})
	}
	if r, ok, err := s.LastRecovery(); err != nil {
		return nil, err
	} else if ok {
		rep.Recovery = &r
	}
	return rep, nil
}

// describe decodes a stored record into its epoch, seq and a line about it.
func describe(b []byte) (uint32, uint64, string) {
	r, err := proof.Decode(b)
	if err != nil {
		return 0, 0, "undecodable: " + err.Error()
	}
	if a, ok := r.Activity(); ok {
		return r.Epoch, r.Seq, fmt.Sprintf("day %s: %d s, %d unlocks, %d screen_ons, flags %#04x", a.Date, a.InteractiveSeconds, a.Unlocks, a.ScreenOns, uint16(r.Flags))
	}
	g, _ := r.Genesis()
	cert := "no certificate"
	if g.Cert != nil {
		cert = "maker " + g.Cert.MakerID
	}
	return r.Epoch, r.Seq, fmt.Sprintf("genesis (reason %d, %s)", g.Reason, cert)
}
