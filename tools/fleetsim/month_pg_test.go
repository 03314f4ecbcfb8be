package fleetsim

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/rigs/pgtest"
)

// TestMonthPostgresEqualsBolt: the month scenario with the in-process collector on a
// PostgreSQL ledger (a real server, rigs/pgtest) ends in exactly the claim of the same
// month, seed and fleet on bbolt: the same rows (paid, held, refused, unregistered,
// late, amounts, attested), the same devices with the same outcomes, active days and
// signals, the same records minted and accepted, and every check of the scenario holds
// on both.
func TestMonthPostgresEqualsBolt(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	month := collector.Month{Year: 2026, Month: time.November}
	run := func(ledgerURL string) (*MonthResult, []claim.Device) {
		t.Helper()
		var makers []Maker
		for _, id := range []string{"konka", "tcl", "zte"} {
			m, err := NewMaker(id, 1)
			if err != nil {
				t.Fatal(err)
			}
			makers = append(makers, m)
		}
		srv, err := StartServer(t.TempDir(), ledgerURL, makers, NewClock(month.First().Start(480)), nil, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var out strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := RunMonth(ctx, MonthConfig{Devices: 150, Month: month, Seed: 11, Stores: 5, Dir: t.TempDir(), Server: srv, Out: &out, Logf: t.Logf})
		t.Logf("\n%s", out.String())
		if err != nil {
			t.Fatal(err)
		}
		checkMonth(t, res)
		devs, err := srv.ClaimDevices(month, srv.PayerToken, "")
		if err != nil {
			t.Fatal(err)
		}
		return res, devs
	}
	bolt, boltDevs := run("")
	onPG, pgDevs := run(pg.NewDatabase(t))
	if !strings.HasPrefix(onPG.Ledger, "postgres://amos@127.0.0.1:") || !strings.HasSuffix(bolt.Ledger, "collector.db") {
		t.Errorf("ledgers %q and %q", bolt.Ledger, onPG.Ledger)
	}
	if bolt.Minted != onPG.Minted || bolt.Stats.Acked != onPG.Stats.Acked || bolt.Stats.Dead != 0 || onPG.Stats.Dead != 0 {
		t.Errorf("bbolt: %d minted, %d accepted, %d refused; PostgreSQL: %d, %d, %d", bolt.Minted, bolt.Stats.Acked, bolt.Stats.Dead,
			onPG.Minted, onPG.Stats.Acked, onPG.Stats.Dead)
	}
	b, p := bolt.Claims, onPG.Claims
	if b.Month != p.Month || b.Status != p.Status || b.ClosesAt != p.ClosesAt || !reflect.DeepEqual(b.Rows, p.Rows) {
		t.Errorf("claims differ:\nbbolt      %+v\nPostgreSQL %+v", *b, *p)
	}
	paid := 0
	for _, r := range b.Rows {
		paid += r.Paid
	}
	if paid == 0 || len(boltDevs) == 0 || !reflect.DeepEqual(boltDevs, pgDevs) {
		t.Errorf("%d paid; devices: %d on bbolt, %d on PostgreSQL, equal %v", paid, len(boltDevs), len(pgDevs), reflect.DeepEqual(boltDevs, pgDevs))
	}
	if !reflect.DeepEqual(bolt.Expected, onPG.Expected) || !reflect.DeepEqual(bolt.Got, onPG.Got) || !reflect.DeepEqual(bolt.Held, onPG.Held) {
		t.Errorf("expected %v / %v, paid %v / %v, held %v / %v", bolt.Expected, onPG.Expected, bolt.Got, onPG.Got, bolt.Held, onPG.Held)
	}
}
