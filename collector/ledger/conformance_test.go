package ledger_test

import (
	"testing"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/ledgertest"
)

// TestConformance: Mem and Bolt pass the suite every backend passes (PostgreSQL's run
// is in pgledger).
func TestConformance(t *testing.T) {
	t.Run("mem", func(t *testing.T) {
		ledgertest.Run(t, func(*testing.T) ledger.Ledger { return ledger.NewMem() })
	})
	t.Run("bolt", func(t *testing.T) {
		ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
			l, err := ledger.OpenBolt(t.TempDir(), ledger.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return l
		})
	})
}
