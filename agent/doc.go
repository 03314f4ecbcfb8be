// Package agent measures the owner's use of the phone from its activity sources and
// turns each day of use into a signed record in the store (docs/protocol.md, docs/eligibility.md).
package agent
