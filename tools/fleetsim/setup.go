package fleetsim

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/rigs/pgtest"
)

// ServerConfig says which collector a scenario talks to.
type ServerConfig struct {
	// URL, CAFile: a running amos-collector; empty URL starts one in-process over TLS
	// on loopback, in Dir, with Makers as its registry.
	URL, CAFile string
	// PayerToken is the external collector's payer token (for GET /v1/claims).
	PayerToken string
	// MakerKeys are the external collector's makers: "id=KEYFILE[:TOKEN]" each, KEYFILE
	// written by `amos-collector maker keygen`.
	MakerKeys []string
	// Makers are the maker_ids of an in-process collector.
	Makers []string
	Seed   uint64
	Dir    string
	Start  time.Time // the in-process collector's simulated clock starts here
	// Ledger is the in-process collector's ledger: "" for bbolt in Dir/ledger, a
	// postgres:// URL, or LocalPostgres.
	Ledger string
	// Attestation is the in-process collector's attestation policy (nil: none).
	Attestation collector.Attestor
	// Now is the external collector's clock (time.Now when nil).
	Now  func() time.Time
	Logf func(string, ...any)
}

// OpenServer starts the in-process collector, or describes the external one.
func OpenServer(c ServerConfig) (*Server, error) {
	if c.URL == "" {
		var makers []Maker
		for _, id := range c.Makers {
			m, err := NewMaker(id, c.Seed)
			if err != nil {
				return nil, err
			}
			makers = append(makers, m)
		}
		return startLocal(c, makers)
	}
	if c.Ledger != "" {
		return nil, fmt.Errorf("fleetsim: --ledger is the in-process collector's: an external collector has its own (its configuration's ledger key)")
	}
	if c.CAFile == "" || c.PayerToken == "" || len(c.MakerKeys) == 0 {
		return nil, fmt.Errorf("fleetsim: an external collector needs --ca, --payer-token and --maker ID=KEYFILE[:TOKEN]")
	}
	var makers []Maker
	for _, mk := range c.MakerKeys {
		id, rest, ok := strings.Cut(mk, "=")
		if !ok {
			return nil, fmt.Errorf("fleetsim: --maker %q: want ID=KEYFILE[:TOKEN]", mk)
		}
		file, token, _ := strings.Cut(rest, ":")
		m, err := LoadMaker(id, file, token)
		if err != nil {
			return nil, err
		}
		makers = append(makers, m)
	}
	return ExternalServer(c.URL, c.CAFile, c.PayerToken, makers, c.Now)
}

// LocalPostgres is the ServerConfig.Ledger that starts a private PostgreSQL server for
// the run in Dir/postgres (rigs/pgtest's launcher: Debian's initdb and postgres, on a
// free loopback port, durable as a payer runs it), with the ledger in its database
// amos, and stops it when the Server closes. The cluster stays in Dir.
const LocalPostgres = "postgres"

// startLocal starts the in-process collector on c.Ledger.
func startLocal(c ServerConfig, makers []Maker) (*Server, error) {
	logf := c.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if c.Ledger != LocalPostgres {
		if c.Ledger != "" && !strings.HasPrefix(c.Ledger, "postgres://") && !strings.HasPrefix(c.Ledger, "postgresql://") {
			return nil, fmt.Errorf("fleetsim: --ledger %q: want a postgres:// URL or %q", pgledger.Redact(c.Ledger), LocalPostgres)
		}
		return StartServer(c.Dir, c.Ledger, makers, NewClock(c.Start), c.Attestation, c.Logf)
	}
	began := time.Now()
	pg, err := pgtest.Launch(filepath.Join(c.Dir, "postgres"), pgtest.Options{Durable: true})
	if err != nil {
		return nil, fmt.Errorf("fleetsim: a PostgreSQL server for the ledger: %w", err)
	}
	url, err := pg.CreateDatabase("amos")
	if err == nil {
		logf("fleetsim: PostgreSQL started in %s (%s): %s", pg.Dir(), time.Since(began).Round(time.Millisecond), url)
		var s *Server
		if s, err = StartServer(c.Dir, url, makers, NewClock(c.Start), c.Attestation, c.Logf); err == nil {
			stop := s.stop
			s.stop = func() error { return errors.Join(stop(), pg.Stop()) }
			return s, nil
		}
	}
	return nil, errors.Join(err, pg.Stop())
}

// PreviousMonth returns the calendar month before the one of t.
func PreviousMonth(t time.Time) collector.Month {
	p := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	return collector.Month{Year: p.Year(), Month: p.Month()}
}
