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
