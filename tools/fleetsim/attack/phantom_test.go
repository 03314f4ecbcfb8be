package attack

import (
	"context"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/tools/fleetsim"
)

// TestPhantom runs the phantom scenario with a small fleet on a 28-day February and
// across a new year (December's last midnight falls in January): no phantom is paid,
// the made-up serial tags are unregistered (or ineligible with too few days), the
// stolen ones refused, and the honest fleet is paid exactly as expected.
func TestPhantom(t *testing.T) {
	for _, month := range []collector.Month{{Year: 2027, Month: time.February}, {Year: 2026, Month: time.December}} {
		t.Run(month.String(), func(t *testing.T) {
			srv := startServer(t, fleetsim.NewClock(month.First().Start(480)), "konka", "tcl", "phantomco")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var out strings.Builder
			res, err := RunPhantom(ctx, PhantomConfig{Month: month, Seed: 3, Phantoms: 150, Honest: 90, Server: srv, Out: &out, Logf: t.Logf})
			t.Logf("\n%s", out.String())
			if err != nil {
				t.Fatal(err)
			}
			if res.Stolen != 15 || res.Fabricated != 135 {
				t.Fatalf("%d stolen, %d fabricated", res.Stolen, res.Fabricated)
			}
			fab, stolen, honest := res.Row(PhantomFabricated), res.Row(PhantomStolen), res.Row(PhantomHonest)
			if fab.Paid() != 0 || stolen.Paid() != 0 {
				t.Errorf("phantoms paid: %d fabricated, %d stolen", fab.Paid(), stolen.Paid())
			}
			if fab.Outcomes[claim.Unregistered] != res.ActiveEnough[PhantomFabricated] || fab.Outcomes[claim.Unregistered] == 0 ||
				fab.Outcomes[claim.Unregistered]+fab.Outcomes[claim.Ineligible]+fab.NotListed != fab.Devices {
				t.Errorf("fabricated: %v, %d not listed; %d with enough active days", fab.Outcomes, fab.NotListed, res.ActiveEnough[PhantomFabricated])
			}
			if stolen.Outcomes[claim.Refused]+stolen.NotListed != stolen.Devices || stolen.Reasons["refused "+claim.ReasonOtherMakers] != stolen.Outcomes[claim.Refused] {
				t.Errorf("stolen: %v, %v", stolen.Outcomes, stolen.Reasons)
			}
			eligible := 0
			for _, n := range res.Expected {
				eligible += n
			}
			if honest.Paid() != eligible || honest.Outcomes[claim.Held] != 0 || honest.Outcomes[claim.Refused] != 0 || honest.Outcomes[claim.Unregistered] != 0 {
				t.Errorf("honest: %v, %d eligible", honest.Outcomes, eligible)
			}
			for _, row := range res.Claims.Rows {
				if row.MakerID == "phantomco" && (row.Paid != 0 || row.AmountCNY != 0 || row.Unregistered != res.ActiveEnough[PhantomFabricated]) {
					t.Errorf("phantomco's row: %+v", row)
				}
			}
		})
	}
}
