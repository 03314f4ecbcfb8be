package pgledger

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/ledgertest"
	"amos.example/amosd/rigs/pgtest"
)

func open(t *testing.T, url string, o Options) *Ledger {
	t.Helper()
	l, err := Open(url, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestConformance: the PostgreSQL ledger passes the suite Mem and Bolt pass, on a real
// server, each subtest in its own database.
func TestConformance(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	var ls []*Ledger
	ledgertest.Run(t, func(t *testing.T) ledger.Ledger {
		l := open(t, srv.NewDatabase(t), Options{})
		ls = append(ls, l)
		return l
	})
	retries := uint64(0)
	for _, l := range ls {
		retries += l.Retries()
	}
	if retries == 0 {
		t.Error("no transaction was run again: the concurrent updates never collided, so the retry path went untested")
	}
}

// TestMigrate: collectors starting at once on an empty database migrate it once; a
// read-only open of an unmigrated database and a database of a newer schema are
// refused with ErrCorrupt.
func TestMigrate(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	url := srv.NewDatabase(t)
	if _, err := Open(url, Options{ReadOnly: true}); !errors.Is(err, ledger.ErrOldSchema) || !strings.Contains(err.Error(), "start amos-collector serve once") {
		t.Errorf("read-only open of an empty database: %v", err)
	}
	var wg sync.WaitGroup
	ls := make([]*Ledger, 4)
	errs := make([]error, 4)
	for i := range ls {
		wg.Go(func() { ls[i], errs[i] = Open(url, Options{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("collector %d: %v", i, err)
		}
		defer ls[i].Close()
	}
	var n int
	ctx := t.Context()
	if err := ls[0].pool.QueryRow(ctx, "SELECT count(*) FROM amos_schema").Scan(&n); err != nil || n != SchemaVersion() {
		t.Errorf("%d migrations recorded (%v), want %d", n, err, SchemaVersion())
	}
	ro := open(t, url, Options{ReadOnly: true})
	defer ro.Close()
	if err := ro.Update(func(ledger.Tx) error { return nil }); !errors.Is(err, ledger.ErrReadOnly) {
		t.Errorf("Update of a read-only ledger: %v", err)
	}
	if _, err := ls[0].pool.Exec(ctx, "INSERT INTO amos_schema VALUES ($1, 0)", SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(url, Options{}); !errors.Is(err, ledger.ErrCorrupt) || !strings.Contains(err.Error(), "this collector knows") {
		t.Errorf("open of a newer schema: %v", err)
	}
}

// TestRedact: no password reaches a message.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://amos:s3cret@db.example:5432/amos?sslmode=verify-full", "postgres://amos@db.example:5432/amos?sslmode=verify-full"},
		{"postgresql://db.example/amos?password=s3cret&user=amos", "postgresql://db.example/amos?password=xxxxx&user=amos"},
	} {
		if got := Redact(tc.in); got != tc.want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	_, err := Open("postgres://amos:s3cret@127.0.0.1:1/amos?connect_timeout=1", Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("open of an unreachable database: %v", err)
	}
}
