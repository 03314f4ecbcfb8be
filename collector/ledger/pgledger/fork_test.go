package pgledger

import (
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/pgtest"
)

// TestFork: a View forks on PostgreSQL, an Update does not; an engine without
// pg_export_snapshot (played by a function of that name that fails, found before
// pg_catalog's) gets no fork, the View going on unharmed, and is asked only once.
func TestFork(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	l := open(t, srv.NewDatabase(t), Options{})
	defer l.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.View(func(tx ledger.Tx) error {
		f, end, err := tx.Fork()
		if err != nil || f == nil {
			t.Fatalf("Fork of a View on PostgreSQL: %v, %v", f, err)
		}
		defer end()
		_, err = f.Device([32]byte{1})
		return err
	}))
	if got := l.snapshots.Load(); got != snapshotsShared {
		t.Errorf("snapshots %d, want shared", got)
	}

	url := srv.NewDatabase(t)
	setup := open(t, url, Options{})
	_, err := setup.pool.Exec(t.Context(), `CREATE FUNCTION public.pg_export_snapshot() RETURNS text LANGUAGE plpgsql AS
		$$BEGIN RAISE EXCEPTION 'unimplemented' USING ERRCODE = 'feature_not_supported'; END$$`)
	must(err)
	setup.Close()
	l2 := open(t, url+"&search_path=public,pg_catalog", Options{})
	defer l2.Close()
	sale := &ledger.Sale{SerialTag: [32]byte{7}, MakerID: "konka", SoldAt: proof.NewDate(2027, time.January, 1), Channel: "jd", RegisteredAt: 1_800_000_000}
	must(l2.Update(func(tx ledger.Tx) error { return tx.PutSale(sale) }))
	for range 2 {
		must(l2.View(func(tx ledger.Tx) error {
			f, end, err := tx.Fork()
			if err != nil || f != nil || end != nil {
				t.Errorf("Fork without pg_export_snapshot: %v, %v", f, err)
			}
			got, err := tx.Sale(sale.SerialTag) // the transaction is not aborted
			if err != nil || got == nil {
				t.Errorf("Sale after the Fork: %v, %v", got, err)
			}
			return nil
		}))
		if got := l2.snapshots.Load(); got != snapshotsNone {
			t.Errorf("snapshots %d, want none", got)
		}
	}
}
