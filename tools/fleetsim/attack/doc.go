// Package attack plays attacks on the subsidy against a real amos-collector, beside an
// honest fleet of sold handsets (tools/fleetsim): a maker's farm of scripted phones and
// registry tricks (farm), and a maker's phantom keys with made-up or stolen serial tags
// and, where attestation is on, keys without a chain the payer trusts for its own
// registered serial tags (phantom). Each sorts the claim's per-device outcomes by what
// every device truly is, a confusion table, and checks that nothing of the attack is
// paid.
package attack
