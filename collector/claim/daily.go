package claim

import (
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// DailyActive counts, for each date of month m (index 0 is the 1st), the device keys
// of keep whose accepted records of that date include a day that active says is
// active, by the label keep maps them to. A device with several epochs counts once a
// date.
func DailyActive(tx ledger.Tx, m Month, active func(*proof.ActivityDay) bool, keep map[proof.DeviceID]string) (map[string][]int, error) {
	n := m.Last().Day()
	out := map[string][]int{}
	for _, label := range keep {
		if out[label] == nil {
			out[label] = make([]int, n)
		}
	}
	var cur proof.DeviceID
	var dates uint32 // bit i: the device was active on date i+1
	flush := func() {
		if label, ok := keep[cur]; ok {
			for i := range n {
				if dates&(1<<i) != 0 {
					out[label][i]++
				}
			}
		}
		dates = 0
	}
	started := false
	err := tx.MonthDays(m.Key(), func(id proof.DeviceID, _ uint32, days []ledger.Day) error {
		if started && id != cur {
			flush()
		}
		cur, started = id, true
		for i := range days {
			if a := &days[i].Activity; MonthOf(a.Date) == m && active(a) {
				dates |= 1 << (a.Date.Day() - 1)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if started {
		flush()
	}
	return out, nil
}
