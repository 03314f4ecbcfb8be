package claim

import (
	"fmt"

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
	Makers        map[string]proof.PublicKey    // the registered makers and their keys
	Active        func(*proof.ActivityDay) bool // called from several goroutines at once
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
func (p *Params) attestation(a *ledger.Attestation) ([]string, string) {
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
