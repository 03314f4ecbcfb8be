package store

import (
	"bytes"
	"testing"
	"time"
)

// FuzzValues feeds every stored-value decoder, the format version included: none may
// panic, and what one accepts must re-encode to the same bytes (the first input byte
// picks the decoder).
func FuzzValues(f *testing.F) {
	var id [16]byte
	copy(id[:], "boot-id-16-bytes")
	f.Add(append([]byte{0}, encodeHead(Head{DeviceID: [32]byte{1}, Epoch: 1, Seq: 9, LastDate: 20261101, MintedAt: 1795000000})...))
	f.Add(append([]byte{1}, encodeTally(Tally{Date: 20261101, UTCOffsetMinutes: -300, InteractiveSeconds: 77, ActiveHours: 3, SavedBootID: id, State: 5})...))
	f.Add(append([]byte{2}, encodeSync(SyncState{LastResult: "503: retry after 60s", BackoffInterval: time.Minute, ServerBootID: id})...))
	f.Add(append([]byte{3}, encodeDead(1795000000, "bad_signature", []byte("record"))...))
	f.Add(append([]byte{4}, encodeRecovery(Recovery{At: 1, CorruptPath: "/data/amos/amosd.db.corrupt-1", Cause: "checksum error", Salvaged: 3})...))
	f.Add(append([]byte{5}, u64key(FormatVersion)...))
	f.Add(append([]byte{6}, encodeOutcome(Outcome{OldEpoch: 1, NewEpoch: 2, Consent: "key_dir"})...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		b := in[1:]
		var again []byte
		switch in[0] % 7 {
		case 0:
			v, err := decodeHead(b)
			if err != nil {
				return
			}
			again = encodeHead(v)
		case 1:
			v, err := decodeTally(b)
			if err != nil {
				return
			}
			again = encodeTally(v)
		case 2:
			v, err := decodeSync(b)
			if err != nil {
				return
			}
			again = encodeSync(v)
		case 3:
			v, err := decodeDead(1, b)
			if err != nil {
				return
			}
			again = encodeDead(v.At, v.Reason, v.Record)
		case 4:
			v, err := decodeRecovery(b)
			if err != nil {
				return
			}
			again = encodeRecovery(v)
		case 5:
			v, err := formatVersion(b)
			if err != nil {
				return
			}
			again = u64key(v)
		case 6:
			v, err := decodeOutcome(b)
			if err != nil {
				return
			}
			again = encodeOutcome(v)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoder %d: re-encoding differs\n in %x\nout %x", in[0]%7, b, again)
		}
	})
}
