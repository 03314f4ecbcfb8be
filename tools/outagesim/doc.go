// Package outagesim models a collector outage for a million handsets at the level of
// each device's retry schedule, with the daemon's real backoff on a virtual clock.
package outagesim
