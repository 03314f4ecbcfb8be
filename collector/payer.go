package collector

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
)

// Sentinel errors of the payer's operations.
var (
	// ErrMonthClosed means a decision was asked for a month that has closed.
	ErrMonthClosed = errors.New("month closed")
	// ErrNotHeld means a decision was asked for a device the month does not hold.
	ErrNotHeld = errors.New("device not held")
	// ErrDecisionIncomplete means a decision lacked who decides or why.
	ErrDecisionIncomplete = errors.New("who decides (by) and why are both required")
)

// SalesZone returns the UTC offset, in minutes, of the reporting zone that an RFC 3339
// sold_at is converted in.
func (c *Collector) SalesZone() int { return c.schedule.OffsetMinutes }

// ImportResult says what an import of the sales registry did.
type ImportResult struct {
	Added     int `json:"added"`
	Unchanged int `json:"unchanged"`
}

// ImportSales adds the rows of one import file (sales.Parse) to the sales registry in
// one transaction: all or nothing. A row already registered with the same fields is
// unchanged (an import can be repeated); a row whose serial tag is registered with
// other fields, or whose maker is not registered, refuses the whole import with a
// *sales.RowError naming its line. A registration is never changed or removed.
func (c *Collector) ImportSales(file string, rows []sales.Row) (ImportResult, error) {
	var res ImportResult
	now := c.now().Unix()
	err := c.ledger.Update(func(tx ledger.Tx) error {
		res = ImportResult{}
		var add []*ledger.Sale
		for _, r := range rows {
			if _, ok := c.makers[r.MakerID]; !ok {
				return &sales.RowError{File: file, Line: r.Line, Field: "maker_id", Value: r.MakerID, Problem: "not a registered maker"}
			}
			old, err := tx.Sale(r.SerialTag)
			if err != nil {
				return err
			}
			if old == nil {
				add = append(add, &ledger.Sale{SerialTag: r.SerialTag, MakerID: r.MakerID, SoldAt: r.SoldAt, Channel: r.Channel, RegisteredAt: now})
				continue
			}
			if old.MakerID != r.MakerID || old.SoldAt != r.SoldAt || old.Channel != r.Channel {
				return &sales.RowError{File: file, Line: r.Line, Field: "serial_tag", Value: fmt.Sprintf("%x", r.SerialTag[:]),
					Problem: fmt.Sprintf("already registered as sold by %s on %s through %s: a registration is never changed", old.MakerID, old.SoldAt, old.Channel)}
			}
			res.Unchanged++
		}
		for _, s := range add {
			if err := tx.PutSale(s); err != nil {
				return err
			}
		}
		res.Added = len(add)
		return nil
	})
	c.generation.Add(1)
	if err != nil {
		return ImportResult{}, fmt.Errorf("collector: sales import %s: %w", file, err)
	}
	return res, nil
}

// Decide stores the payer's decision on a device held in month m: release pays it
// despite its signals, deny refuses it. by and why are required. Decisions are
// refused once the month has closed (ErrMonthClosed), and for a device the month does
// not hold or did not hold before an earlier decision (ErrNotHeld).
func (c *Collector) Decide(m Month, id proof.DeviceID, release bool, by, why string) (*claim.Decision, error) {
	fail := func(err error) (*claim.Decision, error) {
		return nil, fmt.Errorf("collector: decision on device %s in %s: %w", id, m, err)
	}
	by, why = strings.TrimSpace(by), strings.TrimSpace(why)
	if by == "" || why == "" {
		return fail(ErrDecisionIncomplete)
	}
	now := c.now()
	if c.schedule.Closed(m, now) {
		return fail(fmt.Errorf("%w at %s: held devices are reviewed before the month closes", ErrMonthClosed, c.schedule.ClosesAt(m).UTC().Format("2006-01-02T15:04:05Z")))
	}
	cl, err := c.provisional(m, now)
	if err != nil {
		return fail(err)
	}
	d := cl.Find(id)
	if d == nil || len(d.Findings) == 0 || !(d.Outcome == claim.Held || d.Decision != nil) {
		state := "it has no accepted day in the month"
		if d != nil {
			state = "it is " + string(d.Outcome) + " without being held"
		}
		return fail(fmt.Errorf("%w: %s", ErrNotHeld, state))
	}
	ld := &ledger.Decision{Month: m.Key(), DeviceID: id, Release: release, At: now.Unix(), By: by, Why: why}
	err = c.ledger.Update(func(tx ledger.Tx) error { return tx.AddDecision(ld) })
	c.generation.Add(1)
	if err != nil {
		return fail(err)
	}
	out := &claim.Decision{Decision: "deny", At: ld.At, By: by, Why: why}
	if release {
		out.Decision = "release"
	}
	return out, nil
}

// Decisions returns every decision taken on month m, in device_id then time order:
// the audit trail of the held devices.
func (c *Collector) Decisions(m Month) ([]ledger.Decision, error) {
	var out []ledger.Decision
	err := c.ledger.View(func(tx ledger.Tx) error {
		return tx.Decisions(m.Key(), func(d *ledger.Decision) error {
			out = append(out, *d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("collector: decisions of %s: %w", m, err)
	}
	return out, nil
}

// CloseDue closes the months whose moment has passed by now and that are not stored
// yet, up to three months back: `serve` calls it every minute, so
// that a month is stored when it closes even if nobody asks for its claim.
func (c *Collector) CloseDue() error {
	now := c.now()
	today := proof.DateOf(now, c.schedule.OffsetMinutes)
	for back := 3; back >= 1; back-- {
		t := time.Date(today.Year(), today.Month()-time.Month(back), 1, 0, 0, 0, 0, time.UTC)
		m := Month{Year: t.Year(), Month: t.Month()}
		if c.schedule.Closed(m, now) {
			if _, err := c.Claims(m); err != nil {
				return err
			}
		}
	}
	return nil
}
