package collector

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// AmountPerDevice is what a maker is paid per eligible device and month, in CNY.
const AmountPerDevice = 1

// Month is a calendar month of the reporting zone.
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth parses exactly "YYYY-MM", years 1970..9999.
func ParseMonth(s string) (Month, error) {
	bad := func(why string) (Month, error) {
		return Month{}, fmt.Errorf("month %q: %s: %w", s, why, ErrMonth)
	}
	if len(s) != 7 || s[4] != '-' {
		return bad("want YYYY-MM")
	}
	for i, c := range []byte(s) {
		if i != 4 && (c < '0' || c > '9') {
			return bad("want YYYY-MM")
		}
	}
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[5:])
	switch {
	case y < 1970:
		return bad("year before 1970")
	case m < 1 || m > 12:
		return bad("month not 01..12")
	}
	return Month{y, time.Month(m)}, nil
}

// MonthOf returns the month of a date.
func MonthOf(d proof.Date) Month { return Month{d.Year(), d.Month()} }

// String returns the month as YYYY-MM.
func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// First returns the first date of the month.
func (m Month) First() proof.Date { return proof.NewDate(m.Year, m.Month, 1) }

// Last returns the last date of the month.
func (m Month) Last() proof.Date {
	t := time.Date(m.Year, m.Month+1, 0, 0, 0, 0, 0, time.UTC)
	return proof.NewDate(t.Year(), t.Month(), t.Day())
}

// ClaimRow is one maker's claim for a month (docs/operations.md).
type ClaimRow struct {
	MakerID         string `json:"maker_id"`
	EligibleDevices int    `json:"eligible_devices"`
	AmountCNY       int    `json:"amount_cny"`
}

// PaidDevice is one paid serial_tag: the device key it is paid for, and to whom.
type PaidDevice struct {
	MakerID    string
	SerialTag  [32]byte
	DeviceID   proof.DeviceID
	ActiveDays int
	// Others are the other eligible keys of the same serial_tag, not paid.
	Others []proof.DeviceID
}

// Claims is the claim of every registered maker for one month.
type Claims struct {
	Month string     `json:"month"`
	Rows  []ClaimRow `json:"rows"`
	// Paid lists the paid serial_tags by maker_id, then serial_tag: the audit trail.
	Paid []PaidDevice `json:"-"`
}

// ForMaker returns the claims as maker id may see them: its own row only.
func (c *Claims) ForMaker(id string) *Claims {
	out := &Claims{Month: c.Month, Rows: []ClaimRow{}}
	for _, r := range c.Rows {
		if r.MakerID == id {
			out.Rows = append(out.Rows, r)
		}
	}
	for _, p := range c.Paid {
		if p.MakerID == id {
			out.Paid = append(out.Paid, p)
		}
	}
	return out
}

// WriteCSV writes the rows with the header maker_id,eligible_devices,amount_cny.
func (c *Claims) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"maker_id", "eligible_devices", "amount_cny"})
	for _, r := range c.Rows {
		cw.Write([]string{r.MakerID, strconv.Itoa(r.EligibleDevices), strconv.Itoa(r.AmountCNY)})
	}
	cw.Flush()
	return cw.Error()
}

// candidate is an eligible device before the one-payment-per-serial_tag rule.
type candidate struct {
	maker    string
	serial   [32]byte
	issuedAt int64
	id       proof.DeviceID
	days     int
}

// Claims computes every registered maker's claim for month m (see the package
// documentation for the rule). Makers with nothing eligible get a zero row.
func (c *Collector) Claims(m Month) (*Claims, error) {
	first, last := m.First(), m.Last()
	var cands []candidate
	err := c.ledger.View(func(tx ledger.Tx) error {
		return tx.Devices(func(d *ledger.Device) error {
			if d.Forked() || d.Cert == nil {
				return nil
			}
			cert, err := d.Certificate()
			if err != nil {
				return err
			}
			if key, ok := c.makers[cert.MakerID]; !ok || key != d.CertMakerKey {
				return nil // maker no longer registered, or registered with another key
			}
			days, err := c.activeDays(tx, d.ID, first, last)
			if err != nil {
				return err
			}
			if days >= c.elig.MinActiveDays {
				cands = append(cands, candidate{cert.MakerID, cert.SerialTag, cert.IssuedAt, d.ID, days})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("collector: claims for %s: %w", m, err)
	}
	slices.SortFunc(cands, func(x, y candidate) int {
		return cmp.Or(bytes.Compare(x.serial[:], y.serial[:]), cmp.Compare(x.issuedAt, y.issuedAt), bytes.Compare(x.id[:], y.id[:]))
	})
	out := &Claims{Month: m.String(), Rows: []ClaimRow{}}
	counts := map[string]int{}
	for i := 0; i < len(cands); {
		j := i + 1
		for j < len(cands) && cands[j].serial == cands[i].serial {
			j++
		}
		w := cands[i]
		p := PaidDevice{MakerID: w.maker, SerialTag: w.serial, DeviceID: w.id, ActiveDays: w.days}
		for _, o := range cands[i+1 : j] {
			p.Others = append(p.Others, o.id)
		}
		out.Paid = append(out.Paid, p)
		counts[w.maker]++
		i = j
	}
	slices.SortStableFunc(out.Paid, func(x, y PaidDevice) int { return cmp.Compare(x.MakerID, y.MakerID) })
	ids := make([]string, 0, len(c.makers))
	for id := range c.makers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		out.Rows = append(out.Rows, ClaimRow{MakerID: id, EligibleDevices: counts[id], AmountCNY: counts[id] * AmountPerDevice})
	}
	return out, nil
}

// activeDays counts the distinct dates from first to last that an accepted record of
// any epoch made active.
func (c *Collector) activeDays(tx ledger.Tx, id proof.DeviceID, first, last proof.Date) (int, error) {
	dates := map[proof.Date]bool{}
	err := acceptedDays(tx, id, first, last, func(a *proof.ActivityDay) {
		if c.elig.Active(a) {
			dates[a.Date] = true
		}
	})
	return len(dates), err
}

// acceptedDays calls fn with the body of every accepted activity record of the device
// dated first..last, epoch by epoch. Dates increase with seq along every stored
// chain, so each epoch's range is found by binary search and only it is decoded.
func acceptedDays(tx ledger.Tx, id proof.DeviceID, first, last proof.Date, fn func(*proof.ActivityDay)) error {
	return tx.Heads(id, func(h *ledger.Head) error {
		if h.Counts.Accepted == 0 || h.LastDate < first {
			return nil
		}
		lo, err := searchDate(tx, h, first)
		if err != nil {
			return err
		}
		hi, err := searchDate(tx, h, last.Next())
		if err != nil {
			return err
		}
		return tx.Records(id, h.Epoch, lo, hi-1, func(seq uint64, r *ledger.Record) error {
			if r.Verdict != ledger.VerdictAccepted {
				return nil
			}
			a, err := storedActivity(h, seq, r)
			if err != nil {
				return err
			}
			fn(a)
			return nil
		})
	})
}

// searchDate returns the smallest seq of the epoch whose activity date is d or later,
// h.Seq+1 if there is none.
func searchDate(tx ledger.Tx, h *ledger.Head, d proof.Date) (uint64, error) {
	lo, hi := uint64(2), h.Seq+1 // activity records are seq 2..h.Seq
	for lo < hi {
		mid := lo + (hi-lo)/2
		r, err := tx.Record(h.DeviceID, h.Epoch, mid)
		if err != nil {
			return 0, err
		}
		if r == nil {
			return 0, fmt.Errorf("device %s epoch %d: seq %d is below the head but not stored: %w", h.DeviceID, h.Epoch, mid, ledger.ErrCorrupt)
		}
		a, err := storedActivity(h, mid, r)
		if err != nil {
			return 0, err
		}
		if a.Date < d {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

func storedActivity(h *ledger.Head, seq uint64, r *ledger.Record) (*proof.ActivityDay, error) {
	rec, err := proof.Decode(r.Bytes)
	if err != nil {
		return nil, fmt.Errorf("device %s epoch %d seq %d: stored record: %v: %w", h.DeviceID, h.Epoch, seq, err, ledger.ErrCorrupt)
	}
	a, ok := rec.Activity()
	if !ok || rec.DeviceID != h.DeviceID || rec.Epoch != h.Epoch || rec.Seq != seq {
		return nil, fmt.Errorf("device %s epoch %d seq %d: stored record is not that activity record: %w", h.DeviceID, h.Epoch, seq, ledger.ErrCorrupt)
	}
	return a, nil
}

// DeviceReport is what GET /v1/devices/{id} shows of a device.
type DeviceReport struct {
	DeviceID     string        `json:"device_id"`
	PublicKey    string        `json:"public_key"`
	FirstSeen    int64         `json:"first_seen"`
	Attributed   bool          `json:"attributed"`
	MakerID      string        `json:"maker_id,omitempty"`
	Model        string        `json:"model,omitempty"`
	SerialTag    string        `json:"serial_tag,omitempty"`
	CertIssuedAt int64         `json:"cert_issued_at,omitempty"`
	CertEpoch    uint32        `json:"cert_epoch,omitempty"`
	Forked       bool          `json:"forked"`
	ForkEvidence uint32        `json:"fork_evidence"`
	Epochs       []EpochReport `json:"epochs"`
	Months       []MonthReport `json:"months"`
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
		r = &DeviceReport{DeviceID: d.ID.String(), PublicKey: d.PublicKey.String(), FirstSeen: d.FirstSeen,
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
			}
			r.Epochs = append(r.Epochs, e)
			return nil
		})
		if err != nil {
			return err
		}
		reported, active := map[proof.Date]bool{}, map[proof.Date]bool{}
		err = acceptedDays(tx, id, proof.NewDate(1970, 1, 1), proof.NewDate(9999, 12, 31), func(a *proof.ActivityDay) {
			reported[a.Date] = true
			if c.elig.Active(a) {
				active[a.Date] = true
			}
		})
		if err != nil {
			return err
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
