// Package inspect reads the whole of an open store for `amosd inspect`, with the
// snake_case JSON names of `amosd status --json` (docs/store-and-epochs.md section 8).
package inspect

import (
	"encoding/hex"
	"fmt"
	"math"

	"amos.example/amosd/proof"
	"amos.example/amosd/store"
)

// Report is everything a store holds.
type Report struct {
	Path          string    `json:"path"`
	FileBytes     int64     `json:"file_bytes"`
	MaxBytes      int64     `json:"max_bytes"`
	Head          *Head     `json:"chain_head"`
	Consent       string    `json:"consent"` // granted, revoked, or not set (consent_default applies)
	Tally         *Tally    `json:"tally"`
	Queue         []Record  `json:"queue"`
	Dead          []Record  `json:"dead_letter"`
	EvictedQueued uint64    `json:"evicted_queued"`
	EvictedDead   uint64    `json:"evicted_dead_letter"`
	Recovery      *Recovery `json:"last_recovery,omitempty"`
	Raw           [][]byte  `json:"-"` // the queued records' bytes, oldest first
}

// Head is the chain head, as text where it is a hash.
type Head struct {
	DeviceID string     `json:"device_id"`
	Epoch    uint32     `json:"epoch"`
	Seq      uint64     `json:"seq"`
	Hash     string     `json:"hash"`
	LastDate proof.Date `json:"last_date"` // YYYYMMDD, 0 before the first day is minted
}

// Tally is the stored tally (store.Tally), its boot id in hex.
type Tally struct {
	Date               proof.Date `json:"date"`
	UTCOffsetMinutes   int16      `json:"utc_offset_minutes"`
	InteractiveSeconds uint32     `json:"interactive_seconds"`
	Unlocks            uint16     `json:"unlocks"`
	ScreenOns          uint16     `json:"screen_ons"`
	ActiveHours        uint32     `json:"active_hours"`
	Flags              uint16     `json:"flags"`
	SavedAt            int64      `json:"saved_at"`
	SavedBootID        string     `json:"saved_boot_id"`
	SavedUptimeMS      uint64     `json:"saved_uptime_ms"`
	State              uint8      `json:"state"`
}

// Recovery is the last recovery from a corrupt store (store.Recovery).
type Recovery struct {
	At          int64  `json:"at"`
	CorruptPath string `json:"corrupt_path"`
	Cause       string `json:"cause"`
	Salvaged    uint64 `json:"salvaged"`
}

// Record is a queued or dead-lettered record, described in one line.
type Record struct {
	Epoch  uint32 `json:"epoch"`
	Seq    uint64 `json:"seq"`
	What   string `json:"what"`
	Reason string `json:"reason,omitempty"` // dead-letter only
	At     int64  `json:"at,omitempty"`     // dead-letter only: when it was dead-lettered
}

// Read reads the whole store: counts, chain head, consent, tally, every queued and
// dead-lettered record (described), and the last recovery.
func Read(s *store.Store) (*Report, error) {
	cnt, err := s.Counts()
	if err != nil {
		return nil, err
	}
	rep := &Report{Path: s.Path(), FileBytes: cnt.FileBytes, MaxBytes: cnt.MaxBytes, EvictedQueued: cnt.EvictedQueued, EvictedDead: cnt.EvictedDead,
		Queue: []Record{}, Dead: []Record{}}
	if h, ok, err := s.Head(); err != nil {
		return nil, err
	} else if ok {
		rep.Head = &Head{DeviceID: h.DeviceID.String(), Epoch: h.Epoch, Seq: h.Seq, Hash: h.Hash.String(), LastDate: h.LastDate}
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
		rep.Tally = &Tally{Date: t.Date, UTCOffsetMinutes: t.UTCOffsetMinutes, InteractiveSeconds: t.InteractiveSeconds,
			Unlocks: t.Unlocks, ScreenOns: t.ScreenOns, ActiveHours: t.ActiveHours, Flags: uint16(t.Flags), SavedAt: t.SavedAt,
			SavedBootID: hex.EncodeToString(t.SavedBootID[:]), SavedUptimeMS: t.SavedUptimeMS, State: t.State}
	}
	items, err := s.Peek(math.MaxInt32, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		e, q, what := describe(it.Record)
		rep.Queue = append(rep.Queue, Record{Epoch: e, Seq: q, What: what})
		rep.Raw = append(rep.Raw, it.Record)
	}
	dead, err := s.DeadLetters(1 << 30)
	if err != nil {
		return nil, err
	}
	for _, d := range dead {
		e, q, what := describe(d.Record)
		rep.Dead = append(rep.Dead, Record{Epoch: e, Seq: q, What: what, Reason: d.Reason, At: d.At})
	}
	if r, ok, err := s.LastRecovery(); err != nil {
		return nil, err
	} else if ok {
		rep.Recovery = &Recovery{At: r.At, CorruptPath: r.CorruptPath, Cause: r.Cause, Salvaged: r.Salvaged}
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
