package fleetsim

import (
	"context"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/rigs/testenv"
)

// startServer starts an in-process collector with makers for a test.
func startServer(t *testing.T, clock *Clock, ids ...string) *Server {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host tool: its TLS fleet is not worth emulating (make test-arm)")
	}
	var makers []Maker
	for _, id := range ids {
		m, err := NewMaker(id, 1)
		if err != nil {
			t.Fatal(err)
		}
		makers = append(makers, m)
	}
	srv, err := StartServer(t.TempDir(), "", makers, clock, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// monthsOfEveryLength are the months the scenarios are tested on: 28, 29, 30 and 31
// days, and both sides of a new year (December's last midnight falls in January).
var monthsOfEveryLength = []collector.Month{
	{Year: 2027, Month: time.February},
	{Year: 2028, Month: time.February},
	{Year: 2026, Month: time.November},
	{Year: 2026, Month: time.October},
	{Year: 2026, Month: time.December},
	{Year: 2027, Month: time.January},
}

// TestMonthEveryLength runs the month scenario on each month length: every plan fits
// its month, every record is accepted, and the claims equal the simulation's.
func TestMonthEveryLength(t *testing.T) {
	for _, month := range monthsOfEveryLength {
		t.Run(month.String(), func(t *testing.T) {
			srv := startServer(t, NewClock(month.First().Start(480)), "konka", "tcl", "zte")
			var out strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := RunMonth(ctx, MonthConfig{Devices: 120, Month: month, Seed: uint64(month.Year*100 + int(month.Month)), Stores: 6,
				Dir: t.TempDir(), Server: srv, Out: &out, Logf: t.Logf})
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			checkMonth(t, res)
			if res.Claims == nil || res.Claims.Month != month.String() {
				t.Errorf("claims of %v, want %s", res.Claims, month)
			}
		})
	}
}

func TestMonthSmall(t *testing.T) {
	month := collector.Month{Year: 2026, Month: time.October}
	srv := startServer(t, NewClock(month.First().Start(480)), "konka", "tcl", "zte")
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunMonth(ctx, MonthConfig{Devices: 200, Month: month, Seed: 7, Stores: 20, Dir: t.TempDir(), Server: srv, Out: &out, Logf: t.Logf})
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	checkMonth(t, res)
}

// checkMonth checks what every month run must show: every handset registered as sold,
// each maker's paid and held devices equal the simulation's eligible ones, at most 1 %
// held, some devices are not eligible, nothing was refused.
func checkMonth(t *testing.T, res *MonthResult) {
	t.Helper()
	total := 0
	for m, n := range res.Expected {
		if n == 0 || res.Got[m]+res.Held[m] != n {
			t.Errorf("maker %s: expected %d, collector %d paid + %d held", m, n, res.Got[m], res.Held[m])
		}
		total += n
	}
	if res.Registered != res.Devices || res.HeldShare() > MaxHeldShare || len(res.HeldDevices) != 0 {
		t.Errorf("%d of %d devices registered; %d held: %s", res.Registered, res.Devices, len(res.HeldDevices), heldReasons(res.HeldDevices))
	}
	if total == 0 || total == res.Devices {
		t.Errorf("%d of %d devices eligible: the profiles should make some ineligible", total, res.Devices)
	}
	if !res.MakerViewChecked || res.Stats.Dead != 0 || res.Minted != res.Stats.Acked {
		t.Errorf("minted %d, accepted %d, refused %d", res.Minted, res.Stats.Acked, res.Stats.Dead)
	}
}
