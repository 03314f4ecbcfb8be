package attack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/tools/fleetsim"
)

// testAuthority is a development attestation root for a scenario, valid for years
// around the months tested.
func testAuthority(t *testing.T) *devattest.Authority {
	t.Helper()
	a, err := devattest.New(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), "fleetsim test")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// attestedServer starts an in-process collector that trusts a's root, every maker in mode.
func attestedServer(t *testing.T, clock *fleetsim.Clock, a *devattest.Authority, mode collector.AttestationMode, ids ...string) *fleetsim.Server {
	t.Helper()
	policy, err := AttestationPolicy(a, mode, ids)
	if err != nil {
		t.Fatal(err)
	}
	return startAttestedServer(t, clock, policy, ids...)
}

// checkAttested checks what every mode has in common: the honest fleet is paid exactly
// (nothing held), every honest device listed is attested and counted so in its maker's
// row, no phantom key is attested, and the registry's own catches are what they are
// without attestation (stolen serial tags refused).
func checkAttested(t *testing.T, res *PhantomResult) {
	t.Helper()
	honest := res.Row(PhantomHonest)
	eligible, attested := 0, 0
	for _, n := range res.Expected {
		eligible += n
	}
	for _, row := range res.Claims.Rows {
		if _, ok := res.Expected[row.MakerID]; ok {
			attested += row.Attested
		} else if row.Attested != 0 {
			t.Errorf("%s: %d attested", row.MakerID, row.Attested)
		}
	}
	if honest.Paid() != eligible || honest.Outcomes[claim.Held]+honest.Outcomes[claim.Refused]+honest.Outcomes[claim.Unregistered] != 0 {
		t.Errorf("honest: %v, %d eligible", honest.Outcomes, eligible)
	}
	if listed := honest.Devices - honest.NotListed; attested != listed || honest.Attestation["attested"] != listed || len(honest.Attestation) != 1 {
		t.Errorf("honest: %d attested in the rows, verdicts %v; %d listed", attested, honest.Attestation, listed)
	}
	if stolen := res.Row(PhantomStolen); stolen.Outcomes[claim.Refused]+stolen.NotListed != stolen.Devices || stolen.Paid() != 0 {
		t.Errorf("stolen: %v", stolen.Outcomes)
	}
	for _, k := range dormantKinds {
		if r := res.Row(k); r.Devices != 10 || r.Attestation["attested"] != 0 {
			t.Errorf("%s: %d devices, verdicts %v", k, r.Devices, r.Attestation)
		}
	}
}

// dormantVerdicts are the claim's verdicts on the attested phantom kinds' keys.
var dormantVerdicts = map[string]string{
	PhantomUnattested:    "not_attested",
	PhantomOwnRoot:       "refused: untrusted_root",
	PhantomReplayedChain: "refused: key_mismatch",
}

// TestPhantomAttestation plays the phantom scenario with every maker's attestation
// required, then preferred, on a 28-day February and across a new year. The phantom
// maker also certifies keys for the serial tags of its own registered handsets that
// never report, which the registry cannot tell from real ones. Required: no phantom
// paid, each attested kind refused with its attestation reason, the honest fleet
// (P-256 keys attested by the trusted development root) paid exactly. Preferred: the
// same claims, except that every attested-kind phantom with enough active days is
// paid: what only required stops.
func TestPhantomAttestation(t *testing.T) {
	auth := testAuthority(t)
	for _, tc := range []struct {
		mode  collector.AttestationMode
		month collector.Month
	}{
		{collector.AttestationRequired, collector.Month{Year: 2027, Month: time.February}},
		{collector.AttestationRequired, collector.Month{Year: 2026, Month: time.December}},
		{collector.AttestationPreferred, collector.Month{Year: 2027, Month: time.February}},
	} {
		t.Run(string(tc.mode)+"-"+tc.month.String(), func(t *testing.T) {
			srv := attestedServer(t, fleetsim.NewClock(tc.month.First().Start(480)), auth, tc.mode, "konka", "tcl", "phantomco")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var out strings.Builder
			res, err := RunPhantom(ctx, PhantomConfig{Month: tc.month, Seed: 5, Phantoms: 40, Honest: 45, Dormant: 30,
				Attestation: tc.mode, Authority: auth, Server: srv, Out: &out, Logf: t.Logf})
			t.Logf("\n%s", out.String())
			if res == nil || res.Claims == nil {
				t.Fatal(err)
			}
			checkAttested(t, res)
			row := res.Claims.Rows[1] // phantomco
			switch tc.mode {
			case collector.AttestationRequired:
				if err != nil {
					t.Fatal(err)
				}
				if res.PhantomsPaid() != 0 || row.MakerID != "phantomco" || row.Paid != 0 || row.AmountCNY != 0 {
					t.Errorf("phantoms paid: %d, row %+v", res.PhantomsPaid(), row)
				}
				// Made-up serial tags without a chain: not attested comes before unregistered.
				if fab := res.Row(PhantomFabricated); fab.Outcomes[claim.Refused] != res.ActiveEnough[PhantomFabricated] || fab.Outcomes[claim.Refused] == 0 ||
					fab.Reasons["refused "+claim.ReasonNotAttested] != fab.Outcomes[claim.Refused] {
					t.Errorf("fabricated: %v %v", fab.Outcomes, fab.Reasons)
				}
				for _, k := range dormantKinds {
					r, why := res.Row(k), claim.ReasonAttestationRefused
					if k == PhantomUnattested {
						why = claim.ReasonNotAttested
					}
					if r.Outcomes[claim.Refused] != res.ActiveEnough[k] || r.Outcomes[claim.Refused] == 0 || r.Reasons["refused "+why] != res.ActiveEnough[k] ||
						r.Attestation[dormantVerdicts[k]] != r.Devices-r.NotListed {
						t.Errorf("%s: %v, reasons %v, verdicts %v; %d with enough days", k, r.Outcomes, r.Reasons, r.Attestation, res.ActiveEnough[k])
					}
				}
				for _, want := range []string{"attestation required for every maker", "phantom-replayed-chain", "refused: untrusted_root",
					"target: 0 phantoms paid (0 paid)", "every honest device listed attested"} {
					if !strings.Contains(out.String(), want) {
						t.Errorf("no %q in the report", want)
					}
				}
			case collector.AttestationPreferred:
				// Only the phantoms paid are wrong: the registry alone pays every
				// attested-kind key with enough days; the chains' verdicts are the same
				// (a key without one has none where attestation is not required).
				if !errors.Is(err, ErrPhantomsPaid) || errors.Is(err, fleetsim.ErrClaimsMismatch) {
					t.Fatalf("err %v, want only %v", err, ErrPhantomsPaid)
				}
				paid := 0
				for _, k := range dormantKinds {
					r := res.Row(k)
					verdicts := r.Devices - r.NotListed
					if k == PhantomUnattested {
						verdicts = 0
					}
					if r.Paid() != res.ActiveEnough[k] || r.Paid() == 0 || r.Attestation[dormantVerdicts[k]] != verdicts || len(r.Attestation) > 1 {
						t.Errorf("%s: %v, verdicts %v; %d with enough days", k, r.Outcomes, r.Attestation, res.ActiveEnough[k])
					}
					paid += r.Paid()
				}
				if fab := res.Row(PhantomFabricated); fab.Paid() != 0 || fab.Outcomes[claim.Unregistered] != res.ActiveEnough[PhantomFabricated] {
					t.Errorf("fabricated: %v", fab.Outcomes)
				}
				if res.PhantomsPaid() != paid || row.Paid != paid {
					t.Errorf("%d phantoms paid, %d of the attested kinds; row %+v", res.PhantomsPaid(), paid, row)
				}
			}
		})
	}
}
