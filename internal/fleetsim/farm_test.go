package fleetsim

import (
	"context"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
)

func TestFarm(t *testing.T) {
	month := collector.Month{Year: 2026, Month: time.October}
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
	if len(replay.Epochs) != 2 || replay.Months[0].ReportedDays != 31 || replay.Months[0].ActiveDays != 31 {
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
