// Package keydesc parses and encodes the Android Key Attestation key description, the
// X.509 extension (OID 1.3.6.1.4.1.11129.2.1.17) that KeyMint puts in an attested key's
// certificate.
//
// The schema is AOSP's (hardware/interfaces/security/keymint/aidl/.../KeyCreationResult.aidl,
// mirrored on developer.android.com/privacy-and-security/security-key-attestation):
//
//	KeyDescription ::= SEQUENCE {
//	    attestationVersion         INTEGER,
//	    attestationSecurityLevel   SecurityLevel,   -- ENUMERATED
//	    keyMintVersion             INTEGER,         -- keymasterVersion before KeyMint
//	    keyMintSecurityLevel       SecurityLevel,
//	    attestationChallenge       OCTET STRING,
//	    uniqueId                   OCTET STRING,
//	    softwareEnforced           AuthorizationList,
//	    hardwareEnforced           AuthorizationList }
//
// An AuthorizationList is a SEQUENCE of context-specific EXPLICIT tagged elements, all
// optional, in strictly increasing tag order (DER); tags above 30 use the high-tag-number
// form. Parse walks them with encoding/asn1 RawValues, decodes the tags it knows (see
// AuthorizationList) and keeps the others, undecoded, in Extra so that Marshal writes
// them back.
package keydesc
