package collector

import (
	"fmt"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// TestRejectedRecords: the refused records the ledger keeps count in the month of
// their date (a genesis by its minted_at), for the maker that certified the device;
// accepted records, unattributed devices and other makers' do not.
func TestRejectedRecords(t *testing.T) {
	ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
		konka, tcl := newMaker(t, "konka"), newMaker(t, "tcl")
		now := at(2026, time.November, 5, 12) // September closed on October 11; October is open
		c := newCollector(t, open(), &fixedClock{now}, registry(konka, tcl))
		issued := at(2026, time.September, 1, 0)
		mk := func(m maker, label string) *device {
			return newDevice(t, label, func(k proof.Signer) *proof.Certificate { return m.certify(t, k, label, issued) })
		}
		// implausible mints an activity record of date minted two days after now.
		implausible := func(d *device, date proof.Date) []byte {
			return d.sign(&proof.Record{DeviceID: d.id(), Epoch: d.epoch, Seq: d.seq + 1, PrevHash: d.prev,
				MintedAt: now.Add(48 * time.Hour).Unix(), UptimeMS: d.seq * 1000,
				Body: &proof.ActivityDay{Date: date, UTCOffsetMinutes: cst, InteractiveSeconds: 600, Unlocks: 3, ScreenOns: 4, ActiveHours: proof.AllHours}})
		}
		a := mk(konka, "a")
		checkVerdicts(t, ingest(t, c, a.genesis(), a.active(oct(1)), a.active(oct(2)), implausible(a, oct(5)), a.active(oct(6)),
			a.active(proof.NewDate(2026, time.November, 20))),
			"accepted", "accepted", "accepted", "rejected implausible_mint", "accepted", "rejected future_date")
		// A clone of a's key: its genesis (minted in September) and its October day are
		// fork evidence.
		clone := mk(konka, "a")
		clone.flags = proof.FlagClockUnconfirmed
		checkVerdicts(t, ingest(t, c, clone.genesis(), clone.active(oct(1))), "rejected chain_fork", "rejected chain_fork")
		b := mk(konka, "b")
		checkVerdicts(t, ingest(t, c, b.genesis(), b.active(proof.NewDate(2025, time.September, 1)),
			b.active(proof.NewDate(2026, time.September, 15)), b.active(oct(2))),
			"accepted", "rejected stale", "rejected late", "accepted")
		tc := mk(tcl, "t")
		checkVerdicts(t, ingest(t, c, tc.genesis(), tc.active(oct(3)), implausible(tc, oct(7))), "accepted", "accepted", "rejected implausible_mint")
		free := newDevice(t, "free", nil)
		checkVerdicts(t, ingest(t, c, free.genesis(), implausible(free, oct(4))), "accepted", "rejected implausible_mint")

		for _, tc := range []struct {
			maker string
			month Month
			want  string
		}{
			{"konka", Month{Year: 2026, Month: time.October}, "map[chain_fork:1 implausible_mint:1]"},
			{"konka", Month{Year: 2026, Month: time.November}, "map[future_date:1]"},
			{"konka", Month{Year: 2026, Month: time.September}, "map[chain_fork:1 late:1]"},
			{"konka", Month{Year: 2025, Month: time.September}, "map[stale:1]"},
			{"konka", Month{Year: 2026, Month: time.August}, "map[]"},
			{"tcl", Month{Year: 2026, Month: time.October}, "map[implausible_mint:1]"},
			{"zte", Month{Year: 2026, Month: time.October}, "map[]"},
		} {
			got, err := c.RejectedRecords(tc.month, tc.maker)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("%s in %s: %v, want %s", tc.maker, tc.month, got, tc.want)
			}
		}
	})
}
