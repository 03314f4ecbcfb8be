// Package attest is the payer's verifier of Android Key Attestation chains: it decides
// whether a device key was generated in a handset's secure hardware (TEE or StrongBox),
// under a trusted root, unrevoked, with a locked, verified boot (docs/attestation.md).
//
// # What Verify checks, in order
//
// Verify(chain, policy) takes the DER certificates of a chain, leaf first, root last, and
// answers a Result whose Reason is the first rule that fails (the Reason* constants):
//
//  1. the chain's shape: not empty, at least a leaf and a root, at most Policy.MaxChain
//     (default 8) certificates, each one parsable DER;
//  2. the root: the last certificate's public key (its SubjectPublicKeyInfo) is one of
//     Policy.Roots (default: Google's hardware attestation roots shipped in roots/). Only
//     the key counts, as Google recommends: the chain's copy of the root may be any
//     re-issue of that key, and its own validity is not checked;
//  3. the links: each certificate names the next one as its issuer and is signed by its
//     key (x509.Certificate.CheckSignature per link, not x509.Verify: attestation keys
//     sign leaves without CA constraints, as Google's verifier accepts);
//  4. validity as of Policy.At for every certificate between the leaf and the root. The
//     leaf's dates are not checked: the device sets them (Google's verifier skips them
//     too). Policy.At is the moment the collector FIRST received the genesis that
//     carries the chain, not the moment of a later re-verification: Remote Key
//     Provisioning intermediates live about a month, and a chain valid on arrival stays
//     valid for that device;
//  5. revocation: when Policy.Status is set, no certificate's serial is on the status
//     list (REVOKED or SUSPENDED); a stale list (Policy.StatusStale) refuses first;
//  6. the key description (OID 1.3.6.1.4.1.11129.2.1.17, package internal/keydesc): in
//     the leaf, and in no other certificate (chains of ATTEST_KEY keys are refused, as by
//     Google's verifier); both security levels TrustedEnvironment or StrongBox, equal;
//     origin GENERATED (an imported key existed outside the hardware); the leaf's key is
//     Policy.ExpectedKey (the genesis key); attestationChallenge is Policy.Challenge;
//     the RootOfTrust says deviceLocked and Verified, with a verifiedBootKey among
//     Policy.BootKeys; osPatchLevel at least Policy.MinPatchLevel; attested IDs match
//     the serial tag (Policy.SerialTag, Policy.SerialTagKey).
//
// A check whose policy value is unset (nil Challenge, nil ExpectedKey, no BootKeys, no
// Status, no SerialTagKey) is not made; the Result reports the value and says it was not
// checked. The fields of a refused Result are reported for diagnosis only: they are
// not vouched for.
//
// # Status lists
//
// ParseStatusList reads Google's revocation status list format; a Source keeps one
// fresh from a file or an https URL (Start, Refresh, Current, Age, Stale).
package attest
