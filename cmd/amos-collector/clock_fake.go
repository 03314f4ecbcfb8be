//go:build amosfakeclock

package main

import (
	"fmt"
	"io"
	"time"
)

// ClockShiftEnv shifts the clock of a build with the tag amosfakeclock by a Go duration
// (for example 10920h, 455 days): the demo and tests run a collector whose "today" is a
// date they choose. Release builds do not have it (clock.go).
const ClockShiftEnv = "AMOS_COLLECTOR_CLOCK_SHIFT"

// serverClock is the machine's clock plus $AMOS_COLLECTOR_CLOCK_SHIFT, said on log
// when it is set.
func serverClock(getenv func(string) string, log io.Writer) (func() time.Time, error) {
	v := getenv(ClockShiftEnv)
	if v == "" {
		return time.Now, nil
	}
	shift, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("$%s=%q: not a duration such as 8760h: %w", ClockShiftEnv, v, err)
	}
	now := func() time.Time { return time.Now().Add(shift) }
	fmt.Fprintf(log, "amos-collector: clock shifted by %s ($%s, a fake-clock build): it is %s\n",
		shift, ClockShiftEnv, now().UTC().Format(time.RFC3339))
	return now, nil
}
