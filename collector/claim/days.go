package claim

import (
	"fmt"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// AcceptedDays calls fn with every accepted activity record of the device dated
// first..last, epoch by epoch in seq order. Dates increase with seq along every stored
// chain, so each epoch's range is found by binary search and only it is decoded.
func AcceptedDays(tx ledger.Tx, id proof.DeviceID, first, last proof.Date, fn func(*proof.Record, *proof.ActivityDay)) error {
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
			rec, a, err := storedActivity(h, seq, r)
			if err != nil {
				return err
			}
			fn(rec, a)
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
		_, a, err := storedActivity(h, mid, r)
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

func storedActivity(h *ledger.Head, seq uint64, r *ledger.Record) (*proof.Record, *proof.ActivityDay, error) {
	rec, err := proof.Decode(r.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("device %s epoch %d seq %d: stored record: %v: %w", h.DeviceID, h.Epoch, seq, err, ledger.ErrCorrupt)
	}
	a, ok := rec.Activity()
	if !ok || rec.DeviceID != h.DeviceID || rec.Epoch != h.Epoch || rec.Seq != seq {
		return nil, nil, fmt.Errorf("device %s epoch %d seq %d: stored record is not that activity record: %w", h.DeviceID, h.Epoch, seq, ledger.ErrCorrupt)
	}
	return rec, a, nil
}
