package collector

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector/attest"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/proof"
)

// p256Signer returns a deterministic P-256 device key for label.
func p256Signer(t testing.TB, label string) *proof.P256Signer {
	t.Helper()
	s := sha256.Sum256([]byte("amos-collector p256 " + label))
	k, err := proof.NewP256Signer(s[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// attestScene is a maker whose devices' keys are attested by a development authority
// the payer trusts, each device certified for its own serial tag.
type attestScene struct {
	t     *testing.T
	auth  *devattest.Authority
	roots *attest.Roots
	konka maker
	clock *fixedClock
}

func newAttestScene(t *testing.T) *attestScene {
	auth, err := devattest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC), "amos collector test")
	if err != nil {
		t.Fatal(err)
	}
	roots, err := attest.LoadRoots(auth.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	return &attestScene{t: t, auth: auth, roots: roots, konka: newMaker(t, "konka"), clock: &fixedClock{at(2026, time.November, 5, 12)}}
}

// device returns a P-256 device of konka for serial label whose genesis carries the
// chain attest makes for its key (nil: none).
func (s *attestScene) device(label string, attestKey func(d *device) [][]byte) *device {
	d := &device{t: s.t, key: p256Signer(s.t, label), offset: cst}
	d.cert = s.konka.certify(s.t, d.key, label, at(2026, time.September, 1, 0))
	if attestKey != nil {
		d.chain = attestKey(d)
	}
	return d
}

// honest attests d's own key for its own maker and serial tag with o.
func (s *attestScene) honest(o devattest.Options) func(d *device) [][]byte {
	return func(d *device) [][]byte {
		pub, _ := d.key.PublicKey().ECDSA()
		if o.Challenge == nil {
			o.Challenge = proof.AttestationChallenge(d.cert.MakerID, d.cert.SerialTag)
		}
		chain, err := s.auth.Attest(pub, o)
		if err != nil {
			s.t.Fatal(err)
		}
		return chain
	}
}

func (s *attestScene) collector(l ledger.Ledger, mode AttestationMode, status *attest.Source) *Collector {
	policy := NewAttestationPolicy(s.roots, map[string]MakerAttestation{
		"konka": {Mode: mode, BootKeys: [][]byte{devattest.BootKey("amos collector test")}},
	}, status)
	c, err := New(l, Options{Makers: registry(s.konka), Now: s.clock.now, Attestation: policy})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// outcomes returns "label outcome reasons… | attestation" for each device, in order.
func outcomes(t *testing.T, c *Claims, devs map[string]*device, labels []string) []string {
	t.Helper()
	var out []string
	for _, l := range labels {
		d := c.Find(devs[l].id())
		if d == nil {
			t.Fatalf("%s: not in the claim", l)
		}
		out = append(out, fmt.Sprintf("%s %s %s | %s", l, d.Outcome, strings.Join(d.Reasons, ","), d.Attestation))
	}
	return out
}

// TestAttestationRequired: where konka's attestation is required, only the device
// whose key its own handset's hardware attested, for its own serial tag, on a locked
// and verified boot, is paid; every way a maker could fake one is refused with its
// reason. Where it is preferred, the same devices are all paid and one is counted
// attested. A certificate revoked later un-pays the device in the open month.
func TestAttestationRequired(t *testing.T) {
	s := newAttestScene(t)
	replayed := s.device("honest-donor", s.honest(devattest.Options{}))
	devs := map[string]*device{
		"honest":         s.device("honest", s.honest(devattest.Options{})),
		"strongbox":      s.device("strongbox", s.honest(devattest.Options{Level: devattest.StrongBox})),
		"no-chain":       s.device("no-chain", nil),
		"unlocked":       s.device("unlocked", s.honest(devattest.Options{Unlocked: true})),
		"software":       s.device("software", s.honest(devattest.Options{Level: devattest.Software})),
		"other-serial":   s.device("other-serial", s.honest(devattest.Options{Challenge: proof.AttestationChallenge("konka", serial("someone else"))})),
		"replayed-chain": s.device("replayed-chain", func(*device) [][]byte { return replayed.chain }),
		"old-patch":      s.device("old-patch", s.honest(devattest.Options{OSPatchLevel: 202001})),
		"foreign-boot":   s.device("foreign-boot", s.honest(devattest.Options{BootKey: make([]byte, 32)})),
	}
	ed := newDevice(t, "ed25519", func(k proof.Signer) *proof.Certificate {
		return s.konka.certify(t, k, "ed25519", at(2026, time.September, 1, 0))
	})
	devs["ed25519-software-key"] = ed
	labels := slices.Sorted(maps.Keys(devs))
	statusFile := filepath.Join(t.TempDir(), "status.json")
	if err := os.WriteFile(statusFile, []byte(`{"entries":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := attest.NewSource(statusFile, attest.SourceOptions{Now: s.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ledgers(t, func(t *testing.T, open func() ledger.Ledger) {
		l := open()
		c := s.collector(l, AttestationRequired, src)
		var labelsSold []string
		for _, label := range labels {
			d := devs[label]
			d.epoch, d.seq, d.prev = 0, 0, proof.Hash{}
			recs := [][]byte{d.genesis()}
			for day := 1; day <= 12; day++ {
				recs = append(recs, d.active(oct(day)))
			}
			checkVerdicts(t, ingest(t, c, recs...), repeat("accepted", 13)...)
			if label == "ed25519-software-key" {
				labelsSold = append(labelsSold, "ed25519")
			} else {
				labelsSold = append(labelsSold, label)
			}
		}
		registerSales(t, c, "konka", labelsSold...)
		claims, err := c.Claims(mustMonth(t, "2026-10"))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"ed25519-software-key refused not_attested | not_attested",
			"foreign-boot refused attestation_refused,boot_key | refused: boot_key",
			"honest paid  | attested",
			"no-chain refused not_attested | not_attested",
			"old-patch paid  | attested", // konka sets no minimum patch level
			"other-serial refused attestation_refused,challenge | refused: challenge",
			"replayed-chain refused attestation_refused,key_mismatch | refused: key_mismatch",
			"software refused attestation_refused,software_level | refused: software_level",
			"strongbox paid  | attested",
			"unlocked refused attestation_refused,unlocked | refused: unlocked",
		}
		if got := outcomes(t, claims, devs, labels); !slices.Equal(got, want) {
			t.Errorf("outcomes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if r := claims.Rows[0]; r.Paid != 3 || r.Attested != 3 || r.Refused != 7 || r.RefusedReasons[claim.ReasonAttestationRefused] != 5 {
			t.Errorf("row %+v", r)
		}
		rep, err := c.Device(devs["strongbox"].id())
		if err != nil {
			t.Fatal(err)
		}
		if a := rep.Attestation; rep.KeyType != "p256" || a == nil || !a.Accepted || a.SecurityLevel != "StrongBox" || a.VerifiedAt != at(2026, time.September, 1, 0).Unix() || len(a.Serials) != 3 || a.Epoch != 1 {
			t.Errorf("device report: key %s, attestation %+v", rep.KeyType, rep.Attestation)
		}

		// Preferred: attestation decides nothing, the row still counts it.
		pref := s.collector(l, AttestationPreferred, src)
		claims, err = pref.Claims(mustMonth(t, "2026-10"))
		if err != nil {
			t.Fatal(err)
		}
		if r := claims.Rows[0]; r.Paid != 10 || r.Attested != 3 || r.Refused != 0 {
			t.Errorf("preferred: row %+v", r)
		}

		// The authority's intermediate turns up on the status list (a leaked keybox):
		// its devices are unpaid in the open month as soon as the list is reloaded.
		serialHex := attest.SerialKey(s.auth.Intermediate().Cert.SerialNumber)
		list := fmt.Sprintf(`{"entries":{%q:{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}`, serialHex)
		if err := os.WriteFile(statusFile, []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
		s.clock.t = s.clock.t.Add(time.Hour)
		if err := src.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		claims, err = c.Claims(mustMonth(t, "2026-10"))
		if err != nil {
			t.Fatal(err)
		}
		if d := claims.Find(devs["honest"].id()); d.Outcome != "refused" || d.Reasons[0] != "attestation_revoked" || !strings.Contains(d.Attestation, "revoked key_compromise") {
			t.Errorf("after the revocation: %+v", d)
		}
		if r := claims.Rows[0]; r.Paid != 0 || r.Attested != 0 {
			t.Errorf("after the revocation: row %+v", r)
		}
		if rep, err := c.Device(devs["honest"].id()); err != nil || !strings.HasPrefix(rep.AttestationRevoked, "revoked key_compromise") || !rep.Attestation.Accepted {
			t.Errorf("device report after the revocation: %+v, %v", rep, err)
		}
		// Back to the empty list for the next ledger.
		if err := os.WriteFile(statusFile, []byte(`{"entries":{}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		s.clock.t = at(2026, time.November, 5, 12)
		if err := src.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func mustMonth(t testing.TB, s string) Month {
	t.Helper()
	m, err := ParseMonth(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStaleStatusListKeepsMonthsOpen: a month whose moment has passed does not close
// while a maker requires attestation and the status list is stale; it closes, once,
// with the first fresh list. Without a maker that requires attestation it closes.
func TestStaleStatusListKeepsMonthsOpen(t *testing.T) {
	s := newAttestScene(t)
	statusFile := filepath.Join(t.TempDir(), "status.json")
	if err := os.WriteFile(statusFile, []byte(`{"entries":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := attest.NewSource(statusFile, attest.SourceOptions{Now: s.clock.now, MaxAge: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Refresh(context.Background()); err != nil { // loaded 2026-11-05 12:00
		t.Fatal(err)
	}
	d := s.device("honest", s.honest(devattest.Options{}))
	for _, mode := range []AttestationMode{AttestationRequired, AttestationPreferred} {
		t.Run(string(mode), func(t *testing.T) {
			s.clock.t = at(2026, time.November, 5, 12)
			d.epoch, d.seq, d.prev = 0, 0, proof.Hash{}
			c := s.collector(ledger.NewMem(), mode, src)
			recs := [][]byte{d.genesis()}
			for day := 1; day <= 12; day++ {
				recs = append(recs, d.active(oct(day)))
			}
			ingest(t, c, recs...)
			registerSales(t, c, "konka", "honest")
			// October closes 2026-11-11 00:00 +08:00; the list is then 5½ days old.
			s.clock.t = at(2026, time.November, 11, 1)
			cl, err := c.Claims(mustMonth(t, "2026-10"))
			if err != nil {
				t.Fatal(err)
			}
			if mode == AttestationPreferred {
				if cl.Status != "closed" || cl.StatusListStale {
					t.Errorf("preferred: status %s, stale %v; want closed", cl.Status, cl.StatusListStale)
				}
				return
			}
			if cl.Status != "provisional" || !cl.StatusListStale || cl.Rows[0].Paid != 1 {
				t.Errorf("stale list: status %s, stale %v, row %+v; want provisional, stale", cl.Status, cl.StatusListStale, cl.Rows[0])
			}
			if err := src.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			cl, err = c.Claims(mustMonth(t, "2026-10"))
			if err != nil {
				t.Fatal(err)
			}
			if cl.Status != "closed" || cl.StatusListStale || cl.ClosedAt != at(2026, time.November, 11, 0).Unix() || cl.Rows[0].Paid != 1 {
				t.Errorf("fresh list: %+v", cl)
			}
		})
	}
}

// TestAttestationAsOfTheFactory: a chain is checked as of its certificate's issued_at
// (the factory) when that is at most 400 days before it arrives, so that a handset sold
// months after its short-lived provisioning intermediate expired is attested; a chain
// whose intermediate was not valid at the factory is refused, and so is an expired one
// whose certificate claims a moment more than 400 days back (checked as of arrival).
func TestAttestationAsOfTheFactory(t *testing.T) {
	s := newAttestScene(t)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	inter := func(from, to time.Time) *devattest.Intermediate {
		i, err := s.auth.NewIntermediate(nil, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	june := inter(day(2026, time.May, 20), day(2026, time.June, 20))
	for _, tc := range []struct {
		name   string
		issued time.Time
		inter  *devattest.Intermediate
		want   string
	}{
		{"sold five months after the factory", day(2026, time.June, 1), june, "accepted"},
		{"certified after the intermediate expired", day(2026, time.July, 1), june, "expired"},
		{"certified before the intermediate began", day(2026, time.May, 1), june, "not_yet_valid"},
		{"a certificate backdated beyond 400 days", day(2025, time.June, 1), inter(day(2025, time.May, 20), day(2025, time.June, 20)), "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &device{t: t, key: p256Signer(t, tc.name), offset: cst}
			d.cert = s.konka.certify(t, d.key, tc.name, tc.issued)
			d.chain = s.honest(devattest.Options{Intermediate: tc.inter})(d)
			c := s.collector(ledger.NewMem(), AttestationRequired, nil)
			checkVerdicts(t, ingest(t, c, d.genesis()), "accepted")
			rep, err := c.Device(d.id())
			if err != nil {
				t.Fatal(err)
			}
			got := "accepted"
			if !rep.Attestation.Accepted {
				got = rep.Attestation.Reason
			}
			wantAt := tc.issued
			if s.clock.t.Sub(tc.issued) > AttestationLookback {
				wantAt = s.clock.t
			}
			if got != tc.want || rep.Attestation.VerifiedAt != wantAt.Unix() {
				t.Errorf("verdict %s as of %d; want %s as of %d (%+v)", got, rep.Attestation.VerifiedAt, tc.want, wantAt.Unix(), rep.Attestation)
			}
		})
	}
}
