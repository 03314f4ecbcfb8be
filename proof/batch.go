package proof

import (
	"encoding/binary"
	"math"
)

// Batch limits of docs/protocol.md: at most 256 records and 64 KiB on the wire, prefixes included.
const (
	MaxBatchRecords = 256
	MaxBatchBytes   = 64 << 10
)

// BatchContentType is the media type of a batch (docs/protocol.md).
const BatchContentType = "application/vnd.amos.records"

// BatchSize returns the number of bytes that records take in a batch.
func BatchSize(records [][]byte) int {
	n := 0
	for _, r := range records {
		n += 2 + len(r)
	}
	return n
}

// EncodeBatch frames records for the wire: each preceded by its length as u16. It
// refuses an empty batch and one over the limits of docs/protocol.md.
func EncodeBatch(records [][]byte) ([]byte, error) {
	switch {
	case len(records) == 0:
		return nil, formatErr("batch", "", -1, ErrBatchFraming, "no records")
	case len(records) > MaxBatchRecords:
		return nil, formatErr("batch", "", -1, ErrBatchTooMany, "%d records, at most %d", len(records), MaxBatchRecords)
	}
	size := BatchSize(records)
	if size > MaxBatchBytes {
		return nil, formatErr("batch", "", -1, ErrBatchTooLarge, "%d bytes, at most %d", size, MaxBatchBytes)
	}
	b := make([]byte, 0, size)
	for i, r := range records {
		if len(r) == 0 || len(r) > math.MaxUint16 {
			return nil, formatErr("batch", "record length", len(b), ErrBatchFraming, "record %d is %d bytes", i, len(r))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	return b, nil
}

// DecodeBatch splits a batch into its records, which alias b. It checks the framing and
// the limits only; each record still needs Decode.
func DecodeBatch(b []byte) ([][]byte, error) {
	switch {
	case len(b) == 0:
		return nil, formatErr("batch", "", 0, ErrBatchFraming, "empty")
	case len(b) > MaxBatchBytes:
		return nil, formatErr("batch", "", -1, ErrBatchTooLarge, "%d bytes, at most %d", len(b), MaxBatchBytes)
	}
	var out [][]byte
	for off := 0; off < len(b); {
		if len(out) == MaxBatchRecords {
			return nil, formatErr("batch", "", off, ErrBatchTooMany, "more than %d records", MaxBatchRecords)
		}
		if len(b)-off < 2 {
			return nil, formatErr("batch", "record length", off, ErrBatchFraming, "1 byte left, a length takes 2")
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if n == 0 {
			return nil, formatErr("batch", "record length", off-2, ErrBatchFraming, "record %d has length 0", len(out))
		}
		if len(b)-off < n {
			return nil, formatErr("batch", "record", off, ErrBatchFraming, "record %d is %d bytes, %d left", len(out), n, len(b)-off)
		}
		out = append(out, b[off:off+n:off+n])
		off += n
	}
	return out, nil
}
