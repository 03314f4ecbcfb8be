package claim

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/signals"
	"amos.example/amosd/proof"
)

// AmountPerDevice is what a maker is paid per paid serial_tag and month, in CNY.
const AmountPerDevice = 1

// Outcome is what the claim of a month made of one device key.
type Outcome string

// The outcomes, in the order they are decided (docs/eligibility.md).
const (
	Paid         Outcome = "paid"
	Held         Outcome = "held"
	Refused      Outcome = "refused"
	Unregistered Outcome = "unregistered"
	Ineligible   Outcome = "ineligible"
)

// Reasons given with an outcome.
const (
	ReasonNoCertificate  = "no_certificate"           // ineligible: an unattributed key
	ReasonTooFewDays     = "too_few_active_days"      // ineligible
	ReasonSerialPaidOnce = "serial_tag_paid_once"     // ineligible: another key of its serial tag is paid
	ReasonChainFork      = "chain_fork"               // refused
	ReasonMakerKey       = "maker_key_not_registered" // refused: its maker was removed or re-keyed
	ReasonOtherMakers    = "serial_tag_of_another_maker"
	ReasonSoldAfterMonth = "sold_after_month" // refused: the registry's sold_at is after the month
	ReasonDenied         = "denied"           // refused by a payer's decision
	ReasonNotRegistered  = "serial_tag_not_registered"
	ReasonReleased       = "released" // paid by a payer's decision despite its signals
	// Refused where its maker requires attestation (docs/attestation.md): no genesis of
	// the key carried a chain; the chain was refused (the second reason says why); a
	// certificate of the chain is on the status list now.
	ReasonNotAttested        = "not_attested"
	ReasonAttestationRefused = "attestation_refused"
	ReasonAttestationRevoked = "attestation_revoked"
)

// Status of a claim.
const (
	StatusProvisional = "provisional"
	StatusClosed      = "closed"
)

// Row is one maker's claim for the month. Paid counts serial tags. Held, Refused and
// Unregistered count device keys of the maker with enough active days that are not
// paid, except that a fork or another maker's serial tag is refused whatever its days.
// Late counts the maker's records of the month that arrived after it closed.
type Row struct {
	MakerID         string                 `json:"maker_id"`
	EligibleDevices int                    `json:"eligible_devices"` // = Paid
	AmountCNY       int                    `json:"amount_cny"`
	Paid            int                    `json:"paid"`
	Held            int                    `json:"held"`
	Refused         int                    `json:"refused"`
	Late            int                    `json:"late"`
	Unregistered    int                    `json:"unregistered"`
	Attested        int                    `json:"attested"` // the maker's device keys of the month whose attestation holds
	HeldReasons     map[string]int         `json:"held_reasons"`
	RefusedReasons  map[string]int         `json:"refused_reasons"`
	Distribution    *signals.MakerDistance `json:"distribution,omitempty"`
}

// Decision is a payer's decision as a device's outcome shows it.
type Decision struct {
	Decision string `json:"decision"` // "release" or "deny"
	At       int64  `json:"at"`
	By       string `json:"by"`
	Why      string `json:"why"`
}

// Device is what the month's claim made of one device key.
type Device struct {
	DeviceID   string            `json:"device_id"`
	MakerID    string            `json:"maker_id,omitempty"`
	SerialTag  string            `json:"serial_tag,omitempty"`
	ActiveDays int               `json:"active_days"`
	Outcome    Outcome           `json:"outcome"`
	Reasons    []string          `json:"reasons,omitempty"`
	Findings   []signals.Finding `json:"findings,omitempty"`
	Decision   *Decision         `json:"decision,omitempty"`
	// Attestation is "attested", "not_attested", "refused: REASON" or "revoked: WHY"
	// (docs/attestation.md).
	Attestation string `json:"attestation,omitempty"`
}

// Claim is the claim of every registered maker for one month.
type Claim struct {
	Month      string `json:"month"`
	Status     string `json:"status"` // provisional or closed
	ClosesAt   int64  `json:"closes_at"`
	ClosedAt   int64  `json:"closed_at,omitempty"`
	ComputedAt int64  `json:"computed_at"`
	// StatusListStale says the month's moment has passed but it is not closed: a maker
	// requires attestation and the status list is stale (docs/attestation.md).
	StatusListStale bool     `json:"status_list_stale,omitempty"`
	Rows            []Row    `json:"rows"`
	Devices         []Device `json:"devices,omitempty"` // every device key with an accepted day in the month, by maker_id then device_id
}

// Params are the rules a claim is computed with.
type Params struct {
	Makers        map[string]proof.PublicKey // the registered makers and their keys
	Active        func(*proof.ActivityDay) bool
	MinActiveDays int
	Signals       signals.Thresholds
	Schedule      Schedule
	// AttestationRequired says whether a maker's devices must be attested to be paid;
	// nil: none must.
	AttestationRequired func(makerID string) bool
	// Revoked says whether the current status list revokes or suspends a certificate
	// of those serials, and why; nil: no list.
	Revoked func(serials []string) (string, bool)
}

// attestation returns a device's attestation as of the claim: "" when attested, else
// the refusal reasons; and the text of Device.Attestation.
func (p *Params) attestation(d *ledger.Device) ([]string, string) {
	a := d.Attestation
	switch {
	case a == nil:
		return []string{ReasonNotAttested}, ReasonNotAttested
	case !a.Accepted:
		return []string{ReasonAttestationRefused, a.Reason}, "refused: " + a.Reason
	}
	if p.Revoked != nil {
		if why, bad := p.Revoked(a.Serials); bad {
			return []string{ReasonAttestationRevoked, why}, "revoked: " + why
		}
	}
	return nil, "attested"
}

// Compute computes the claim of month m as of now, from tx. Sales registered after
// the month closed are not looked at, so that a claim computed late is the one the
// close would have computed.
func Compute(tx ledger.Tx, m Month, p Params, now time.Time) (*Claim, error) {
	last := m.Last()
	closesAt := p.Schedule.ClosesAt(m)
	decisions := map[proof.DeviceID]*ledger.Decision{}
	err := tx.Decisions(m.Key(), func(d *ledger.Decision) error {
		decisions[d.DeviceID] = d // the last one wins
		return nil
	})
	if err != nil {
		return nil, err
	}
	type entry struct {
		dev    *ledger.Device
		cert   *proof.Certificate
		sig    signals.Device
		active int
		out    Device
		issued int64
	}
	// The month's accepted days, from its aggregates; then the devices they belong to
	// and the sales of their serial tags, each read in one pass. Both the aggregates and
	// the devices come in device_id order: they are merged, not looked up.
	var entries []*entry
	err = tx.MonthDays(m.Key(), func(id proof.DeviceID, epoch uint32, days []ledger.Day) error {
		var e *entry
		if n := len(entries); n > 0 && entries[n-1].sig.ID == id {
			e = entries[n-1]
		} else {
			e = &entry{sig: signals.Device{ID: id, Days: make([]signals.Day, 0, len(days))}}
			entries = append(entries, e)
		}
		for i := range days {
			d := &days[i]
			e.sig.Days = append(e.sig.Days, signals.Day{Epoch: epoch, MintedAt: d.MintedAt, Activity: d.Activity, Active: p.Active(&d.Activity)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	serials := make(map[[32]byte]*ledger.Sale, len(entries))
	if len(entries) > 0 {
		next := 0
		err = tx.Devices(func(d *ledger.Device) error {
			if next == len(entries) || entries[next].sig.ID != d.ID {
				return nil
			}
			e := entries[next]
			next++
			cert, err := d.Certificate()
			if err != nil {
				return err
			}
			var active []proof.Date
			for _, day := range e.sig.Days {
				if day.Active {
					active = append(active, day.Activity.Date)
				}
			}
			slices.Sort(active)
			e.dev, e.cert, e.active = d, cert, len(slices.Compact(active))
			if cert != nil {
				e.sig.MakerID, e.sig.SerialTag, e.issued = cert.MakerID, cert.SerialTag, cert.IssuedAt
				serials[cert.SerialTag] = nil
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		if e.dev == nil {
			return nil, fmt.Errorf("month %s: days of device %s, which the ledger does not hold: %w", m, e.sig.ID, ledger.ErrCorrupt)
		}
	}
	if err := salesOf(tx, serials); err != nil {
		return nil, err
	}
	sigDevs := make([]signals.Device, len(entries))
	for i, e := range entries {
		sigDevs[i] = e.sig
	}
	report := signals.Analyze(sigDevs, p.Signals)

	var payable []*entry
	for _, e := range entries {
		o := &e.out
		o.DeviceID, o.ActiveDays = e.dev.ID.String(), e.active
		set := func(out Outcome, reasons ...string) { o.Outcome, o.Reasons = out, reasons }
		if e.cert == nil {
			set(Ineligible, ReasonNoCertificate)
			continue
		}
		o.MakerID, o.SerialTag = e.cert.MakerID, hex.EncodeToString(e.cert.SerialTag[:])
		unattested, attText := p.attestation(e.dev)
		if e.dev.Attestation != nil || (p.AttestationRequired != nil && p.AttestationRequired(e.cert.MakerID)) {
			o.Attestation = attText
		}
		required := p.AttestationRequired != nil && p.AttestationRequired(e.cert.MakerID)
		o.Findings = report.Devices[e.dev.ID]
		if d := decisions[e.dev.ID]; d != nil {
			o.Decision = &Decision{Decision: "deny", At: d.At, By: d.By, Why: d.Why}
			if d.Release {
				o.Decision.Decision = "release"
			}
		}
		sale := serials[e.cert.SerialTag]
		if sale != nil && sale.RegisteredAt >= closesAt.Unix() {
			sale = nil
		}
		switch key, ok := p.Makers[e.cert.MakerID]; {
		case e.dev.Forked():
			set(Refused, ReasonChainFork)
		case sale != nil && sale.MakerID != e.cert.MakerID:
			set(Refused, ReasonOtherMakers)
		case e.active < p.MinActiveDays:
			set(Ineligible, ReasonTooFewDays)
		case !ok || key != e.dev.CertMakerKey:
			set(Refused, ReasonMakerKey)
		case required && unattested != nil:
			set(Refused, unattested...)
		case sale == nil:
			set(Unregistered, ReasonNotRegistered)
		case sale.SoldAt > last:
			set(Refused, ReasonSoldAfterMonth)
		case len(o.Findings) > 0 && o.Decision == nil:
			reasons := make([]string, len(o.Findings))
			for i, f := range o.Findings {
				reasons[i] = string(f.Signal)
			}
			set(Held, slices.Compact(reasons)...)
		case len(o.Findings) > 0 && o.Decision.Decision == "deny":
			set(Refused, ReasonDenied)
		default:
			if len(o.Findings) > 0 {
				o.Reasons = []string{ReasonReleased}
			}
			payable = append(payable, e)
		}
	}
	// One payment per serial tag: the earliest issued certificate, then the lowest device_id.
	slices.SortFunc(payable, func(x, y *entry) int {
		if c := bytes.Compare(x.cert.SerialTag[:], y.cert.SerialTag[:]); c != 0 { // nearly always: no other argument evaluated
			return c
		}
		return cmp.Or(cmp.Compare(x.issued, y.issued), bytes.Compare(x.dev.ID[:], y.dev.ID[:]))
	})
	for i, e := range payable {
		if i > 0 && payable[i-1].cert.SerialTag == e.cert.SerialTag {
			e.out.Outcome, e.out.Reasons = Ineligible, []string{ReasonSerialPaidOnce}
		} else {
			e.out.Outcome = Paid
		}
	}

	c := &Claim{Month: m.String(), Status: StatusProvisional, ClosesAt: closesAt.Unix(), ComputedAt: now.Unix(), Rows: []Row{}, Devices: make([]Device, len(entries))}
	rows := map[string]*Row{}
	for _, id := range slices.Sorted(maps.Keys(p.Makers)) {
		rows[id] = &Row{MakerID: id, HeldReasons: map[string]int{}, RefusedReasons: map[string]int{}}
	}
	for _, d := range report.Makers {
		if r := rows[d.MakerID]; r != nil {
			r.Distribution = &d
		}
	}
	for i, e := range entries {
		c.Devices[i] = e.out
		r := rows[e.out.MakerID]
		if r == nil {
			continue
		}
		if e.out.Attestation == "attested" {
			r.Attested++
		}
		switch e.out.Outcome {
		case Paid:
			r.Paid++
		case Held:
			r.Held++
			for _, why := range e.out.Reasons {
				r.HeldReasons[why]++
			}
		case Refused:
			r.Refused++
			r.RefusedReasons[e.out.Reasons[0]]++
		case Unregistered:
			r.Unregistered++
		}
	}
	slices.SortFunc(c.Devices, func(x, y Device) int {
		if x.MakerID != y.MakerID {
			return cmp.Compare(x.MakerID, y.MakerID)
		}
		return cmp.Compare(x.DeviceID, y.DeviceID)
	})
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		r := rows[id]
		r.EligibleDevices, r.AmountCNY = r.Paid, r.Paid*AmountPerDevice
		c.Rows = append(c.Rows, *r)
	}
	if err := CountLate(tx, m, c); err != nil {
		return nil, err
	}
	return c, nil
}

// salesOf fills serials with the registered sale of each serial tag (nil if none):
// one lookup each for a few, one scan of the registry for many.
func salesOf(tx ledger.Tx, serials map[[32]byte]*ledger.Sale) error {
	if len(serials) <= 4096 {
		for serial := range serials {
			s, err := tx.Sale(serial)
			if err != nil {
				return err
			}
			serials[serial] = s
		}
		return nil
	}
	return tx.Sales(func(s *ledger.Sale) error {
		if _, ok := serials[s.SerialTag]; ok {
			serials[s.SerialTag] = s
		}
		return nil
	})
}

// CountLate sets each row's Late from the ledger's late records of the month: the one
// figure of a closed claim that still moves.
func CountLate(tx ledger.Tx, m Month, c *Claim) error {
	late := map[string]int{}
	err := tx.Late(m.Key(), func(id proof.DeviceID, n uint32) error {
		d, err := tx.Device(id)
		if err != nil || d == nil {
			return err
		}
		cert, err := d.Certificate()
		if err != nil || cert == nil {
			return err
		}
		late[cert.MakerID] += int(n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("late records of %s: %w", m, err)
	}
	for i := range c.Rows {
		c.Rows[i].Late = late[c.Rows[i].MakerID]
	}
	return nil
}

// ForMaker returns the claim as maker id may see it: its own row and its own devices.
func (c *Claim) ForMaker(id string) *Claim {
	out := *c
	out.Rows, out.Devices = []Row{}, nil
	for _, r := range c.Rows {
		if r.MakerID == id {
			out.Rows = append(out.Rows, r)
		}
	}
	for _, d := range c.Devices {
		if d.MakerID == id {
			out.Devices = append(out.Devices, d)
		}
	}
	return &out
}

// Summary returns the claim without its device list.
func (c *Claim) Summary() *Claim {
	out := *c
	out.Devices = nil
	return &out
}

// Find returns the outcome of a device key, nil if it had no accepted day in the month.
func (c *Claim) Find(id proof.DeviceID) *Device {
	s := id.String()
	for i := range c.Devices {
		if c.Devices[i].DeviceID == s {
			return &c.Devices[i]
		}
	}
	return nil
}
