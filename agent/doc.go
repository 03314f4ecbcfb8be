// Package agent measures the owner's use of the phone from its activity sources and
// turns each day of use into a signed record in the store (SPEC §2, §4, §6).
package agent
