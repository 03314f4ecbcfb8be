package collector

import (
	"fmt"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// MinActiveDays is eligibility.min_active_days.
func (c *Collector) MinActiveDays() int { return c.elig.MinActiveDays }

// DailyActive counts, for each date of month m, the device keys of keep with an active
// day, by the label keep maps them to (claim.DailyActive).
func (c *Collector) DailyActive(m Month, keep map[proof.DeviceID]string) (out map[string][]int, err error) {
	err = c.ledger.View(func(tx ledger.Tx) error { out, err = claim.DailyActive(tx, m, c.elig.Active, keep); return err })
	if err != nil {
		return nil, fmt.Errorf("collector: active devices a day in %s: %w", m, err)
	}
	return out, nil
}

// RejectedRecords counts the records of maker's device keys that the collector refused
// at ingest and that belong to month m, by reason (claim.RejectedRecords; docs/console.md,
// "Rejected records"). Records refused without anything of them kept (bad_format,
// bad_signature, unknown_device; retry answers) are not counted, nor those of keys
// credited to no maker.
func (c *Collector) RejectedRecords(m Month, maker string) (map[Reason]int, error) {
	out := map[Reason]int{}
	err := c.ledger.View(func(tx ledger.Tx) error {
		counts, err := claim.RejectedRecords(tx, m, maker, c.schedule.OffsetMinutes)
		for reason, n := range counts {
			out[Reason(reason)] = n
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("collector: rejected records of %s in %s: %w", maker, m, err)
	}
	return out, nil
}
