package attack

import (
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/tools/fleetsim"
)

// startServer starts an in-process collector with makers for a test.
func startServer(t *testing.T, clock *fleetsim.Clock, ids ...string) *fleetsim.Server {
	t.Helper()
	return startAttestedServer(t, clock, nil, ids...)
}

// startAttestedServer starts an in-process collector with makers and an attestation
// policy (nil: none) for a test.
func startAttestedServer(t *testing.T, clock *fleetsim.Clock, att collector.Attestor, ids ...string) *fleetsim.Server {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host tool: its TLS fleet is not worth emulating (make test-arm)")
	}
	var makers []fleetsim.Maker
	for _, id := range ids {
		m, err := fleetsim.NewMaker(id, 1)
		if err != nil {
			t.Fatal(err)
		}
		makers = append(makers, m)
	}
	srv, err := fleetsim.StartServer(t.TempDir(), "", makers, clock, att, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// monthsOfEveryLength are the months the farm is tested on: 28, 29, 30 and 31 days,
// and both sides of a new year (December's last midnight falls in January).
var monthsOfEveryLength = []collector.Month{
	{Year: 2027, Month: time.February},
	{Year: 2028, Month: time.February},
	{Year: 2026, Month: time.November},
	{Year: 2026, Month: time.October},
	{Year: 2026, Month: time.December},
	{Year: 2027, Month: time.January},
}
