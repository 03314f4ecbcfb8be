package claim

import (
	"encoding/csv"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// rowsHeader is the header of the claim's CSV form.
var rowsHeader = []string{"maker_id", "eligible_devices", "amount_cny", "paid", "held", "refused", "late", "unregistered", "status", "closed_at"}

// WriteCSV writes one line per row, after the header
// maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at
// (closed_at empty while the month is provisional).
func (c *Claim) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(rowsHeader)
	closed := ""
	if c.ClosedAt != 0 {
		closed = strconv.FormatInt(c.ClosedAt, 10)
	}
	for _, r := range c.Rows {
		cw.Write([]string{r.MakerID, strconv.Itoa(r.EligibleDevices), strconv.Itoa(r.AmountCNY), strconv.Itoa(r.Paid), strconv.Itoa(r.Held),
			strconv.Itoa(r.Refused), strconv.Itoa(r.Late), strconv.Itoa(r.Unregistered), c.Status, closed})
	}
	cw.Flush()
	return cw.Error()
}

// WriteDevicesCSV writes one line per device outcome, after the header
// month,device_id,maker_id,serial_tag,active_days,outcome,reasons,signals,decision,decided_by,decided_at
// (reasons and signals joined with "|").
func (c *Claim) WriteDevicesCSV(w io.Writer, devices []Device) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"month", "device_id", "maker_id", "serial_tag", "active_days", "outcome", "reasons", "signals", "decision", "decided_by", "decided_at"})
	for _, d := range devices {
		sig := map[string]bool{}
		for _, f := range d.Findings {
			sig[string(f.Signal)] = true
		}
		rec := []string{c.Month, d.DeviceID, d.MakerID, d.SerialTag, strconv.Itoa(d.ActiveDays), string(d.Outcome),
			strings.Join(d.Reasons, "|"), strings.Join(slices.Sorted(maps.Keys(sig)), "|"), "", "", ""}
		if d.Decision != nil {
			rec[8], rec[9], rec[10] = d.Decision.Decision, d.Decision.By, strconv.FormatInt(d.Decision.At, 10)
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// Select returns the devices whose outcome is out ("" for every device).
func (c *Claim) Select(out Outcome) []Device {
	if out == "" {
		return c.Devices
	}
	var sel []Device
	for _, d := range c.Devices {
		if d.Outcome == out {
			sel = append(sel, d)
		}
	}
	return sel
}
