// Package boltguard turns the panics and memory faults of bbolt on a damaged file into
// errors, for the device's store and the collector's ledger alike.
package boltguard

import (
	"fmt"
	"runtime/debug"
)

// PanicError is a panic or memory fault of bbolt on a damaged file (a truncated file
// read through mmap, a corrupt page), caught by Run.
type PanicError struct{ Value any }

func (p *PanicError) Error() string { return fmt.Sprintf("bbolt failed on the file: %v", p.Value) }

// Run runs fn in this goroutine, turning its panics and memory faults into a
// *PanicError. A fault in another goroutine (bbolt's own) is not caught: callers
// read the file in the goroutine that calls Run.
func Run(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{r}
		}
	}()
	return fn()
}
