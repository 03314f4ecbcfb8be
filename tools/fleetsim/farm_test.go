package fleetsim

import (
	"context"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
)

// TestFarm runs the farm scenario on each month length (monthsOfEveryLength): what the
// collector pays of a farm does not depend on how long the month is.
func TestFarm(t *testing.T) {
	for _, month := range monthsOfEveryLength {
		t.Run(month.String(), func(t *testing.T) { testFarm(t, month) })
	}
}

func testFarm(t *testing.T, month collector.Month) {
	srv := startServer(t, NewClock(month.First().Start(480)), "konka", "tcl", "farmco")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	res, err := RunFarm(ctx, FarmConfig{Month: month, Seed: 5, Server: srv, Out: &out, Logf: t.Logf})
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[FarmKind]*FarmDevice{}
	for _, fd := range res.Devices {
		byKind[fd.Kind] = fd
	}
	// The collector pays clones, saturated days and backfills like honest phones; it
	// counts a replayed month once and pays one shared serial_tag once.
	if want := 30 + 5 + 5 + 3 + 1 + 2; res.Expected["farmco"] != want {
		t.Errorf("farmco expected %d", res.Expected["farmco"])
	}
	replay := byKind[FarmReplay].View
	days := month.Last().Day()
	if len(replay.Epochs) != 2 || replay.Months[0].Month != month.String() || replay.Months[0].ReportedDays != days || replay.Months[0].ActiveDays != days {
		t.Errorf("replay view: %+v", replay)
	}
	future := byKind[FarmFuture].View
	if future.Epochs[0].FutureDate != 3 {
		t.Errorf("future-dates view: %+v", future.Epochs)
	}
	if res.Stats.DeadReasons["future_date"] != 3*2 {
		t.Errorf("refusals %v", res.Stats.DeadReasons)
	}
}
