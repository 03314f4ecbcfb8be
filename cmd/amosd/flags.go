package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// flagSet parses the few flags of the command line as the standard flag package does
// (-name or --name; -name=value, or -name value for a string; -name=false for a
// bool; "--" ends the flags, so does the first argument that is not one; -h, -help
// and --help ask for help), with its messages, without linking it (README.md's budget table binary
// budget).
type flagSet struct {
	strs  map[string]*string
	bools map[string]*bool
	args  []string
}

// errHelp is the error of -h, -help and --help.
var errHelp = errors.New("flag: help requested")

func newFlagSet() *flagSet {
	return &flagSet{strs: map[string]*string{}, bools: map[string]*bool{}}
}

// StringVar defines a string flag stored in p.
func (f *flagSet) StringVar(p *string, name string) { f.strs[name] = p }

// BoolVar defines a bool flag stored in p.
func (f *flagSet) BoolVar(p *bool, name string) { f.bools[name] = p }

// Parse parses args; the rest is in Args.
func (f *flagSet) Parse(args []string) error {
	for len(args) > 0 {
		a := args[0]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		args = args[1:]
		if a == "--" {
			break
		}
		name := strings.TrimPrefix(a[1:], "-")
		if name == "" || name[0] == '-' || name[0] == '=' {
			return fmt.Errorf("bad flag syntax: %s", a)
		}
		name, value, hasValue := strings.Cut(name, "=")
		if p, ok := f.bools[name]; ok {
			v := true
			if hasValue {
				var err error
				if v, err = strconv.ParseBool(value); err != nil {
					return fmt.Errorf("invalid boolean value %q for -%s: parse error", value, name)
				}
			}
			*p = v
			continue
		}
		p, ok := f.strs[name]
		if !ok {
			if name == "h" || name == "help" {
				return errHelp
			}
			return fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if !hasValue {
			if len(args) == 0 {
				return fmt.Errorf("flag needs an argument: -%s", name)
			}
			value, args = args[0], args[1:]
		}
		*p = value
	}
	f.args = args
	return nil
}

// Args returns the arguments after the flags.
func (f *flagSet) Args() []string { return f.args }

// NArg returns how many arguments follow the flags.
func (f *flagSet) NArg() int { return len(f.args) }

// Arg returns argument i after the flags, "" if there is none.
func (f *flagSet) Arg(i int) string {
	if i < 0 || i >= len(f.args) {
		return ""
	}
	return f.args[i]
}
