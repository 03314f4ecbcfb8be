package ledger

import "errors"

// Sentinel errors that callers branch on.
var (
	// ErrCorrupt means the ledger holds a value it cannot decode, or fails its
	// integrity check at open: an operator must look at it, nothing is moved aside.
	ErrCorrupt = errors.New("ledger corrupt")
	// ErrInUse means another process holds the ledger's lock.
	ErrInUse = errors.New("ledger in use by another process")
	// ErrReadOnly means a write was attempted in a read-only transaction or ledger.
	ErrReadOnly = errors.New("ledger transaction is read-only")
	// ErrClosed means the ledger is closed.
	ErrClosed = errors.New("ledger closed")
	// ErrExists means a write would replace what the ledger keeps for ever (a closed
	// month) or exceed what it keeps (decisions on one device).
	ErrExists = errors.New("ledger already holds it")
	// ErrOldSchema means a read-only open of a ledger that must first be upgraded by
	// an open for writing.
	ErrOldSchema = errors.New("ledger schema must be upgraded")
)
