// Package proof encodes, decodes, signs and verifies amosd's activity records, maker
// certificates and record batches exactly as docs/protocol.md define them.
//
// Every decoder is strict: it accepts only the one canonical byte form of a value and
// answers anything else with a *FormatError that wraps one sentinel error per cause, so
// that callers can branch with errors.Is. Nothing in this package touches files, clocks
// or the network.
package proof
