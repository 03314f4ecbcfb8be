package collector

import (
	"errors"

	"amos.example/amosd/collector/claim"
)

// Sentinel errors that callers branch on.
var (
	// ErrConfig is wrapped by every configuration error (*ConfigError).
	ErrConfig = errors.New("configuration error")
	// ErrNotFound means the ledger has no such device.
	ErrNotFound = errors.New("not found")
	// ErrMonth means a month is not of the form YYYY-MM.
	ErrMonth = claim.ErrMonth
)
