package collector

import "errors"

// Sentinel errors that callers branch on.
var (
	// ErrConfig is wrapped by every configuration error (*ConfigError).
	ErrConfig = errors.New("configuration error")
	// ErrCorrupt means the ledger holds a value it cannot decode, or fails its
	// integrity check at open: an operator must look at it, nothing is moved aside.
	ErrCorrupt = errors.New("ledger corrupt")
	// ErrInUse means another process holds the ledger's lock.
	ErrInUse = errors.New("ledger in use by another process")
	// ErrReadOnly means a write was attempted in a read-only transaction or ledger.
	ErrReadOnly = errors.New("ledger transaction is read-only")
	// ErrNotFound means the ledger has no such device.
	ErrNotFound = errors.New("not found")
	// ErrMonth means a month is not of the form YYYY-MM.
	ErrMonth = errors.New("malformed month")
	// ErrClosed means the ledger is closed.
	ErrClosed = errors.New("ledger closed")
)
