//go:build !amosfakeclock

package main

import (
	"io"
	"time"
)

// serverClock is the collector's clock: the machine's. Only a build with the tag
// amosfakeclock (clock_fake.go), made for the demo and tests, can shift it.
func serverClock(func(string) string, io.Writer) (func() time.Time, error) {
	return time.Now, nil
}
