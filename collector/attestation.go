package collector

import (
	"time"

	"amos.example/amosd/collector/attest"
	"amos.example/amosd/collector/attestpolicy"
)

// The attestation policy lives in package collector/attestpolicy; these names are
// kept for the collector's callers.
type (
	// Attestor is attestpolicy.Attestor: what Options.Attestation verifies chains with.
	Attestor = attestpolicy.Attestor
	// AttestationMode is attestpolicy.Mode.
	AttestationMode = attestpolicy.Mode
	// AttestationConfig is attestpolicy.Config, the "attestation" object.
	AttestationConfig = attestpolicy.Config
	// MakerAttestation is attestpolicy.Maker, a maker's policy.
	MakerAttestation = attestpolicy.Maker
	// AttestationPolicy is attestpolicy.Policy.
	AttestationPolicy = attestpolicy.Policy
)

// The modes of a maker's attestation (attestpolicy.Off, Preferred, Required).
const (
	AttestationOff       = attestpolicy.Off
	AttestationPreferred = attestpolicy.Preferred
	AttestationRequired  = attestpolicy.Required
)

// AttestationLookback is attestpolicy.Lookback.
const AttestationLookback = attestpolicy.Lookback

// NewAttestationPolicy is attestpolicy.New.
func NewAttestationPolicy(roots *attest.Roots, makers map[string]MakerAttestation, status *attest.Source) *AttestationPolicy {
	return attestpolicy.New(roots, makers, status)
}

// DefaultAttestationConfig returns docs/config.md's defaults (attestpolicy.DefaultConfig).
func DefaultAttestationConfig() AttestationConfig { return attestpolicy.DefaultConfig() }

// NewAttestation builds the Attestor the configuration asks for (attestpolicy.Build)
// and the status list source, not loaded yet (nil without status_list). logf, if not
// nil, gets a line for each failed load of the list.
func (c *Config) NewAttestation(now func() time.Time, logf func(string, ...any)) (*AttestationPolicy, *attest.Source, error) {
	return attestpolicy.Build(c.Attestation, c.attestation, now, logf)
}

// MakerAttestation returns a maker's attestation policy; mode off for an unknown maker.
func (c *Config) MakerAttestation(id string) MakerAttestation {
	if p, ok := c.attestation[id]; ok {
		return p
	}
	return MakerAttestation{Mode: AttestationOff}
}
