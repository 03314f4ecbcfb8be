// Package jsonconfig is the error of a JSON configuration file, which names the file,
// the key and, for syntax, the line and column. Package jsondecode decodes a file into
// a struct with encoding/json (the collector); amosd decodes its own by hand, without
// encoding/json (agent/config/json.go, README.md's budget table binary budget).
package jsonconfig

import (
	"bytes"
	"fmt"
)

// Error names the file, the key and what is wrong with it. Kind is the sentinel of the
// package whose configuration it is, which callers branch on (errors.Is).
type Error struct {
	File    string
	Key     string // dotted path such as "sync.timeout"; "" for the file as a whole
	Line    int    // 1-based, 0 if unknown
	Column  int
	Problem string
	Kind    error // the sentinel callers branch on
	Cause   error // the underlying error (a file that cannot be read), or nil
}

func (e *Error) Error() string {
	s := "config " + e.File
	if e.Line > 0 {
		s += fmt.Sprintf(":%d:%d", e.Line, e.Column)
	}
	if e.Key != "" {
		s += ": key " + e.Key
	}
	return s + ": " + e.Problem
}

// Unwrap gives errors.Is and errors.As both the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// LineCol returns the 1-based line and column of offset off in b.
func LineCol(b []byte, off int) (line, col int) {
	off = min(max(off, 0), len(b))
	line = 1 + bytes.Count(b[:off], []byte("\n"))
	col = off - bytes.LastIndexByte(b[:off], '\n')
	return line, col
}
