// Package devattest is a DEVELOPMENT attestation authority, NEVER for production: it
// issues Android-Key-Attestation-shaped chains (leaf with the key description, a
// provisioning intermediate, a self-signed root) for keys it never saw in any secure
// hardware, so that amos-keystored, the demo, the fleet simulator and tests have chains
// to verify; a payer must never trust its root.
package devattest
