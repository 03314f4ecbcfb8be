// Package attestpolicy is the collector's attestation policy: the trust set, status list
// and makers' modes the configuration names, applied to geneses and claims
// (docs/attestation.md).
package attestpolicy

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"amos.example/amosd/collector/attest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/internal/jsonconfig"
	"amos.example/amosd/proof"
)

// Mode says what a maker's devices' attestation means for its claim
// (docs/attestation.md).
type Mode string

// The modes of a maker's attestation.
const (
	// Off: chains are verified and shown; a device is paid without one.
	Off Mode = "off"
	// Preferred: the same as off for payment; the claim counts attested devices.
	Preferred Mode = "preferred"
	// Required: only a device whose attestation holds is paid.
	Required Mode = "required"
)

// Attestor verifies the attestation chains of geneses and says which makers require
// attestation. The collector calls Verify once per chain, when the first genesis of a
// key carrying one arrives; Revoked at every claim computed before the month closes.
type Attestor interface {
	// Verify returns the verdict on g's chain as of at; g's certificate verified
	// against its maker's key.
	Verify(g *proof.Genesis, at time.Time) *ledger.Attestation
	// Mode returns the mode of a maker.
	Mode(makerID string) Mode
	// Revoked reports whether the current status list revokes or suspends one of the
	// serials, and why.
	Revoked(serials []string) (string, bool)
	// StatusVersion changes whenever the status list does, so that a provisional
	// claim computed with an older list is not reused.
	StatusVersion() uint64
	// StatusStale reports whether a status list is configured and stale at now: months
	// do not close then (docs/attestation.md).
	StatusStale(now time.Time) bool
}

// Config is the "attestation" object of the collector's configuration: the trust set
// and the status list (docs/config.md).
type Config struct {
	GoogleRoots          bool     `json:"google_roots"`           // trust the Google roots shipped in collector/attest
	Roots                []string `json:"roots"`                  // PEM files of more roots the payer trusts
	StatusList           string   `json:"status_list"`            // a file or an https URL; "" none
	StatusRefreshMinutes int      `json:"status_refresh_minutes"` // how often the list is read again
	StatusMaxAgeHours    int      `json:"status_max_age_hours"`   // older than this, the list is stale
}

// DefaultConfig returns docs/config.md's defaults.
func DefaultConfig() Config {
	return Config{GoogleRoots: true, Roots: []string{}, StatusRefreshMinutes: 60, StatusMaxAgeHours: 48}
}

// Validate checks the keys; a problem names its key under "attestation." and wraps kind,
// the configuration's sentinel.
func (a Config) Validate(kind error) *jsonconfig.Error {
	bad := func(key, format string, args ...any) *jsonconfig.Error {
		return &jsonconfig.Error{Key: "attestation." + key, Problem: fmt.Sprintf(format, args...), Kind: kind}
	}
	for i, r := range a.Roots {
		if !filepath.IsAbs(r) {
			return bad(fmt.Sprintf("roots[%d]", i), "%q is not an absolute path", r)
		}
	}
	switch {
	case a.StatusList != "" && !filepath.IsAbs(a.StatusList) && !strings.HasPrefix(a.StatusList, "https://"):
		return bad("status_list", "%q is neither an absolute path nor an https:// URL", a.StatusList)
	case a.StatusRefreshMinutes < 1 || a.StatusRefreshMinutes > 1440:
		return bad("status_refresh_minutes", "%d, want 1..1440", a.StatusRefreshMinutes)
	case a.StatusMaxAgeHours < 1 || a.StatusMaxAgeHours > 720:
		return bad("status_max_age_hours", "%d, want 1..720", a.StatusMaxAgeHours)
	}
	return nil
}

// MakerConfig is the attestation part of a maker's entry of the makers list.
type MakerConfig struct {
	// Attestation is "required", "preferred" or "off" (the default), with the approved
	// boot keys, the minimum OS patch level and the serial tags' HMAC key
	// (docs/attestation.md).
	Attestation     string   `json:"attestation"`
	BootKeys        []string `json:"boot_keys"`
	MinOSPatchLevel int      `json:"min_os_patch_level"`
	SerialTagKey    string   `json:"serial_tag_key"`
}

// Maker is a maker's attestation policy, from its entry of the makers list.
type Maker struct {
	Mode          Mode
	BootKeys      [][]byte // approved verifiedBootKey values; none: reported, not checked
	MinPatchLevel int      // YYYYMM; 0: none
	SerialTagKey  []byte   // the HMAC key of its serial tags, for ID attestation; nil: not checked
}

// Parse checks a maker's attestation keys and returns its policy; key is the maker's
// entry ("makers[0]"), which a problem names, wrapping kind.
func (m *MakerConfig) Parse(key string, kind error) (Maker, *jsonconfig.Error) {
	bad := func(sub, format string, args ...any) (Maker, *jsonconfig.Error) {
		return Maker{}, &jsonconfig.Error{Key: key + "." + sub, Problem: fmt.Sprintf(format, args...), Kind: kind}
	}
	p := Maker{Mode: Mode(m.Attestation), MinPatchLevel: m.MinOSPatchLevel}
	if p.Mode == "" {
		p.Mode = Off
	} else if p.Mode != Off && p.Mode != Preferred && p.Mode != Required {
		return bad("attestation", "%q, want required, preferred or off", m.Attestation)
	}
	for i, h := range m.BootKeys {
		if b, err := hex.DecodeString(h); err == nil && len(b) >= 16 && len(b) <= 64 {
			p.BootKeys = append(p.BootKeys, b)
		} else {
			return bad(fmt.Sprintf("boot_keys[%d]", i), "%q is not 16 to 64 bytes of hex", h)
		}
	}
	if y, mo := m.MinOSPatchLevel/100, m.MinOSPatchLevel%100; m.MinOSPatchLevel != 0 && (y < 2000 || y > 2999 || mo < 1 || mo > 12) {
		return bad("min_os_patch_level", "%d is not YYYYMM", m.MinOSPatchLevel)
	}
	if b, err := hex.DecodeString(m.SerialTagKey); m.SerialTagKey != "" && (err != nil || len(b) < 16 || len(b) > 64) {
		return bad("serial_tag_key", "not 16 to 64 bytes of hex")
	} else if m.SerialTagKey != "" {
		p.SerialTagKey = b
	}
	return p, nil
}

// Policy is the collector's Attestor over collector/attest: the roots the payer
// trusts, each maker's policy, and the status list source.
type Policy struct {
	roots  *attest.Roots
	makers map[string]Maker
	status *attest.Source // nil: no status list
}

// New returns the Attestor of a trust set, the makers' policies (an absent maker is
// off) and a status list source (nil: none).
func New(roots *attest.Roots, makers map[string]Maker, status *attest.Source) *Policy {
	return &Policy{roots: roots, makers: makers, status: status}
}

// Mode implements Attestor.
func (a *Policy) Mode(makerID string) Mode {
	return cmp.Or(a.makers[makerID].Mode, Off)
}

// Lookback bounds how long before a chain's arrival its validity may be checked: the
// factory generates the key, certifies it and keeps the chain; the handset may be sold
// and upload its genesis months later, when the short-lived provisioning intermediates
// of its chain have expired (docs/attestation.md section 3).
const Lookback = 400 * 24 * time.Hour

// Verify implements Attestor: the chain as of the maker certificate's issued_at when
// that is at most Lookback before at (the chain's arrival), else as of at; against the
// genesis key, the challenge that binds it to the certificate's maker_id and
// serial_tag, and the maker's policy.
func (a *Policy) Verify(g *proof.Genesis, at time.Time) *ledger.Attestation {
	p := a.makers[g.Cert.MakerID]
	asOf := at
	if issued := time.Unix(g.Cert.IssuedAt, 0); !issued.After(at) && at.Sub(issued) <= Lookback {
		asOf = issued
	}
	pol := attest.Policy{
		At:            asOf,
		Roots:         a.roots,
		Challenge:     proof.AttestationChallenge(g.Cert.MakerID, g.Cert.SerialTag),
		ExpectedKey:   g.PublicKey.Bytes(),
		BootKeys:      p.BootKeys,
		MinPatchLevel: p.MinPatchLevel,
		SerialTag:     g.Cert.SerialTag[:],
		SerialTagKey:  p.SerialTagKey,
	}
	// No status list here: revocation is decided when claims are computed (Revoked),
	// with the list of that moment, so that neither a stale list nor a later
	// revocation is frozen into the stored verdict.
	r := attest.Verify(g.Attestation, pol)
	return &ledger.Attestation{Accepted: r.Accepted, Reason: r.Reason, Detail: r.Detail, SecurityLevel: r.SecurityLevel,
		OSPatchLevel: r.OSPatchLevel, VerifiedAt: asOf.Unix(), Serials: r.ChainSerials}
}

// Revoked implements Attestor with the source's current list.
func (a *Policy) Revoked(serials []string) (string, bool) {
	if a.status == nil {
		return "", false
	}
	list, _ := a.status.Current()
	for _, s := range serials {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok {
			continue
		}
		if e, listed := list.Lookup(n); listed {
			why := strings.ToLower(e.Status)
			if e.Reason != "" {
				why += " " + strings.ToLower(e.Reason)
			}
			return fmt.Sprintf("%s (certificate serial %s)", why, s), true
		}
	}
	return "", false
}

// StatusStale implements Attestor with the source's stale rule; false without a list.
func (a *Policy) StatusStale(now time.Time) bool {
	return a.status != nil && a.status.Stale(now)
}

// StatusVersion implements Attestor: the moment of the last successful load.
func (a *Policy) StatusVersion() uint64 {
	if a.status == nil {
		return 0
	}
	_, at := a.status.Current()
	return uint64(at.UnixNano())
}

// Build returns the Policy a validated configuration asks for: the trust set (the
// shipped Google roots when google_roots, and every root of the roots files), the
// makers' policies, and the status list source, not loaded yet (nil without
// status_list; the caller refreshes it once, then starts it). With no root at all every
// chain is refused, and a maker whose attestation is required is paid for nothing.
// logf, if not nil, gets a line for each failed load of the list.
func Build(c Config, makers map[string]Maker, now func() time.Time, logf func(string, ...any)) (*Policy, *attest.Source, error) {
	roots := &attest.Roots{}
	if c.GoogleRoots {
		roots = attest.GoogleRoots()
	}
	for i, path := range c.Roots {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("key attestation.roots[%d]: %w", i, err)
		}
		more, err := attest.LoadRoots(b)
		if err != nil {
			return nil, nil, fmt.Errorf("key attestation.roots[%d]: %s: %w", i, path, err)
		}
		roots = roots.Union(more)
	}
	var src *attest.Source
	if c.StatusList != "" {
		var err error
		src, err = attest.NewSource(c.StatusList, attest.SourceOptions{
			Interval: time.Duration(c.StatusRefreshMinutes) * time.Minute,
			MaxAge:   time.Duration(c.StatusMaxAgeHours) * time.Hour,
			Now:      now,
			OnLoad: func(err error) {
				if err != nil && logf != nil {
					logf("amos-collector: attestation status list: %v (the last good list stays in use)", err)
				}
			},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("key attestation.status_list: %w", err)
		}
	}
	return New(roots, makers, src), src, nil
}
