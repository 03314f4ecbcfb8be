// Package fleetsim simulates fleets of Amos handsets against a real amos-collector, with
// real proof signing and chaining, real bbolt stores where it matters, the daemon's own
// upload step and the real transport client over TLS (month, farm, phantom). The
// handsets a scenario sells are registered with the collector's sales registry, as the
// payer does; farm and phantom sort the claim's per-device outcomes by what each device
// truly is (a confusion table).
package fleetsim
