// Package claim computes each maker's claim for a month from the ledger: which devices
// are paid, held, refused, unregistered or not eligible and why, and when a month
// closes (docs/eligibility.md).
package claim
