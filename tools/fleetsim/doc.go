// Package fleetsim simulates fleets of Amos handsets against a real amos-collector, with
// real proof signing and chaining, real bbolt stores where it matters, the daemon's own
// upload step and the real transport client over TLS. The handsets it sells are
// registered with the collector's sales registry, as the payer does. The month
// scenario is here; the attacks (farm, phantom) are in tools/fleetsim/attack, on the
// same Fleet, Server and Device.
package fleetsim
