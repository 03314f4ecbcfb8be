package attack

import (
	"fmt"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/attest"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/proof"
	"amos.example/amosd/tools/fleetsim"
)

// The phantom kinds of an attested scenario: keys the phantom maker certifies for the
// serial tags of its own handsets that are registered as sold but never report (in a
// drawer, or never set up). The registry alone pays them; only attestation can tell
// that no handset's hardware holds their keys.
const (
	// PhantomUnattested: a P-256 key made in software, its genesis without a chain.
	PhantomUnattested = "phantom-unattested"
	// PhantomOwnRoot: a P-256 key made in software with a flawless chain (TEE, locked,
	// verified boot, the right challenge) issued from the phantom maker's own root,
	// which the payer does not trust.
	PhantomOwnRoot = "phantom-own-root"
	// PhantomReplayedChain: a P-256 key made in software with the chain of a real
	// honest handset, copied from its genesis (which attests that handset's key).
	PhantomReplayedChain = "phantom-replayed-chain"
)

// dormantKinds are the attested scenario's phantom kinds, in the order they are dealt.
var dormantKinds = [...]string{PhantomUnattested, PhantomOwnRoot, PhantomReplayedChain}

// Attesting reports whether a mode makes the phantom scenario an attested one: "" and
// off do not.
func Attesting(mode collector.AttestationMode) bool {
	return mode != "" && mode != collector.AttestationOff
}

// AttestationPolicy is an in-process collector's attestation policy for the phantom
// scenario: the authority's root is the one root it trusts, and every maker has mode,
// with the authority's boot key as the one approved (devattest.BootKey of its name).
func AttestationPolicy(a *devattest.Authority, mode collector.AttestationMode, makers []string) (*collector.AttestationPolicy, error) {
	roots, err := attest.LoadRoots(a.RootPEM())
	if err != nil {
		return nil, fmt.Errorf("fleetsim: the development root: %w", err)
	}
	policy := map[string]collector.MakerAttestation{}
	for _, m := range makers {
		policy[m] = collector.MakerAttestation{Mode: mode, BootKeys: [][]byte{devattest.BootKey(a.Name())}}
	}
	return collector.NewAttestationPolicy(roots, policy, nil), nil
}

// attestedKey gives spec i a P-256 key derived from seed and, unless a is nil, the
// chain that a issues for it, bound to the spec's maker and serial tag (what a
// handset's keystore returns for `amosd identity`), with bootKey (nil: a's own).
func attestedKey(s *fleetsim.FleetSpec, seed uint64, i int, a *devattest.Authority, bootKey []byte) error {
	k, err := fleetsim.DeviceP256Key(seed, i)
	if err != nil {
		return err
	}
	s.Key = k
	if a == nil {
		return nil
	}
	pub, _ := k.PublicKey().ECDSA()
	s.Chain, err = a.Attest(pub, devattest.Options{Challenge: proof.AttestationChallenge(s.Maker, s.Serial), BootKey: bootKey})
	if err != nil {
		return fmt.Errorf("fleetsim: attesting device %d: %w", i, err)
	}
	return nil
}
