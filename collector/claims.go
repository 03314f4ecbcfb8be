package collector

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// Month is a calendar month of the reporting zone.
type Month = claim.Month

// Claims is the claim of every registered maker for one month (docs/eligibility.md).
type Claims = claim.Claim

// ClaimRow is one maker's claim for a month.
type ClaimRow = claim.Row

// AmountPerDevice is what a maker is paid per paid serial_tag and month, in CNY.
const AmountPerDevice = claim.AmountPerDevice

// ParseMonth parses exactly "YYYY-MM", years 1970..9999.
func ParseMonth(s string) (Month, error) { return claim.ParseMonth(s) }

// MonthOf returns the month of a date.
func MonthOf(d proof.Date) Month { return claim.MonthOf(d) }

// params returns the rules the collector's claims are computed with.
func (c *Collector) params() claim.Params {
	p := claim.Params{Makers: c.makers, Active: c.elig.Active, MinActiveDays: c.elig.MinActiveDays, Signals: c.signals, Schedule: c.schedule}
	if a := c.attestor; a != nil {
		p.AttestationRequired = func(id string) bool { return a.Mode(id) == AttestationRequired }
		p.Revoked = a.Revoked
	}
	return p
}

// Claims returns every registered maker's claim for month m, with every device's
// outcome (docs/eligibility.md). Before the month closes it is computed from the ledger
// as it is (status provisional). The first call at or after the moment it closes
// computes it once and stores it; from then on that stored claim is returned, with only
// its late figures brought up to date.
func (c *Collector) Claims(m Month) (*Claims, error) {
	now := c.now()
	if !c.schedule.Closed(m, now) {
		return c.provisional(m, now)
	}
	var out *Claims
	err := c.ledger.View(func(tx ledger.Tx) error {
		var err error
		out, err = storedClaim(tx, m)
		return err
	})
	if err != nil || out != nil {
		return out, wrapClaims(m, err)
	}
	if c.closeBlocked(now) {
		// Not closed while the revocations it would be decided with may be out of date
		// (docs/attestation.md, the stale rule): provisional, and it says why.
		p, err := c.provisional(m, now)
		if err != nil {
			return nil, err
		}
		held := *p
		held.StatusListStale = true
		return &held, nil
	}
	err = c.ledger.Update(func(tx ledger.Tx) error {
		if stored, err := storedClaim(tx, m); err != nil || stored != nil {
			out = stored
			return err
		}
		cl, err := claim.Compute(tx, m, c.params(), now)
		if err != nil {
			return err
		}
		cl.Status, cl.ClosedAt = claim.StatusClosed, c.schedule.ClosesAt(m).Unix()
		b, err := json.Marshal(cl)
		if err != nil {
			return err
		}
		out = cl
		return tx.PutClosedMonth(&ledger.ClosedMonth{Month: m.Key(), ClosedAt: cl.ClosedAt, Claim: b})
	})
	if errors.Is(err, ledger.ErrReadOnly) { // an offline reader of a ledger a server holds: computed, not stored
		err = c.ledger.View(func(tx ledger.Tx) error {
			cl, err := claim.Compute(tx, m, c.params(), now)
			if err == nil {
				cl.Status, cl.ClosedAt = claim.StatusClosed, c.schedule.ClosesAt(m).Unix()
			}
			out = cl
			return err
		})
	}
	return out, wrapClaims(m, err)
}

// revoked says why the current status list revokes d's attestation chain, "" if not.
func (c *Collector) revoked(d *ledger.Device) (why string) {
	if c.attestor != nil && d.Attestation != nil {
		why, _ = c.attestor.Revoked(d.Attestation.Serials)
	}
	return why
}

// closeBlocked reports whether months must stay open: a maker requires attestation and
// the status list is stale.
func (c *Collector) closeBlocked(now time.Time) bool {
	for id := range c.makers {
		if c.attestor != nil && c.attestor.Mode(id) == AttestationRequired && c.attestor.StatusStale(now) {
			return true
		}
	}
	return false
}

func wrapClaims(m Month, err error) error {
	if err != nil {
		return fmt.Errorf("collector: claims for %s: %w", m, err)
	}
	return nil
}

// storedClaim decodes a closed month's stored claim and brings its late figures up to
// date; nil if the month is not stored.
func storedClaim(tx ledger.Tx, m Month) (*Claims, error) {
	cm, err := tx.ClosedMonth(m.Key())
	if err != nil || cm == nil {
		return nil, err
	}
	var cl Claims
	if err := json.Unmarshal(cm.Claim, &cl); err != nil {
		return nil, fmt.Errorf("stored claim of %s: %v: %w", m, err, ledger.ErrCorrupt)
	}
	return &cl, claim.CountLate(tx, m, &cl)
}

// provisional computes an open month's claim, reusing the last one computed while
// nothing was written to the ledger since.
func (c *Collector) provisional(m Month, now time.Time) (*Claims, error) {
	gen, status := c.generation.Load(), uint64(0)
	if c.attestor != nil {
		status = c.attestor.StatusVersion()
	}
	c.cacheMu.Lock()
	hit, ok := c.cache[m]
	c.cacheMu.Unlock()
	if ok && hit.gen == gen && hit.status == status {
		return hit.claim, nil
	}
	// Callers asking while the month is being computed share that computation: at most
	// one claim per month is computed at a time, however many ask (ingest keeps its CPU).
	v, err, _ := c.computing.Do(m.String(), func() (any, error) {
		var out *Claims
		err := c.ledger.View(func(tx ledger.Tx) (err error) { out, err = claim.Compute(tx, m, c.params(), now); return err })
		return out, err
	})
	if err != nil {
		return nil, wrapClaims(m, err)
	}
	out := v.(*Claims)
	c.cacheMu.Lock()
	if len(c.cache) >= 4 {
		clear(c.cache)
	}
	c.cache[m] = cachedClaim{gen: gen, status: status, claim: out}
	c.cacheMu.Unlock()
	return out, nil
}

// cachedClaim is a provisional claim, and the ledger generation and status list
// version it was computed at.
type cachedClaim struct {
	gen, status uint64
	claim       *Claims
}

// DeviceReport is what GET /v1/devices/{id} shows of a device.
type DeviceReport struct {
	DeviceID     string `json:"device_id"`
	PublicKey    string `json:"public_key"`
	KeyType      string `json:"key_type"` // "ed25519" or "p256"
	FirstSeen    int64  `json:"first_seen"`
	Attributed   bool   `json:"attributed"`
	MakerID      string `json:"maker_id,omitempty"`
	Model        string `json:"model,omitempty"`
	SerialTag    string `json:"serial_tag,omitempty"`
	CertIssuedAt int64  `json:"cert_issued_at,omitempty"`
	CertEpoch    uint32 `json:"cert_epoch,omitempty"`
	Forked       bool   `json:"forked"`
	ForkEvidence uint32 `json:"fork_evidence"`
	// Attestation is the verdict on the key's attestation chain (docs/attestation.md);
	// absent when no genesis of the device carried one.
	Attestation *ledger.Attestation `json:"attestation,omitempty"`
	// AttestationRevoked says why the current status list revokes a certificate of
	// that chain; absent when it does not.
	AttestationRevoked string        `json:"attestation_revoked,omitempty"`
	Epochs             []EpochReport `json:"epochs"`
	Months             []MonthReport `json:"months"`
}

// EpochReport is one epoch's chain head and counters.
type EpochReport struct {
	Epoch            uint32 `json:"epoch"`
	HeadSeq          uint64 `json:"head_seq"`
	HeadHash         string `json:"head_hash"`
	LastDate         string `json:"last_date,omitempty"`
	Genesis          string `json:"genesis"` // "accepted", "bad_cert" or "unknown_maker"
	Accepted         uint32 `json:"accepted_days"`
	FutureDate       uint32 `json:"future_date"`
	Stale            uint32 `json:"stale"`
	ClockUnconfirmed uint32 `json:"clock_unconfirmed"`
	ClockJumped      uint32 `json:"clock_jumped"`
	TallyLost        uint32 `json:"tally_lost"`
	Debuggable       uint32 `json:"debuggable"`
	Updated          int64  `json:"updated"`
}

// MonthReport counts a device's dates in one month: those an accepted record
// reported, and the active ones among them.
type MonthReport struct {
	Month        string `json:"month"`
	ReportedDays int    `json:"reported_days"`
	ActiveDays   int    `json:"active_days"`
}

// Device reports what the ledger holds about a device; ErrNotFound if nothing.
func (c *Collector) Device(id proof.DeviceID) (*DeviceReport, error) {
	var r *DeviceReport
	err := c.ledger.View(func(tx ledger.Tx) error {
		d, err := tx.Device(id)
		if err != nil || d == nil {
			return err
		}
		r = &DeviceReport{DeviceID: d.ID.String(), PublicKey: d.PublicKey.String(), KeyType: d.PublicKey.Type().String(),
			Attestation: d.Attestation, AttestationRevoked: c.revoked(d), FirstSeen: d.FirstSeen,
			Forked: d.Forked(), ForkEvidence: d.ForkEvidence, Epochs: []EpochReport{}, Months: []MonthReport{}}
		cert, err := d.Certificate()
		if err != nil {
			return err
		}
		if cert != nil {
			r.Attributed = true
			r.MakerID, r.Model, r.SerialTag = cert.MakerID, cert.Model, hex.EncodeToString(cert.SerialTag[:])
			r.CertIssuedAt, r.CertEpoch = cert.IssuedAt, d.CertEpoch
		}
		var lastDate proof.Date
		err = tx.Heads(id, func(h *ledger.Head) error {
			e := EpochReport{Epoch: h.Epoch, HeadSeq: h.Seq, HeadHash: h.Hash.String(), Genesis: string(StatusAccepted),
				Accepted: h.Counts.Accepted, FutureDate: h.Counts.FutureDate, Stale: h.Counts.Stale,
				ClockUnconfirmed: h.Counts.ClockUnconfirmed, ClockJumped: h.Counts.ClockJumped,
				TallyLost: h.Counts.TallyLost, Debuggable: h.Counts.Debuggable, Updated: h.Updated}
			if reason := reasonOf(h.Genesis); reason != "" {
				e.Genesis = string(reason)
			}
			if h.LastDate != 0 {
				e.LastDate = h.LastDate.String()
				lastDate = max(lastDate, h.LastDate)
			}
			r.Epochs = append(r.Epochs, e)
			return nil
		})
		if err != nil {
			return err
		}
		// Its accepted days, from the month aggregates: an accepted date is at most
		// StaleMonths before the server's date when it arrived, so none is before the
		// month StaleMonths+1 before the device was first seen.
		reported, active := map[proof.Date]bool{}, map[proof.Date]bool{}
		from := MonthOf(proof.DateOf(time.Unix(d.FirstSeen, 0).AddDate(0, -StaleMonths-1, 0), 0))
		for m := from; lastDate != 0 && m.Key() <= MonthOf(lastDate).Key(); m = MonthOf(m.Last().Next()) {
			err := tx.DeviceMonthDays(m.Key(), id, func(_ uint32, days []ledger.Day) error {
				for i := range days {
					reported[days[i].Activity.Date] = true
					if c.elig.Active(&days[i].Activity) {
						active[days[i].Activity.Date] = true
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		dates := slices.Sorted(maps.Keys(reported))
		for _, date := range dates {
			m := MonthOf(date).String()
			if n := len(r.Months); n == 0 || r.Months[n-1].Month != m {
				r.Months = append(r.Months, MonthReport{Month: m})
			}
			mr := &r.Months[len(r.Months)-1]
			mr.ReportedDays++
			if active[date] {
				mr.ActiveDays++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("collector: device %s: %w", id, err)
	}
	if r == nil {
		return nil, fmt.Errorf("collector: device %s: %w", id, ErrNotFound)
	}
	return r, nil
}

// Chain returns the stored records of one epoch of a device in seq order, for audit:
// they always form a chain that proof.VerifyChain accepts.
func (c *Collector) Chain(id proof.DeviceID, epoch uint32) ([][]byte, error) {
	var out [][]byte
	err := c.ledger.View(func(tx ledger.Tx) error {
		return tx.Records(id, epoch, 1, math.MaxUint64, func(_ uint64, r *ledger.Record) error {
			out = append(out, r.Bytes)
			return nil
		})
	})
	return out, err
}
