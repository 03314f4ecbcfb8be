// Package fleetsim simulates fleets of Amos handsets against a real amos-collector, with
// real proof signing and chaining, real bbolt stores where it matters and the real
// transport client over TLS (month, farm), or at the level of each device's retry
// schedule with the agent's real backoff on a virtual clock (outage).
package fleetsim
