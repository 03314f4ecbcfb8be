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

// externalServer starts an in-process collector whose clock runs on its own (a minute
// every 20 ms, from at), with an attestation policy (nil: none), and returns it
// described as an external one: the scenarios cannot move its clock, as with a
// running amos-collector.
func externalServer(t *testing.T, at time.Time, att collector.Attestor, ids ...string) *fleetsim.Server {
	t.Helper()
	clock := fleetsim.NewClock(at)
	in := startAttestedServer(t, clock, att, ids...)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				clock.Set(clock.Now().Add(time.Minute))
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	ext, err := fleetsim.ExternalServer(in.URL, in.CAFile, in.PayerToken, in.Makers, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ext.Close() })
	return ext
}

// TestScenariosAgainstAnExternalCollector runs the phantom and farm scenarios against a
// collector whose clock they cannot move (the external path: --collector): December's
// claim, a few days into January, is still open; nothing of the phantoms or the farm is
// paid, and the farm has no late devices.
func TestScenariosAgainstAnExternalCollector(t *testing.T) {
	month := collector.Month{Year: 2026, Month: time.December}
	now := time.Date(2027, time.January, 3, 9, 0, 0, 0, time.FixedZone("", 8*3600))
	t.Run("phantom", func(t *testing.T) {
		srv := externalServer(t, now, nil, "konka", "tcl", "phantomco")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var out strings.Builder
		res, err := RunPhantom(ctx, PhantomConfig{Month: month, Seed: 4, Phantoms: 40, Honest: 30, Server: srv, Out: &out, Logf: t.Logf})
		t.Logf("\n%s", out.String())
		if err != nil {
			t.Fatal(err)
		}
		if res.Row(PhantomFabricated).Paid()+res.Row(PhantomStolen).Paid() != 0 || res.Row(PhantomStolen).Outcomes[claim.Refused] == 0 {
			t.Errorf("phantoms: %+v %+v", res.Row(PhantomFabricated), res.Row(PhantomStolen))
		}
	})
	t.Run("phantom-attestation-required", func(t *testing.T) {
		// The external collector trusts the authority's root (its attestation.roots)
		// and requires attestation of every maker.
		auth := testAuthority(t)
		policy, err := AttestationPolicy(auth, collector.AttestationRequired, []string{"konka", "tcl", "phantomco"})
		if err != nil {
			t.Fatal(err)
		}
		srv := externalServer(t, now, policy, "konka", "tcl", "phantomco")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var out strings.Builder
		res, err := RunPhantom(ctx, PhantomConfig{Month: month, Seed: 4, Phantoms: 20, Honest: 30, Dormant: 30,
			Attestation: collector.AttestationRequired, Authority: auth, Server: srv, Out: &out, Logf: t.Logf})
		t.Logf("\n%s", out.String())
		if err != nil {
			t.Fatal(err)
		}
		checkAttested(t, res)
		for _, k := range dormantKinds {
			if r := res.Row(k); r.Outcomes[claim.Refused] != res.ActiveEnough[k] || r.Outcomes[claim.Refused] == 0 {
				t.Errorf("%s: %v", k, r.Outcomes)
			}
		}
	})
	t.Run("farm", func(t *testing.T) {
		srv := externalServer(t, now, nil, "konka", "tcl", "farmco")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var out strings.Builder
		res, err := RunFarm(ctx, FarmConfig{Month: month, Seed: 6, Honest: 10, Clones: 3, Saturated: 1, Backfill: 1, Replay: 1, Serial: 3,
			Future: 1, Stolen: 2, Unregistered: 1, FutureCert: 1, BadMint: 1, Server: srv, Out: &out, Logf: t.Logf})
		t.Logf("\n%s", out.String())
		if err != nil {
			t.Fatal(err)
		}
		if !res.LateSkipped || res.Row(FarmLate).Devices != 0 || res.Claims.Status != claim.StatusProvisional {
			t.Errorf("late skipped %v, %d late devices, claims %s", res.LateSkipped, res.Row(FarmLate).Devices, res.Claims.Status)
		}
		if r := res.Row(FarmFutureCert); r.Outcomes[claim.Ineligible] != 1 || r.Reasons["ineligible "+claim.ReasonNoCertificate] != 1 {
			t.Errorf("future-cert: %+v", r)
		}
		if r := res.Row(FarmBackfill); r.Outcomes[claim.Held] != 1 || r.Reasons["held backfill"] != 1 {
			t.Errorf("backfill: %+v", r)
		}
		badMint := 0
		for _, fd := range res.Devices {
			if fd.Kind == FarmBadMint {
				badMint += len(fd.Days)
			}
		}
		if d := res.Stats.DeadReasons; d["future_date"] != 3 || d["implausible_mint"] != badMint || d["bad_cert"] != 1 || len(d) != 3 {
			t.Errorf("refusals %v, want 3 future_date, %d implausible_mint, 1 bad_cert", d, badMint)
		}
	})
}
