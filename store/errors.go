package store

import "errors"

// Sentinel errors callers branch on.
var (
	// ErrInUse means another process holds the store (the lock timed out).
	ErrInUse = errors.New("store is in use by another process")
	// ErrCorrupt means the file fails to open or fails its integrity check. Open
	// answers it by recreating the store; OpenReadOnly reports it.
	ErrCorrupt = errors.New("store is corrupt")
	// ErrNewerFormat means the store's format version (meta/schema) is higher than
	// FormatVersion: a newer amosd wrote it, and this one was installed over it (a
	// downgrade). The file is left exactly as it is: it is never taken for corrupt.
	ErrNewerFormat = errors.New("store was written by a newer amosd")
	// ErrChain means a record handed to Mint does not continue the chain head.
	ErrChain = errors.New("record does not continue the chain head")
	// ErrFull means a write does not fit under max_store_bytes, or on the file system,
	// even after evicting every dead-letter and queued record it was allowed to.
	ErrFull = errors.New("store is full")
	// errValue means a stored value does not decode: the store is corrupt.
	errValue = errors.New("malformed stored value")
	// errNeverWritten marks a file found, once locked, to hold no store: empty, or
	// zeros only where bbolt's first pages would be.
	errNeverWritten = errors.New("never written")
)
