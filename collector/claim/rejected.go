package claim

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// reasonForkEvidence names a record kept as fork evidence in RejectedRecords: the
// reason it was rejected with.
const reasonForkEvidence = ReasonChainFork

// RejectedRecords counts the records of maker's device keys that the collector refused
// at ingest and that belong to month m, by reason (docs/console.md, "Rejected
// records"), from what the ledger keeps of them:
//
//   - the linked records whose stored verdict is not accepted (future_date, stale,
//     implausible_mint, late, and bad_cert or unknown_maker of another epoch's
//     genesis), by their verdict's name: an activity record when its own date is in
//     m, a genesis (which has no date) when its minted_at is in m in the zone of UTC
//     offset zone minutes;
//   - the contradicting records kept as a device's fork evidence, as chain_fork, by
//     the same dates, at most ledger.MaxForkEvidence a device.
//
// The maker's device keys are those whose credited certificate names it. The cost is
// one pass over the devices and a read of each of the maker's chains' records of the
// month (dates increase along a chain: found by binary search).
func RejectedRecords(tx ledger.Tx, m Month, maker string, zone int) (map[string]int, error) {
	out := map[string]int{}
	var mu sync.Mutex
	var ids []proof.DeviceID
	forked := map[proof.DeviceID]bool{}
	err := tx.DeviceBatches(runtime.GOMAXPROCS(0), func(_ int, devs []ledger.Device) error {
		for i := range devs {
			cert, err := devs[i].SharedCertificate()
			if err != nil {
				return err
			}
			if cert == nil || cert.MakerID != maker {
				continue
			}
			mu.Lock()
			ids = append(ids, devs[i].ID)
			if devs[i].Forked() {
				forked[devs[i].ID] = true
			}
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := rejectedCounter{tx: tx, m: m, zone: zone, out: out}
	for _, id := range ids {
		if err := r.device(id, forked[id]); err != nil {
			return nil, fmt.Errorf("device %s: %w", id, err)
		}
	}
	return out, nil
}

// rejectedCounter counts the rejected records of month m of devices, into out.
type rejectedCounter struct {
	tx   ledger.Tx
	m    Month
	zone int // the reporting zone's UTC offset in minutes
	out  map[string]int
}

// errMonthDone stops a scan of a chain past the month.
var errMonthDone = errors.New("past the month")

// inMonth reports whether a decoded record belongs to the month: an activity record by
// its date, a genesis by its minted_at in the reporting zone; and the activity date
// (0 for a genesis).
func (r *rejectedCounter) inMonth(raw []byte) (bool, proof.Date, error) {
	rec, err := proof.Decode(raw)
	if err != nil {
		return false, 0, fmt.Errorf("stored record: %v: %w", err, ledger.ErrCorrupt)
	}
	if a, ok := rec.Activity(); ok {
		return MonthOf(a.Date) == r.m, a.Date, nil
	}
	return MonthOf(proof.DateOf(time.Unix(rec.MintedAt, 0), r.zone)) == r.m, 0, nil
}

func (r *rejectedCounter) device(id proof.DeviceID, forked bool) error {
	var heads []ledger.Head
	if err := r.tx.Heads(id, func(h *ledger.Head) error { heads = append(heads, *h); return nil }); err != nil {
		return err
	}
	for i := range heads {
		if err := r.epoch(&heads[i]); err != nil {
			return err
		}
	}
	if !forked {
		return nil
	}
	return r.tx.ForkEvidence(id, func(raw []byte) error {
		in, _, err := r.inMonth(raw)
		if in {
			r.out[reasonForkEvidence]++
		}
		return err
	})
}

// epoch counts the rejected records of the month of one chain.
func (r *rejectedCounter) epoch(h *ledger.Head) error {
	if h.Genesis != ledger.VerdictAccepted {
		g, err := r.tx.Record(h.DeviceID, h.Epoch, 1)
		if err != nil || g == nil {
			return errors.Join(err, fmt.Errorf("epoch %d: no genesis: %w", h.Epoch, ledger.ErrCorrupt))
		}
		in, _, err := r.inMonth(g.Bytes)
		if err != nil {
			return err
		}
		if in {
			r.out[g.Verdict.String()]++
		}
	}
	if h.Seq < 2 || h.LastDate < r.m.First() {
		return nil
	}
	// The first activity record dated in the month or after: dates increase with seq.
	var failed error
	dateAt := func(seq uint64) proof.Date {
		rec, err := r.tx.Record(h.DeviceID, h.Epoch, seq)
		if err == nil && rec == nil {
			err = fmt.Errorf("epoch %d: no record at seq %d below the head: %w", h.Epoch, seq, ledger.ErrCorrupt)
		}
		var date proof.Date
		if err == nil {
			_, date, err = r.inMonth(rec.Bytes)
		}
		if err != nil && failed == nil {
			failed = err
		}
		return date
	}
	lo, hi := uint64(2), h.Seq+1 // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		if dateAt(mid) >= r.m.First() {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if failed != nil {
		return failed
	}
	err := r.tx.Records(h.DeviceID, h.Epoch, lo, math.MaxUint64, func(_ uint64, rec *ledger.Record) error {
		in, date, err := r.inMonth(rec.Bytes)
		switch {
		case err != nil:
			return err
		case date > r.m.Last():
			return errMonthDone
		case in && rec.Verdict != ledger.VerdictAccepted:
			r.out[rec.Verdict.String()]++
		}
		return nil
	})
	if errors.Is(err, errMonthDone) {
		return nil
	}
	return err
}
