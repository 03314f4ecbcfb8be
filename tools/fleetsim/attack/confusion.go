package attack

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/proof"
)

// ConfusionRow is what a month's claim made of the devices of one true kind (what the
// simulation knows each device to be).
type ConfusionRow struct {
	Kind     string
	Devices  int
	Outcomes map[claim.Outcome]int
	// NotListed counts the devices without an accepted day in the month, which the
	// claim does not list: every record refused, or none sent.
	NotListed int
	Late      int            // records the devices sent after the month closed (refused late)
	Reasons   map[string]int // "OUTCOME REASON" -> devices (held devices count each signal)
	// Attestation counts the devices by the claim's attestation verdict ("attested",
	// "not_attested", "refused: REASON", "revoked: WHY"), where it gives one.
	Attestation map[string]int
}

func newRow(kind string) *ConfusionRow {
	return &ConfusionRow{Kind: kind, Outcomes: map[claim.Outcome]int{}, Reasons: map[string]int{}, Attestation: map[string]int{}}
}

// Paid is the number of the kind's devices paid.
func (r *ConfusionRow) Paid() int { return r.Outcomes[claim.Paid] }

// member is one simulated device as the confusion table sorts it.
type member struct {
	kind string
	id   proof.DeviceID
	late int
}

// confusion sorts the claim's device outcomes (the payer's GET /v1/claims/devices) by
// true kind, in the order of kinds.
func confusion(kinds []string, members []member, devs []claim.Device) []*ConfusionRow {
	byID := make(map[string]*claim.Device, len(devs))
	for i := range devs {
		byID[devs[i].DeviceID] = &devs[i]
	}
	rows := map[string]*ConfusionRow{}
	var out []*ConfusionRow
	for _, k := range kinds {
		rows[k] = newRow(k)
		out = append(out, rows[k])
	}
	for _, m := range members {
		r := rows[m.kind]
		if r == nil {
			r = newRow(m.kind)
			rows[m.kind] = r
			out = append(out, r)
		}
		r.Devices++
		r.Late += m.late
		d := byID[m.id.String()]
		if d == nil {
			r.NotListed++
			continue
		}
		r.Outcomes[d.Outcome]++
		for _, why := range d.Reasons {
			r.Reasons[string(d.Outcome)+" "+why]++
		}
		if d.Attestation != "" {
			r.Attestation[d.Attestation]++
		}
	}
	return out
}

// confusionOutcomes are the table's columns, in the order the claim decides them.
var confusionOutcomes = []claim.Outcome{claim.Paid, claim.Held, claim.Refused, claim.Unregistered, claim.Ineligible}

func colWidth(o claim.Outcome) int { return max(len(o), 5) }

// PrintConfusion writes the confusion table: a row per true kind, a column per
// outcome, the devices the claim does not list, the late records; then each kind's
// reasons, and its attestation verdicts where the claim gives any.
func PrintConfusion(w io.Writer, rows []*ConfusionRow) {
	kw := 18
	for _, r := range rows {
		kw = max(kw, len(r.Kind))
	}
	fmt.Fprintf(w, "  %-*s %7s", kw, "true kind", "devices")
	for _, o := range confusionOutcomes {
		fmt.Fprintf(w, " %*s", colWidth(o), o)
	}
	fmt.Fprintf(w, " %10s %12s\n", "not listed", "late records")
	var total ConfusionRow
	total.Outcomes = map[claim.Outcome]int{}
	for _, r := range rows {
		if r.Devices == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-*s %7d", kw, r.Kind, r.Devices)
		for _, o := range confusionOutcomes {
			fmt.Fprintf(w, " %*d", colWidth(o), r.Outcomes[o])
			total.Outcomes[o] += r.Outcomes[o]
		}
		fmt.Fprintf(w, " %10d %12d\n", r.NotListed, r.Late)
		total.Devices += r.Devices
		total.NotListed += r.NotListed
		total.Late += r.Late
	}
	fmt.Fprintf(w, "  %-*s %7d", kw, "total", total.Devices)
	for _, o := range confusionOutcomes {
		fmt.Fprintf(w, " %*d", colWidth(o), total.Outcomes[o])
	}
	fmt.Fprintf(w, " %10d %12d\n", total.NotListed, total.Late)
	fmt.Fprintln(w, "  reasons (devices; a held device counts once per signal):")
	printCounts(w, kw, rows, func(r *ConfusionRow) map[string]int { return r.Reasons })
	if slices.ContainsFunc(rows, func(r *ConfusionRow) bool { return len(r.Attestation) > 0 }) {
		fmt.Fprintln(w, "  attestation (devices by the claim's verdict on their key):")
		printCounts(w, kw, rows, func(r *ConfusionRow) map[string]int { return r.Attestation })
	}
}

// printCounts writes a line of "KEY N, …" per row that has counts.
func printCounts(w io.Writer, kw int, rows []*ConfusionRow, counts func(*ConfusionRow) map[string]int) {
	for _, r := range rows {
		c := counts(r)
		if len(c) == 0 {
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(c)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
		}
		fmt.Fprintf(w, "    %-*s %s\n", kw, r.Kind, strings.Join(parts, ", "))
	}
}
