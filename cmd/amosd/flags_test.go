package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// TestFlagSetMatchesFlag: the command line's flag parser accepts, refuses and says what
// the standard flag package does, for the flags amosd has.
func TestFlagSetMatchesFlag(t *testing.T) {
	for _, args := range [][]string{
		nil, {"status"}, {"--config", "/a.json", "status"}, {"-config=/a.json", "run"}, {"--config=", "x"}, {"--config"},
		{"--json"}, {"-json", "x"}, {"--json=false", "y"}, {"--json=maybe"}, {"--json=", "z"}, {"--data", "/d", "--raw"},
		{"--data=/d", "--json", "--", "--raw"}, {"-"}, {"--", "-x"}, {"---json"}, {"-=x"}, {"--bogus"}, {"-h"}, {"--help"},
		{"-help", "x"}, {"x", "--json"}, {"--raw", "--data"},
	} {
		var c1, c2, d1, d2 string
		var j1, j2, r1, r2 bool
		std := flag.NewFlagSet("t", flag.ContinueOnError)
		std.SetOutput(io.Discard)
		std.StringVar(&c1, "config", "", "")
		std.StringVar(&d1, "data", "", "")
		std.BoolVar(&j1, "json", false, "")
		std.BoolVar(&r1, "raw", false, "")
		mine := newFlagSet()
		mine.StringVar(&c2, "config")
		mine.StringVar(&d2, "data")
		mine.BoolVar(&j2, "json")
		mine.BoolVar(&r2, "raw")
		errStd, errMine := std.Parse(args), mine.Parse(args)
		switch {
		case (errStd == nil) != (errMine == nil):
			t.Errorf("%q: error %v, flag says %v", args, errMine, errStd)
		case errStd != nil && errStd.Error() != errMine.Error() && !(errStd == flag.ErrHelp && errMine == errHelp):
			t.Errorf("%q: error %q, flag says %q", args, errMine, errStd)
		case errStd == nil && (c1 != c2 || d1 != d2 || j1 != j2 || r1 != r2 || !slices.Equal(std.Args(), mine.Args())):
			t.Errorf("%q: %q %q %v %v %q, flag gives %q %q %v %v %q", args, c2, d2, j2, r2, mine.Args(), c1, d1, j1, r1, std.Args())
		}
	}
}
