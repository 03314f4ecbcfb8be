package fleetsim

import (
	"fmt"
	"strings"
	"time"

	"amos.example/amosd/collector"
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
		return StartServer(c.Dir, makers, NewClock(c.Start), c.Attestation, c.Logf)
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

// PreviousMonth returns the calendar month before the one of t.
func PreviousMonth(t time.Time) collector.Month {
	p := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	return collector.Month{Year: p.Year(), Month: p.Month()}
}
