// Package benchline writes the measurement lines of the budget benchmarks,
// which tools/benchreport collects and judges: one line per figure on standard
// output,
//
//	BENCH {"name":"idle_rss","value":6123520,"unit":"bytes","note":"..."}
//
// The benchmarks measure and print; they never fail on a figure (a slow machine is not
// a broken build). Only the report compares figures with budgets. The figures of the
// firmware booted under QEMU come in a file instead (HandsetIdle), which `make vm-test`
// writes.
package benchline

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Prefix starts every measurement line.
const Prefix = "BENCH "

// Line is one measured figure.
type Line struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Note  string  `json:"note,omitempty"`
}

// Print writes the line of a figure to standard output.
func Print(name string, value float64, unit, note string) {
	b, err := json.Marshal(Line{Name: name, Value: value, Unit: unit, Note: note})
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(os.Stdout, "%s%s\n", Prefix, b)
}

// Parse returns the figure of a measurement line, or false for any other line.
func Parse(line string) (Line, bool) {
	i := strings.Index(line, Prefix+"{")
	if i < 0 {
		return Line{}, false
	}
	var l Line
	if err := json.Unmarshal([]byte(line[i+len(Prefix):]), &l); err != nil || l.Name == "" {
		return Line{}, false
	}
	return l, true
}

// Quick reports whether BENCH_QUICK=1 asks for the short variants of the long
// measurements (1 minute of idle instead of 10).
func Quick() bool { return os.Getenv("BENCH_QUICK") == "1" }
