package collector

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// days returns the dates of October 2026 from first to last.
func octDays(first, last int) []proof.Date {
	var out []proof.Date
	for d := first; d <= last; d++ {
		out = append(out, oct(d))
	}
	return out
}

// fleetDevice is one scripted handset of the fleet.
type fleetDevice struct {
	label string
	dev   *device
	// batches of records, ingested in order; each entry's verdicts are checked
	// against want when want is set.
	batches [][][]byte
	want    [][]string
}

// TestFleetClaims scripts 40 devices of two registered makers (and one unknown) over
// October 2026 and compares the claims with a table computed by hand below.
func TestFleetClaims(t *testing.T) {
	ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
		konka, tcl, ghost := newMaker(t, "konka"), newMaker(t, "tcl"), newMaker(t, "ghost")
		clock := &fixedClock{at(2026, time.November, 5, 12)}
		c := newCollector(t, open(), clock, registry(konka, tcl))
		aug, sep := at(2026, time.August, 1, 0), at(2026, time.September, 1, 0)

		var fleet []*fleetDevice
		// add scripts a device with a certificate by m (nil: none) for serial, and
		// uploads its genesis and one record per date, a week per batch.
		add := func(label string, m *maker, serialLabel string, issued time.Time, dates []proof.Date, secs uint32, unlocks uint16) *fleetDevice {
			var cert func(proof.Signer) *proof.Certificate
			if m != nil {
				cert = func(k proof.Signer) *proof.Certificate { return m.certify(t, k, serialLabel, issued) }
			}
			f := &fleetDevice{label: label, dev: newDevice(t, "fleet "+label, cert)}
			recs := [][]byte{f.dev.genesis()}
			for _, d := range dates {
				recs = append(recs, f.dev.day(d, secs, unlocks))
			}
			for i := 0; i < len(recs); i += 8 {
				f.batches = append(f.batches, recs[i:min(i+8, len(recs))])
			}
			fleet = append(fleet, f)
			return f
		}
		std := func(label string, m *maker, dates []proof.Date) *fleetDevice {
			return add(label, m, label, aug, dates, 600, 2)
		}

		// konka
		for i := 1; i <= 5; i++ {
			std(fmt.Sprintf("K%02d", i), &konka, octDays(1, 31)) // 31 active days: paid
		}
		for i := 6; i <= 10; i++ {
			std(fmt.Sprintf("K%02d", i), &konka, octDays(1, 15)) // 15: paid
		}
		std("K11", &konka, octDays(5, 14)) // exactly 10: paid
		std("K12", &konka, octDays(22, 31))
		std("K13", &konka, octDays(1, 9)) // 9: not paid
		std("K14", &konka, octDays(10, 18))
		std("K15", &konka, octDays(23, 31))
		{
			// K16: 12 dates, two below 120 s; 120 s and 1 unlock exactly counts: 10 active, paid.
			f := &fleetDevice{label: "K16", dev: newDevice(t, "fleet K16", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "K16", aug) })}
			recs := [][]byte{f.dev.genesis()}
			for i, d := range octDays(1, 12) {
				switch i {
				case 3, 7:
					recs = append(recs, f.dev.day(d, 119, 5))
				case 4:
					recs = append(recs, f.dev.day(d, 120, 1))
				default:
					recs = append(recs, f.dev.day(d, 3000, 2))
				}
			}
			f.batches = [][][]byte{recs}
			fleet = append(fleet, f)
		}
		{
			// K17: 12 dates, three below threshold (no unlock, 119 s, 50 s): 9 active.
			f := &fleetDevice{label: "K17", dev: newDevice(t, "fleet K17", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "K17", aug) })}
			recs := [][]byte{f.dev.genesis()}
			for i, d := range octDays(1, 12) {
				switch i {
				case 0:
					recs = append(recs, f.dev.day(d, 3000, 0))
				case 5:
					recs = append(recs, f.dev.day(d, 119, 3))
				case 11:
					recs = append(recs, f.dev.day(d, 50, 1))
				default:
					recs = append(recs, f.dev.day(d, 600, 1))
				}
			}
			f.batches = [][][]byte{recs}
			fleet = append(fleet, f)
		}
		{
			// K18: 20 active days, then a clone of its key shows up: forked, not paid.
			f := std("K18", &konka, octDays(1, 20))
			clone := newDevice(t, "fleet K18", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "K18", aug) })
			clone.flags = proof.FlagTallyLost
			f.batches = append(f.batches, [][]byte{clone.genesis()})
			f.want = make([][]string, len(f.batches))
			f.want[len(f.batches)-1] = []string{"rejected chain_fork"}
		}
		// K19 and K20: one handset re-enrolled with a new key and the same serial_tag,
		// both keys eligible: paid once, for the earlier certificate (K19).
		add("K19", &konka, "k-reenrol", aug, octDays(1, 12), 900, 4)
		add("K20", &konka, "k-reenrol", at(2026, time.October, 13, 0), octDays(14, 31), 900, 4)
		{
			// K21: epoch 1 reports Oct 1..5, the store is recreated, epoch 2 reports
			// Oct 5..9: 10 records but 9 distinct dates, not paid.
			f := std("K21", &konka, octDays(1, 5))
			recs := [][]byte{f.dev.genesis()}
			for _, d := range octDays(5, 9) {
				recs = append(recs, f.dev.active(d))
			}
			f.batches = append(f.batches, recs)
			// K22: epoch 1 Oct 1..6, epoch 2 Oct 7..10: 10 distinct dates, paid.
			g := std("K22", &konka, octDays(1, 6))
			recs = [][]byte{g.dev.genesis()}
			for _, d := range octDays(7, 10) {
				recs = append(recs, g.dev.active(d))
			}
			g.batches = append(g.batches, recs)
		}
		{
			// K23: 25 days of September, 9 of October, 4 of November, uploaded on
			// November 5: September closed on October 11, its days are late, never
			// paid; 9 days of October: not paid either.
			var dates []proof.Date
			for d := 1; d <= 25; d++ {
				dates = append(dates, proof.NewDate(2026, time.September, d))
			}
			dates = append(dates, octDays(1, 9)...)
			for d := 1; d <= 4; d++ {
				dates = append(dates, proof.NewDate(2026, time.November, d))
			}
			f := std("K23", &konka, dates)
			late := func(n int) []string { return repeat("rejected late", n) }
			f.want = [][]string{append([]string{"accepted"}, late(7)...), late(8), late(8),
				append(late(2), repeat("accepted", 6)...), repeat("accepted", 7)}
		}
		{
			// K24: 10 active days all minted before the clock was confirmed: flags do
			// not disqualify, paid.
			f := &fleetDevice{label: "K24", dev: newDevice(t, "fleet K24", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "K24", aug) })}
			f.dev.flags = proof.FlagClockUnconfirmed | proof.FlagClockJumped
			recs := [][]byte{f.dev.genesis()}
			for _, d := range octDays(11, 20) {
				recs = append(recs, f.dev.active(d))
			}
			f.batches = [][][]byte{recs}
			fleet = append(fleet, f)
		}
		// K25 (konka) and T08 (tcl) carry the same serial_tag, both eligible: paid
		// once, to konka, whose certificate was issued first.
		add("K25", &konka, "shared-xm", aug, octDays(1, 15), 600, 2)

		// tcl
		for i := 1; i <= 6; i++ {
			std(fmt.Sprintf("T%02d", i), &tcl, octDays(1, 20)) // paid
		}
		std("T07", &tcl, octDays(3, 11))                           // 9: not paid
		add("T08", &tcl, "shared-xm", sep, octDays(1, 20), 600, 2) // loses to K25
		std("T09", nil, octDays(1, 25))                            // unattributed: not paid
		{
			f := std("T10", &ghost, octDays(1, 25)) // unknown maker: not paid
			f.want = [][]string{append([]string{"rejected unknown_maker"}, repeat("accepted", 7)...)}
			g := &fleetDevice{label: "T11", dev: newDevice(t, "fleet T11", func(k proof.Signer) *proof.Certificate {
				c := tcl.certify(t, k, "T11", aug)
				c.Sign(konka.key) // tcl's name, konka's signature
				return c
			})}
			recs := [][]byte{g.dev.genesis()}
			for _, d := range octDays(1, 25) {
				recs = append(recs, g.dev.active(d))
			}
			g.batches = [][][]byte{recs}
			g.want = [][]string{append([]string{"rejected bad_cert"}, repeat("accepted", 25)...)}
			fleet = append(fleet, g)
		}
		// T12 and T13 share a serial_tag; only T13 is eligible: paid once.
		add("T12", &tcl, "t-reenrol", aug, octDays(1, 5), 600, 2)
		add("T13", &tcl, "t-reenrol", at(2026, time.October, 7, 0), octDays(8, 19), 600, 2)
		{
			// T14: 10 active days uploaded with a gap that a later batch fills: paid.
			f := &fleetDevice{label: "T14", dev: newDevice(t, "fleet T14", func(k proof.Signer) *proof.Certificate { return tcl.certify(t, k, "T14", aug) })}
			recs := [][]byte{f.dev.genesis()}
			for _, d := range octDays(1, 10) {
				recs = append(recs, f.dev.active(d))
			}
			f.batches = [][][]byte{recs[:4], recs[6:], recs[4:], recs}
			f.want = [][]string{repeat("accepted", 4), repeat("retry chain_gap", 5),
				repeat("accepted", 7), repeat("duplicate", 11)}
			fleet = append(fleet, f)
		}
		{
			// T15: 10 active days, then a record whose date goes backwards: refused,
			// the 10 days stand, paid.
			f := std("T15", &tcl, octDays(1, 10))
			f.batches = append(f.batches, [][]byte{f.dev.active(oct(5))})
			f.want = make([][]string, len(f.batches))
			f.want[len(f.batches)-1] = []string{"rejected bad_format"}
		}

		if len(fleet) != 40 {
			t.Fatalf("the fleet has %d devices, want 40", len(fleet))
		}
		// The payer's registry: every handset sold, by the maker that certified it;
		// "shared-xm" was sold by konka.
		for _, f := range fleet {
			switch {
			case f.label == "T08", f.label == "K20", f.label == "T12":
			case f.label[0] == 'K' || f.label == "T10":
				registerSales(t, c, "konka", f.label)
			default:
				registerSales(t, c, "tcl", f.label)
			}
		}
		registerSales(t, c, "konka", "shared-xm", "k-reenrol")
		registerSales(t, c, "tcl", "t-reenrol")
		// Upload round-robin: each device's batches in order, devices interleaved.
		for round := 0; ; round++ {
			more := false
			for _, f := range fleet {
				if round >= len(f.batches) {
					continue
				}
				more = true
				rs := ingest(t, c, f.batches[round]...)
				switch {
				case round < len(f.want) && f.want[round] != nil:
					checkVerdicts(t, rs, f.want[round]...)
				default:
					for _, r := range rs {
						if r.Status != StatusAccepted {
							t.Errorf("%s round %d: %s", f.label, round, r)
						}
					}
				}
			}
			if !more {
				break
			}
		}
		checkChains(t, c)

		// The table, by hand: see the comment on each device above.
		//   konka: K01-K10 (10), K11, K12, K16, K19 (for K19+K20), K22, K24, K25 = 17
		//   tcl:   T01-T06 (6), T13 (for T12+T13), T14, T15 = 9; T08 carries a serial
		//   tag the registry gives to konka: refused.
		oct26, _ := ParseMonth("2026-10")
		claims, err := c.Claims(oct26)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"konka 17/0/1/0/0", "tcl 9/0/1/0/0"}
		if got := rowFigures(claims); !slices.Equal(got, want) {
			t.Errorf("October claims %v, want %v", got, want)
		}
		label := map[string]string{}
		for _, f := range fleet {
			label[f.dev.id().String()] = f.label
		}
		var outcomes []string
		for _, d := range claims.Devices {
			s := d.MakerID + ":" + label[d.DeviceID] + " " + string(d.Outcome)
			if len(d.Reasons) > 0 {
				s += " " + strings.Join(d.Reasons, ",")
			}
			outcomes = append(outcomes, s)
		}
		slices.Sort(outcomes)
		wantOutcomes := []string{":T09 ineligible no_certificate", ":T10 ineligible no_certificate", ":T11 ineligible no_certificate",
			"konka:K01 paid", "konka:K02 paid", "konka:K03 paid", "konka:K04 paid", "konka:K05 paid", "konka:K06 paid",
			"konka:K07 paid", "konka:K08 paid", "konka:K09 paid", "konka:K10 paid", "konka:K11 paid", "konka:K12 paid",
			"konka:K13 ineligible too_few_active_days", "konka:K14 ineligible too_few_active_days", "konka:K15 ineligible too_few_active_days",
			"konka:K16 paid", "konka:K17 ineligible too_few_active_days", "konka:K18 refused chain_fork",
			"konka:K19 paid", "konka:K20 ineligible serial_tag_paid_once", "konka:K21 ineligible too_few_active_days",
			"konka:K22 paid", "konka:K23 ineligible too_few_active_days", "konka:K24 paid", "konka:K25 paid",
			"tcl:T01 paid", "tcl:T02 paid", "tcl:T03 paid", "tcl:T04 paid", "tcl:T05 paid", "tcl:T06 paid",
			"tcl:T07 ineligible too_few_active_days", "tcl:T08 refused serial_tag_of_another_maker",
			"tcl:T12 ineligible too_few_active_days", "tcl:T13 paid", "tcl:T14 paid", "tcl:T15 paid"}
		if !slices.Equal(outcomes, wantOutcomes) {
			t.Errorf("outcomes\n %v\nwant\n %v", outcomes, wantOutcomes)
		}

		sep26, _ := ParseMonth("2026-09")
		if claims, err := c.Claims(sep26); err != nil || claims.Status != "closed" || !slices.Equal(rowFigures(claims), []string{"konka 0/0/0/0/25", "tcl 0/0/0/0/0"}) {
			t.Errorf("September claims %+v, %v", claims, err)
		}

		// A maker sees its own row and its own devices only.
		if got := claims.ForMaker("tcl"); len(got.Rows) != 1 || rowFigures(got)[0] != want[1] || len(got.Devices) != 12 {
			t.Errorf("tcl's view %v, %d devices", rowFigures(got), len(got.Devices))
		}
		var csv bytes.Buffer
		if err := claims.WriteCSV(&csv); err != nil {
			t.Fatal(err)
		}
		if csv.String() != "maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at\nkonka,17,17,17,0,1,0,0,provisional,\ntcl,9,9,9,0,1,0,0,provisional,\n" {
			t.Errorf("CSV %q", csv.String())
		}

		// Deregistering a maker, or registering it with another key, stops its pay.
		c2 := newCollector(t, c.ledger, clock, Registry{"konka": konka.key.PublicKey(), "tcl": ghost.key.PublicKey()})
		claims2, err := c2.Claims(oct26)
		if err != nil {
			t.Fatal(err)
		}
		// Every tcl device is refused; konka's stay paid.
		if got := rowFigures(claims2); !slices.Equal(got, []string{"konka 17/0/1/0/0", "tcl 0/0/10/0/0"}) {
			t.Errorf("with tcl's key replaced: %v", got)
		}

		// Device reports of a few scripted devices.
		for _, f := range fleet {
			r, err := c.Device(f.dev.id())
			if err != nil {
				t.Fatal(err)
			}
			switch f.label {
			case "K18":
				if !r.Forked {
					t.Error("K18 is not flagged")
				}
			case "K21":
				if len(r.Epochs) != 2 || len(r.Months) != 1 || r.Months[0].ReportedDays != 9 {
					t.Errorf("K21 %+v", r)
				}
			case "K16":
				if r.Months[0].ActiveDays != 10 || r.Months[0].ReportedDays != 12 {
					t.Errorf("K16 %+v", r.Months)
				}
			case "K24":
				if r.Epochs[0].ClockUnconfirmed != 11 || r.Epochs[0].ClockJumped != 11 {
					t.Errorf("K24 %+v", r.Epochs)
				}
			case "T09", "T10", "T11":
				if r.Attributed {
					t.Errorf("%s is attributed", f.label)
				}
			}
		}
	})
}

func TestParseMonth(t *testing.T) {
	for _, s := range []string{"2026-10", "1970-01", "9999-12"} {
		m, err := ParseMonth(s)
		if err != nil || m.String() != s {
			t.Errorf("%s: %v %v", s, m, err)
		}
	}
	for _, s := range []string{"", "2026-1", "2026-13", "2026-00", "1969-12", "2026/10", "２０２６-10", "+026-10", "2026-10-01", " 2026-10"} {
		if _, err := ParseMonth(s); !errors.Is(err, ErrMonth) {
			t.Errorf("%q: %v, want ErrMonth", s, err)
		}
	}
	if m, _ := ParseMonth("2028-02"); m.Last() != proof.NewDate(2028, time.February, 29) || m.First() != proof.NewDate(2028, time.February, 1) {
		t.Errorf("February 2028: %s..%s", m.First(), m.Last())
	}
}

func TestDeviceNotFound(t *testing.T) {
	c := newCollector(t, ledger.NewMem(), &fixedClock{at(2026, time.November, 5, 12)}, nil)
	if _, err := c.Device(proof.DeviceID{1}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "0100") {
		t.Errorf("err %v", err)
	}
}
