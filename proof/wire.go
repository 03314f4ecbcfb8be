package proof

import "encoding/binary"

// reader walks a byte slice field by field and remembers the first error, so that
// decoders read like the tables of docs/protocol.md.
type reader struct {
	obj string
	b   []byte
	off int
	err error
}

// take returns the next n bytes of field, or nil after recording ErrTruncated.
func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = formatErr(r.obj, field, r.off, ErrTruncated, "need %d bytes, have %d", n, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.take(field, 1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if v := r.take(field, 2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if v := r.take(field, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if v := r.take(field, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// fixed copies the next len(dst) bytes of field into dst.
func (r *reader) fixed(field string, dst []byte) {
	if v := r.take(field, len(dst)); v != nil {
		copy(dst, v)
	}
}

// fail records err for field at the offset where the field started (n bytes back).
func (r *reader) fail(field string, n int, err error, detail string, args ...any) {
	if r.err == nil {
		r.err = formatErr(r.obj, field, r.off-n, err, detail, args...)
	}
}

// end records ErrTrailing if bytes are left over.
func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.err = formatErr(r.obj, "", r.off, ErrTrailing, "%d bytes after the end", len(r.b)-r.off)
	}
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
