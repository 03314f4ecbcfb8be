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

// TestFarm runs the farm scenario on each month length (monthsOfEveryLength): what the
// collector pays of a farm does not depend on how long the month is.
func TestFarm(t *testing.T) {
	for _, month := range monthsOfEveryLength {
		t.Run(month.String(), func(t *testing.T) { testFarm(t, month) })
	}
}

func testFarm(t *testing.T, month collector.Month) {
	srv := startServer(t, fleetsim.NewClock(month.First().Start(480)), "konka", "tcl", "farmco")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	res, err := RunFarm(ctx, FarmConfig{Month: month, Seed: 5, Server: srv, Out: &out, Logf: t.Logf})
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err) // Check: no farm device paid, the honest ones as expected
	}
	days := month.Last().Day()
	type want struct {
		n       int
		outcome claim.Outcome // "" : not listed
		reason  string        // a reason every device of the kind has
	}
	for k, w := range map[FarmKind]want{
		FarmClone:        {30, claim.Held, "clone"},
		FarmSaturated:    {5, claim.Held, "saturated"},
		FarmBackfill:     {5, claim.Held, "backfill"},
		FarmReplay:       {3, claim.Held, "replayed_epoch"},
		FarmSerial:       {10, claim.Held, "many_keys"},
		FarmFuture:       {2, claim.Held, "clone"},
		FarmStolen:       {5, claim.Refused, claim.ReasonOtherMakers},
		FarmUnregistered: {5, claim.Unregistered, claim.ReasonNotRegistered},
		FarmFutureCert:   {2, claim.Ineligible, claim.ReasonNoCertificate},
		FarmBadMint:      {2, "", ""},
		FarmLate:         {2, "", ""},
	} {
		row := res.Row(k)
		got := row.NotListed
		if w.outcome != "" {
			got = row.Outcomes[w.outcome]
		}
		if row.Devices != w.n || got != w.n || (w.reason != "" && row.Reasons[string(w.outcome)+" "+w.reason] != w.n) {
			t.Errorf("%s: %d devices, %d %q, reasons %v; want %d %q with %s", k, row.Devices, got, w.outcome, row.Reasons, w.n, w.outcome, w.reason)
		}
	}
	if r := res.Row(FarmBackfill); r.Reasons["held burst"] != 5 {
		t.Errorf("backfill reasons %v, want burst too", r.Reasons)
	}
	honest := res.Row(FarmHonest)
	eligible := 0
	for _, n := range res.Expected {
		eligible += n
	}
	if honest.Paid()+honest.Outcomes[claim.Held] != eligible || eligible == 0 || honest.Outcomes[claim.Held] != 0 {
		t.Errorf("honest: %v, expected %d paid or held", honest.Outcomes, eligible)
	}
	if !res.ViewsChecked || res.Claims.Status != claim.StatusClosed {
		t.Errorf("views checked %v; claims %s", res.ViewsChecked, res.Claims.Status)
	}
	// Every late device's month was refused as late, and the farm's row counts them.
	late := res.Row(FarmLate).Late
	lateDays := 0
	for _, fd := range res.Devices {
		if fd.Kind == FarmLate {
			lateDays += len(fd.Days)
		}
	}
	for _, row := range res.Claims.Rows {
		if row.MakerID == "farmco" && (row.Late != late || late != lateDays || row.Paid != 0) {
			t.Errorf("farmco row %+v; %d late records refused, %d dates", row, late, lateDays)
		}
	}
	byKind := map[FarmKind]*FarmDevice{}
	for _, fd := range res.Devices {
		byKind[fd.Kind] = fd
	}
	replay := byKind[FarmReplay].View
	if len(replay.Epochs) != 2 || replay.Months[0].Month != month.String() || replay.Months[0].ReportedDays != days || replay.Months[0].ActiveDays != days {
		t.Errorf("replay view: %+v", replay)
	}
	if future := byKind[FarmFuture].View; future.Epochs[0].FutureDate != 3 {
		t.Errorf("future-dates view: %+v", future.Epochs)
	}
	if v := byKind[FarmFutureCert].View; v.Attributed {
		t.Errorf("future-cert view: %+v", v)
	}
	badMintRecords := 0
	for _, fd := range res.Devices {
		if fd.Kind == FarmBadMint {
			badMintRecords += len(fd.Days)
		}
	}
	dead := res.Stats.DeadReasons
	if dead["future_date"] != 3*2 || dead["bad_cert"] != 2 || dead["implausible_mint"] != badMintRecords || dead["late"] != lateDays {
		t.Errorf("refusals %v; want 6 future_date, 2 bad_cert, %d implausible_mint, %d late", dead, badMintRecords, lateDays)
	}
}

// TestFarmDecisions: with the month still open (no late devices), the payer denies a
// held clone and releases a saturated phone; the claim shows the decisions, a device
// that is not held and a closed month refuse a decision (409).
func TestFarmDecisions(t *testing.T) {
	month := collector.Month{Year: 2027, Month: time.February}
	srv := startServer(t, fleetsim.NewClock(month.First().Start(480)), "konka", "tcl", "farmco")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunFarm(ctx, FarmConfig{Month: month, Seed: 9, Honest: 12, Clones: 4, Saturated: 1, Backfill: 1, Replay: 1, Serial: 3,
		Future: -1, Stolen: 2, Unregistered: 1, FutureCert: 1, BadMint: 1, Late: -1, Server: srv, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if res.Claims.Status != claim.StatusProvisional || res.Row(FarmLate).Devices != 0 {
		t.Fatalf("claims %s, %d late devices", res.Claims.Status, res.Row(FarmLate).Devices)
	}
	var clone, saturated, honest *FarmDevice
	for _, fd := range res.Devices {
		switch {
		case fd.Kind == FarmClone && clone == nil:
			clone = fd
		case fd.Kind == FarmSaturated:
			saturated = fd
		case fd.Kind == FarmHonest && fd.Outcome != nil && fd.Outcome.Outcome == claim.Paid:
			honest = fd
		}
	}
	if err := srv.Decide(month, clone.Device.ID(), false, "auditor", "a rack of identical phones"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Decide(month, saturated.Device.ID(), true, "auditor", "a kiosk phone, checked on site"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Decide(month, honest.Device.ID(), true, "auditor", "not held"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("a decision on a paid device: %v, want 409", err)
	}
	devs, err := srv.ClaimDevices(month, srv.PayerToken, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		switch d.DeviceID {
		case clone.Device.ID().String():
			if d.Outcome != claim.Refused || d.Reasons[0] != claim.ReasonDenied || d.Decision == nil || d.Decision.By != "auditor" {
				t.Errorf("denied clone: %+v", d)
			}
		case saturated.Device.ID().String():
			if d.Outcome != claim.Paid || d.Reasons[0] != claim.ReasonReleased || d.Decision == nil || d.Decision.Decision != "release" {
				t.Errorf("released saturated phone: %+v", d)
			}
		}
	}
	farm, _ := srv.Maker("farmco")
	own, err := srv.ClaimDevices(month, farm.Token, string(claim.Refused))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range own {
		if d.MakerID != "farmco" {
			t.Errorf("farmco sees %+v", d)
		}
	}
	srv.Clock.Set(time.Unix(res.Claims.ClosesAt, 0))
	if err := srv.Decide(month, clone.Device.ID(), true, "auditor", "too late"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("a decision in a closed month: %v, want 409", err)
	}
}
