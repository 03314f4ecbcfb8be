package proof

import (
	"errors"
	"fmt"
)

// Sentinel errors for malformed input. Every decoding error wraps exactly one of them.
var (
	ErrTruncated    = errors.New("truncated")
	ErrTrailing     = errors.New("trailing bytes")
	ErrMagic        = errors.New("bad magic")
	ErrKind         = errors.New("unknown kind")
	ErrFlags        = errors.New("unknown flag bits")
	ErrBodyLength   = errors.New("body length does not fit the kind")
	ErrRange        = errors.New("value out of range")
	ErrDate         = errors.New("malformed date")
	ErrText         = errors.New("malformed text")
	ErrDeviceID     = errors.New("device_id is not the SHA-256 of the public key")
	ErrNotCanonical = errors.New("does not re-encode to the same bytes")
	ErrKeyType      = errors.New("unknown or invalid key type")
	ErrAttestation  = errors.New("malformed attestation chain")
)

// Sentinel errors for signatures and certificates.
var (
	// ErrSignature means a signature (Ed25519, or ECDSA P-256) does not verify.
	ErrSignature = errors.New("bad signature")
	// ErrBadCert means a maker certificate is malformed, names another device key, or
	// is not signed by its maker's key.
	ErrBadCert = errors.New("bad maker certificate")
	// ErrUnknownMaker means a certificate names a maker_id that has no registered key.
	ErrUnknownMaker = errors.New("unknown maker")
)

// Sentinel errors for chain verification.
var (
	ErrChainStart   = errors.New("chain does not start with a genesis of seq 1")
	ErrChainDevice  = errors.New("record belongs to another device")
	ErrChainEpoch   = errors.New("record belongs to another epoch")
	ErrChainSeq     = errors.New("seq is not the head's seq + 1")
	ErrChainPrev    = errors.New("prev_hash is not the hash of the head")
	ErrChainDate    = errors.New("date is not after the chain's last date")
	ErrChainGenesis = errors.New("genesis in the middle of a chain")
)

// Sentinel errors for batches (docs/protocol.md, "Batches on the wire").
var (
	ErrBatchFraming  = errors.New("malformed batch framing")
	ErrBatchTooMany  = errors.New("too many records in batch")
	ErrBatchTooLarge = errors.New("batch too large")
)

// FormatError reports malformed bytes: what was being decoded, which field, where, and
// why. Err is the sentinel callers branch on.
type FormatError struct {
	Object string // "record", "certificate", "genesis body", "activity body", "batch"
	Field  string // the name of the field in docs/protocol.md, or "" for the object as a whole
	Offset int    // byte offset of the field inside the object, -1 if not applicable
	Detail string // the offending value and what was expected
	Err    error  // a sentinel of this package
}

func (e *FormatError) Error() string {
	s := "proof: " + e.Object
	if e.Field != "" {
		s += " field " + e.Field
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	s += ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(object, field string, off int, err error, detail string, args ...any) error {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &FormatError{Object: object, Field: field, Offset: off, Detail: detail, Err: err}
}

// ChainError reports a record that breaks a chain: which record, and why.
type ChainError struct {
	Epoch  uint32
	Seq    uint64
	Err    error
	Detail string
}

func (e *ChainError) Error() string {
	s := fmt.Sprintf("proof: chain record epoch %d seq %d: %v", e.Epoch, e.Seq, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *ChainError) Unwrap() error { return e.Err }
