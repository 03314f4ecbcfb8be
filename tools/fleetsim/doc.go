// Package fleetsim simulates fleets of Amos handsets against a real amos-collector, with
// real proof signing and chaining, real bbolt stores where it matters, the daemon's own
// upload step and the real transport client over TLS (month, farm).
package fleetsim
