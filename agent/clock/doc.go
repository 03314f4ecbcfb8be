// Package clock is the daemon's time: the wall clock, CLOCK_BOOTTIME (which counts
// suspended time, as Go's timers do not), the boot id, monotonic timers, and a wall-clock
// alarm that also reports when the clock is set; tests drive their own Clock.
package clock
