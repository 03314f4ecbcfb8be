package proof

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/proof from the fixed seeds")

const goldenDir = "../testdata/proof"

// goldenKeys is testdata/proof/golden.json: the values another implementation needs to
// check its own encoder against the vectors.
type goldenKeys struct {
	MakerPublicKey  string   `json:"maker_public_key"`
	DevicePublicKey string   `json:"device_public_key"`
	DeviceID        string   `json:"device_id"`
	CertSHA256      string   `json:"cert_sha256"`
	RecordHashes    []string `json:"record_hashes"`

	// The P-256 device of genesis-p256.bin and activity-p256-20261001.bin.
	P256DevicePublicKey string   `json:"p256_device_public_key"`
	P256DeviceID        string   `json:"p256_device_id"`
	P256CertSHA256      string   `json:"p256_cert_sha256"`
	P256RecordHashes    []string `json:"p256_record_hashes"`
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// resign replaces the signature of an encoded record with s's signature of its bytes, so
// that an invalid vector is wrong for its stated cause only.
func resign(s Signer, b []byte) []byte {
	n := len(b) - SignatureSize
	sig, _ := s.Sign(b[:n])
	copy(b[n:], sig[:])
	return b
}

func put16(b []byte, off int, v uint16) []byte {
	b = clone(b)
	binary.BigEndian.PutUint16(b[off:], v)
	return b
}

func put32(b []byte, off int, v uint32) []byte {
	b = clone(b)
	binary.BigEndian.PutUint32(b[off:], v)
	return b
}

func put64(b []byte, off int, v uint64) []byte {
	b = clone(b)
	binary.BigEndian.PutUint64(b[off:], v)
	return b
}

func mustBatch(records ...[]byte) []byte {
	var b []byte
	for _, r := range records {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	return b
}

func mustSign(t testing.TB, s Signer, r *Record) []byte {
	t.Helper()
	b, err := r.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenFiles returns every valid golden file by name.
func goldenFiles(t testing.TB, f *fixture) map[string][]byte {
	keys := goldenKeys{
		MakerPublicKey:  f.maker.PublicKey().String(),
		DevicePublicKey: f.device.PublicKey().String(),
		DeviceID:        f.device.PublicKey().DeviceID().String(),
		CertSHA256:      HashRecord(f.certBytes).String(),
	}
	for _, r := range f.chain() {
		keys.RecordHashes = append(keys.RecordHashes, HashRecord(r).String())
	}
	keys.P256DevicePublicKey = f.p256.PublicKey().String()
	keys.P256DeviceID = f.p256.PublicKey().DeviceID().String()
	keys.P256CertSHA256 = HashRecord(f.p256CertBytes).String()
	for _, r := range append([][]byte{f.p256Genesis}, f.p256Days...) {
		keys.P256RecordHashes = append(keys.P256RecordHashes, HashRecord(r).String())
	}
	js, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := EncodeBatch(f.chain())
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"golden.json":                append(js, '\n'),
		"maker.seed":                 seed("maker key"),
		"device.seed":                seed("device key"),
		"cert.bin":                   f.certBytes,
		"genesis.bin":                f.genesis,
		"activity-20261001.bin":      f.days[0],
		"chain31.batch":              batch,
		"p256.scalar":                seed("p256 device key"),
		"cert-p256.bin":              f.p256CertBytes,
		"genesis-p256.bin":           f.p256Genesis,
		"activity-p256-20261001.bin": f.p256Days[0],
	}
}

// vector is one invalid golden file and the check that must refuse it.
type vector struct {
	name  string
	check string // record, record-signature, cert, cert-signature, batch, chain
	want  error
	make  func(t testing.TB, f *fixture) []byte
}

// Offsets inside the golden genesis: header, public key, cert length, cert.
const (
	offGenesisCert     = HeaderSize + PublicKeySize + 2
	offGenesisCertKey  = offGenesisCert + 4
	offActivityDate    = HeaderSize
	offActivityOffset  = HeaderSize + 4
	offActivitySeconds = HeaderSize + 6
	offActivityHours   = HeaderSize + 14
)

var invalidVectors = []vector{
	// Records that Decode must refuse, each signed correctly so only the cause is wrong.
	{"record-bad-magic", "record", ErrMagic, func(t testing.TB, f *fixture) []byte {
		b := clone(f.days[0])
		copy(b, "AMR2")
		return resign(f.device, b)
	}},
	{"record-unknown-kind", "record", ErrKind, func(t testing.TB, f *fixture) []byte {
		b := clone(f.days[0])
		b[offKind] = 4
		return resign(f.device, b)
	}},
	{"record-unknown-flags", "record", ErrFlags, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put16(f.days[0], offFlags, 0x0010))
	}},
	{"record-truncated", "record", ErrTruncated, func(t testing.TB, f *fixture) []byte {
		return clone(f.days[0][:150])
	}},
	{"record-trailing-bytes", "record", ErrTrailing, func(t testing.TB, f *fixture) []byte {
		return append(clone(f.days[0]), 0)
	}},
	{"record-body-length", "record", ErrBodyLength, func(t testing.TB, f *fixture) []byte {
		d := f.days[0]
		b := append(clone(d[:HeaderSize+ActivityBodySize-1]), d[HeaderSize+ActivityBodySize:]...)
		return resign(f.device, put16(b, offBodyLen, ActivityBodySize-1))
	}},
	{"record-epoch-zero", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put32(f.days[0], offEpoch, 0))
	}},
	{"record-seq-zero", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put64(f.days[0], offSeq, 0))
	}},
	{"record-minted-at-overflow", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put64(f.days[0], offMintedAt, 1<<63))
	}},
	{"activity-seq-one", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put64(f.days[0], offSeq, 1))
	}},
	{"activity-date-20261131", "record", ErrDate, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put32(f.days[0], offActivityDate, 20261131))
	}},
	{"activity-date-month-13", "record", ErrDate, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put32(f.days[0], offActivityDate, 20261301))
	}},
	{"activity-date-zero", "record", ErrDate, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put32(f.days[0], offActivityDate, 0))
	}},
	{"activity-utc-offset", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put16(f.days[0], offActivityOffset, 15*60))
	}},
	{"activity-interactive-seconds", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		b := put32(f.days[0], offActivityHours, AllHours)
		return resign(f.device, put32(b, offActivitySeconds, 86401))
	}},
	{"activity-seconds-beyond-hours", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		b := put32(f.days[0], offActivityHours, 0b11)
		return resign(f.device, put32(b, offActivitySeconds, 7201))
	}},
	{"activity-hour-bit-24", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put32(f.days[0], offActivityHours, 1<<24|1<<10))
	}},
	{"genesis-seq-two", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		return resign(f.device, put64(f.genesis, offSeq, 2))
	}},
	{"genesis-prev-hash", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		b := clone(f.genesis)
		b[offPrevHash] = 1
		return resign(f.device, b)
	}},
	{"genesis-reason-zero", "record", ErrRange, func(t testing.TB, f *fixture) []byte {
		b := clone(f.genesis)
		b[len(b)-SignatureSize-1] = 0
		return resign(f.device, b)
	}},
	{"genesis-device-id", "record", ErrDeviceID, func(t testing.TB, f *fixture) []byte {
		b := clone(f.genesis)
		id := f.other.PublicKey().DeviceID()
		copy(b[offDeviceID:], id[:])
		return resign(f.device, b)
	}},
	{"genesis-cert-malformed", "record", ErrBadCert, func(t testing.TB, f *fixture) []byte {
		b := clone(f.genesis)
		copy(b[offGenesisCert:], "XMC1")
		return resign(f.device, b)
	}},
	{"genesis-cert-other-key", "record", ErrBadCert, func(t testing.TB, f *fixture) []byte {
		b := clone(f.genesis)
		copy(b[offGenesisCertKey:], f.other.PublicKey().Bytes())
		return resign(f.device, b)
	}},
	{"genesis-body-length", "record", ErrBodyLength, func(t testing.TB, f *fixture) []byte {
		b := clone(f.genesis)
		n := binary.BigEndian.Uint16(b[offGenesisCert-2:])
		return resign(f.device, put16(b, offGenesisCert-2, n+1))
	}},

	// Extended geneses (kind 3, docs/protocol.md 4.4a) that Decode must refuse.
	{"genesis-ext-key-type-zero", "record", ErrKeyType, func(t testing.TB, f *fixture) []byte {
		b := clone(f.p256Genesis)
		b[HeaderSize] = 0
		return resignP256(f, b)
	}},
	{"genesis-ext-key-not-on-curve", "record", ErrKeyType, func(t testing.TB, f *fixture) []byte {
		b := clone(f.p256Genesis)
		b[HeaderSize+1+64] ^= 0x01 // the last byte of Y
		return resignP256(f, b)
	}},
	{"genesis-ext-ed25519-no-chain", "record", ErrNotCanonical, func(t testing.TB, f *fixture) []byte {
		// The golden Ed25519 genesis in the kind-3 layout: kind 1 is its only form.
		g := f.genesisRecord().Body.(*Genesis)
		body := append([]byte{byte(KeyEd25519)}, g.appendBody(nil)[:PublicKeySize+2+len(f.certBytes)]...)
		body = append(body, 0, byte(ReasonFirstStart))
		return extGenesis(f, f.device, body)
	}},
	{"genesis-attestation-too-many", "record", ErrAttestation, func(t testing.TB, f *fixture) []byte {
		chain := make([][]byte, MaxAttestationCerts+1)
		for i := range chain {
			chain[i] = f.attestation[i%2]
		}
		return extGenesis(f, f.p256, genesisBodyWithChain(f, chain))
	}},
	{"genesis-attestation-not-der", "record", ErrAttestation, func(t testing.TB, f *fixture) []byte {
		bad := clone(f.attestation[0])
		bad[0] = 0x31 // a SET, not a SEQUENCE
		return extGenesis(f, f.p256, genesisBodyWithChain(f, [][]byte{bad, f.attestation[1]}))
	}},
	{"genesis-attestation-too-large", "record", ErrAttestation, func(t testing.TB, f *fixture) []byte {
		big := append([]byte{0x30, 0x82, 0x22, 0x00}, make([]byte, 0x2200)...) // 8708 bytes
		return extGenesis(f, f.p256, genesisBodyWithChain(f, [][]byte{big, big}))
	}},
	{"genesis-attestation-count-past-end", "record", ErrBodyLength, func(t testing.TB, f *fixture) []byte {
		body := genesisBodyWithChain(f, f.attestation)
		body[1+65+2+len(f.p256CertBytes)] = 3 // three certificates announced, two present
		return extGenesis(f, f.p256, body)
	}},
	{"cert-p256-key-not-on-curve", "cert", ErrKeyType, func(t testing.TB, f *fixture) []byte {
		b := clone(f.p256CertBytes)
		b[4+64] ^= 0x01
		n := len(b) - SignatureSize
		sig, _ := f.maker.Sign(b[:n])
		copy(b[n:], sig[:])
		return b
	}},
	{"record-p256-high-s", "record-signature-p256", ErrSignature, func(t testing.TB, f *fixture) []byte {
		// The same signature with s replaced by n−s: valid ECDSA, but not the one
		// canonical (low-s) form, which would give the record a second hash.
		b := clone(f.p256Days[0])
		n := elliptic.P256().Params().N
		sv := new(big.Int).SetBytes(b[len(b)-32:])
		new(big.Int).Sub(n, sv).FillBytes(b[len(b)-32:])
		return b
	}},
	{"record-p256-signed-by-other", "record-signature-p256", ErrSignature, func(t testing.TB, f *fixture) []byte {
		other, err := NewP256Signer(seed("p256 other key"))
		if err != nil {
			t.Fatal(err)
		}
		return resign(other, clone(f.p256Days[0]))
	}},

	// Records that decode but whose signature must not verify.
	{"record-bad-signature", "record-signature", ErrSignature, func(t testing.TB, f *fixture) []byte {
		b := clone(f.days[0])
		b[len(b)-1] ^= 0x01
		return b
	}},
	{"record-tampered-seconds", "record-signature", ErrSignature, func(t testing.TB, f *fixture) []byte {
		return put32(f.days[0], offActivitySeconds, 3600)
	}},

	// Certificates that ParseCertificate must refuse.
	{"cert-bad-magic", "cert", ErrMagic, func(t testing.TB, f *fixture) []byte {
		b := clone(f.certBytes)
		copy(b, "AMC9")
		return b
	}},
	{"cert-truncated", "cert", ErrTruncated, func(t testing.TB, f *fixture) []byte {
		return clone(f.certBytes[:len(f.certBytes)-1])
	}},
	{"cert-trailing-bytes", "cert", ErrTrailing, func(t testing.TB, f *fixture) []byte {
		return append(clone(f.certBytes), 0)
	}},
	{"cert-maker-id-empty", "cert", ErrRange, func(t testing.TB, f *fixture) []byte {
		return certWith(t, f, func(b []byte, idOff int) []byte {
			return append(append(clone(b[:idOff]), 0), b[idOff+1+int(b[idOff]):]...)
		})
	}},
	{"cert-maker-id-uppercase", "cert", ErrText, func(t testing.TB, f *fixture) []byte {
		return certWith(t, f, func(b []byte, idOff int) []byte {
			b[idOff+1] = 'A'
			return b
		})
	}},
	{"cert-model-too-long", "cert", ErrRange, func(t testing.TB, f *fixture) []byte {
		return certWith(t, f, func(b []byte, idOff int) []byte {
			m := idOff + 1 + int(b[idOff])
			long := append([]byte{MaxModelLen + 1}, bytes.Repeat([]byte("x"), MaxModelLen+1)...)
			return append(append(clone(b[:m]), long...), b[m+1+int(b[m]):]...)
		})
	}},
	{"cert-model-not-utf8", "cert", ErrText, func(t testing.TB, f *fixture) []byte {
		return certWith(t, f, func(b []byte, idOff int) []byte {
			m := idOff + 1 + int(b[idOff])
			b[m+1] = 0xff
			return b
		})
	}},
	{"cert-issued-at-overflow", "cert", ErrRange, func(t testing.TB, f *fixture) []byte {
		return certWith(t, f, func(b []byte, _ int) []byte {
			binary.BigEndian.PutUint64(b[len(b)-SignatureSize-8:], 1<<63)
			return b
		})
	}},
	{"cert-wrong-maker-key", "cert-signature", ErrBadCert, func(t testing.TB, f *fixture) []byte {
		c := *f.cert
		b, err := c.Sign(f.other)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},

	// Batches that DecodeBatch must refuse.
	{"batch-empty", "batch", ErrBatchFraming, func(t testing.TB, f *fixture) []byte { return []byte{} }},
	{"batch-zero-length", "batch", ErrBatchFraming, func(t testing.TB, f *fixture) []byte {
		return append(mustBatch(f.genesis), 0, 0)
	}},
	{"batch-truncated-record", "batch", ErrBatchFraming, func(t testing.TB, f *fixture) []byte {
		b := mustBatch(f.genesis, f.days[0])
		return b[:len(b)-100]
	}},
	{"batch-dangling-byte", "batch", ErrBatchFraming, func(t testing.TB, f *fixture) []byte {
		return append(mustBatch(f.genesis), 0)
	}},
	{"batch-too-many", "batch", ErrBatchTooMany, func(t testing.TB, f *fixture) []byte {
		recs := make([][]byte, MaxBatchRecords+1)
		for i := range recs {
			recs[i] = f.days[i%len(f.days)]
		}
		return mustBatch(recs...)
	}},
	{"batch-too-large", "batch", ErrBatchTooLarge, func(t testing.TB, f *fixture) []byte {
		return mustBatch(bytes.Repeat([]byte{0xA5}, MaxBatchBytes-1))
	}},

	// Batches of records that decode one by one but do not form a chain.
	{"chain-no-genesis", "chain", ErrChainStart, func(t testing.TB, f *fixture) []byte {
		return mustBatch(f.days[:3]...)
	}},
	{"chain-seq-gap", "chain", ErrChainSeq, func(t testing.TB, f *fixture) []byte {
		return mustBatch(f.genesis, f.days[0], f.days[1], f.days[3])
	}},
	{"chain-prev-hash", "chain", ErrChainPrev, func(t testing.TB, f *fixture) []byte {
		bad := mustSign(t, f.device, f.dayRecord(1, HashRecord(f.genesis)))
		return mustBatch(f.genesis, f.days[0], bad)
	}},
	{"chain-date-not-increasing", "chain", ErrChainDate, func(t testing.TB, f *fixture) []byte {
		r := f.dayRecord(1, HashRecord(f.days[0]))
		r.Body.(*ActivityDay).Date = NewDate(2026, time.October, 1)
		return mustBatch(f.genesis, f.days[0], mustSign(t, f.device, r))
	}},
	{"chain-second-genesis", "chain", ErrChainGenesis, func(t testing.TB, f *fixture) []byte {
		return mustBatch(f.genesis, f.days[0], f.genesis)
	}},
	{"chain-other-device", "chain", ErrChainDevice, func(t testing.TB, f *fixture) []byte {
		r := f.dayRecord(0, HashRecord(f.genesis))
		r.DeviceID = f.other.PublicKey().DeviceID()
		return mustBatch(f.genesis, mustSign(t, f.other, r))
	}},
	{"chain-other-epoch", "chain", ErrChainEpoch, func(t testing.TB, f *fixture) []byte {
		r := f.dayRecord(0, HashRecord(f.genesis))
		r.Epoch = 2
		return mustBatch(f.genesis, mustSign(t, f.device, r))
	}},
	{"chain-forged-signature", "chain", ErrSignature, func(t testing.TB, f *fixture) []byte {
		r := f.dayRecord(0, HashRecord(f.genesis))
		b, err := r.SignedBytes()
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := f.other.Sign(b)
		return mustBatch(f.genesis, append(b, sig[:]...))
	}},
	{"chain-unknown-maker", "chain", ErrUnknownMaker, func(t testing.TB, f *fixture) []byte {
		c := *f.cert
		c.MakerID = "nobody"
		return mustBatch(genesisWithCert(t, f, &c, f.other))
	}},
	{"chain-cert-not-signed-by-maker", "chain", ErrBadCert, func(t testing.TB, f *fixture) []byte {
		c := *f.cert
		return mustBatch(genesisWithCert(t, f, &c, f.other))
	}},
}

// resignP256 re-signs an edited P-256 record with the P-256 device key.
func resignP256(f *fixture, b []byte) []byte { return resign(f.p256, b) }

// genesisBodyWithChain returns the body of the golden P-256 genesis with another chain.
func genesisBodyWithChain(f *fixture, chain [][]byte) []byte {
	g := *f.p256GenesisRecord(nil).Body.(*Genesis)
	g.Attestation = chain
	return g.appendBody(nil)
}

// extGenesis returns the golden genesis header as kind 3 around body, signed by s.
func extGenesis(f *fixture, s Signer, body []byte) []byte {
	b := clone(f.p256Genesis[:HeaderSize])
	copy(b[offDeviceID:], func() []byte { id := s.PublicKey().DeviceID(); return id[:] }())
	binary.BigEndian.PutUint16(b[offBodyLen:], uint16(len(body)))
	b = append(b, body...)
	return resign(s, append(b, make([]byte, SignatureSize)...))
}

// certWith re-encodes the golden certificate through edit, which gets the bytes and the
// offset of the maker_id length, and re-signs the result with the maker key.
func certWith(t testing.TB, f *fixture, edit func(b []byte, idOff int) []byte) []byte {
	b := edit(clone(f.certBytes), 4+32+32)
	n := len(b) - SignatureSize
	sig, _ := f.maker.Sign(b[:n])
	copy(b[n:], sig[:])
	return b
}

// genesisWithCert returns the golden genesis carrying c, signed as a certificate by by.
func genesisWithCert(t testing.TB, f *fixture, c *Certificate, by Signer) []byte {
	if _, err := c.Sign(by); err != nil {
		t.Fatal(err)
	}
	g := f.genesisRecord()
	g.Body.(*Genesis).Cert = c
	return mustSign(t, f.device, g)
}

// checkVector runs the check a vector names and returns its error.
func checkVector(f *fixture, check string, b []byte) error {
	switch check {
	case "record":
		_, err := Decode(b)
		return err
	case "record-signature":
		if _, err := Decode(b); err != nil {
			return errors.Join(errors.New("decode should pass"), err)
		}
		return VerifyEncoded(b, f.device.PublicKey())
	case "record-signature-p256":
		if _, err := Decode(b); err != nil {
			return errors.Join(errors.New("decode should pass"), err)
		}
		return VerifyEncoded(b, f.p256.PublicKey())
	case "cert":
		_, err := ParseCertificate(b)
		return err
	case "cert-signature":
		c, err := ParseCertificate(b)
		if err != nil {
			return errors.Join(errors.New("parse should pass"), err)
		}
		return c.Verify(f.maker.PublicKey())
	case "batch":
		_, err := DecodeBatch(b)
		return err
	case "chain":
		recs, err := DecodeBatch(b)
		if err != nil {
			return errors.Join(errors.New("batch should decode"), err)
		}
		_, err = VerifyChain(recs, f.makers)
		return err
	}
	panic("unknown check " + check)
}

func TestGoldenFiles(t *testing.T) {
	f := newFixture(t)
	want := goldenFiles(t, f)
	for _, v := range invalidVectors {
		want[filepath.Join("invalid", v.name+".bin")] = v.make(t, f)
	}
	if *update {
		if err := os.RemoveAll(filepath.Join(goldenDir, "invalid")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(goldenDir, "invalid"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %d golden files to %s", len(want), goldenDir)
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Errorf("%v (regenerate on purpose with: go test ./proof -run TestGoldenFiles -update)", err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s: the encoder no longer produces the golden bytes (%d bytes on file, %d now)", name, len(got), len(b))
		}
	}
	// No stray files: every invalid vector on disk is one the table checks.
	entries, err := os.ReadDir(filepath.Join(goldenDir, "invalid"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == expectedFile {
			continue
		}
		if _, ok := want[filepath.Join("invalid", e.Name())]; !ok {
			t.Errorf("invalid/%s is not in the table of invalid vectors", e.Name())
		}
	}
}

// TestInvalidVectors reads every invalid file from disk and checks it is refused for
// exactly its stated cause.
func TestInvalidVectors(t *testing.T) {
	f := newFixture(t)
	seen := map[string]bool{}
	for _, v := range invalidVectors {
		t.Run(v.name, func(t *testing.T) {
			if seen[v.name] {
				t.Fatalf("duplicate vector name %s", v.name)
			}
			seen[v.name] = true
			b, err := os.ReadFile(filepath.Join(goldenDir, "invalid", v.name+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			err = checkVector(f, v.check, b)
			if !errors.Is(err, v.want) {
				t.Fatalf("%s check: got %v, want an error wrapping %q", v.check, err, v.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// expectedFile, in testdata/proof/invalid, gives each vector's expected collector answer
// (checked by the collector's tests) and the error that refuses it (checked here).
const expectedFile = "expected.json"

// TestInvalidVectorsExpected: expected.json lists every invalid vector once, with the
// check that refuses it and that check's error message.
func TestInvalidVectorsExpected(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(goldenDir, "invalid", expectedFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []struct {
			File         string `json:"file"`
			RefusedBy    string `json:"refused_by"`
			DecoderError string `json:"decoder_error"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", expectedFile, err)
	}
	listed := map[string]int{}
	for i, e := range doc.Vectors {
		listed[e.File] = i
	}
	if len(listed) != len(doc.Vectors) || len(listed) != len(invalidVectors) {
		t.Errorf("%s lists %d vectors (%d distinct), the table has %d", expectedFile, len(doc.Vectors), len(listed), len(invalidVectors))
	}
	for _, v := range invalidVectors {
		i, ok := listed[v.name+".bin"]
		if !ok {
			t.Errorf("%s does not list %s.bin", expectedFile, v.name)
			continue
		}
		if e := doc.Vectors[i]; e.RefusedBy != v.check || e.DecoderError != v.want.Error() {
			t.Errorf("%s: %s says refused_by %q with %q; the table says %q with %q", expectedFile, e.File, e.RefusedBy, e.DecoderError, v.check, v.want.Error())
		}
	}
}

// TestGoldenValues decodes the valid golden files and checks their values.
func TestGoldenValues(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var keys goldenKeys
	if err := json.Unmarshal(read("golden.json"), &keys); err != nil {
		t.Fatal(err)
	}
	maker, err := NewKeySigner(read("maker.seed"))
	if err != nil {
		t.Fatal(err)
	}
	device, err := NewKeySigner(read("device.seed"))
	if err != nil {
		t.Fatal(err)
	}
	if got := maker.PublicKey().String(); got != keys.MakerPublicKey {
		t.Errorf("maker key %s, golden.json says %s", got, keys.MakerPublicKey)
	}
	if got := device.PublicKey().DeviceID().String(); got != keys.DeviceID {
		t.Errorf("device_id %s, golden.json says %s", got, keys.DeviceID)
	}

	cert, err := ParseCertificate(read("cert.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Verify(maker.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if cert.MakerID != "amos-golden" || cert.Model != "Amos G1 测试机" || cert.DevicePublicKey != device.PublicKey() {
		t.Errorf("certificate fields: %+v", cert)
	}

	recs, err := DecodeBatch(read("chain31.batch"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 32 {
		t.Fatalf("chain31.batch has %d records, want genesis + 31", len(recs))
	}
	if !bytes.Equal(recs[0], read("genesis.bin")) || !bytes.Equal(recs[1], read("activity-20261001.bin")) {
		t.Error("chain31.batch does not start with genesis.bin and activity-20261001.bin")
	}
	makers := func(id string) (PublicKey, bool) { return maker.PublicKey(), id == "amos-golden" }
	head, err := VerifyChain(recs, makers)
	if err != nil {
		t.Fatal(err)
	}
	if head.Seq != 32 || head.LastDate != 20261031 || !head.CertVerified || head.Epoch != 1 {
		t.Errorf("chain head %+v", head)
	}
	hashes := make([]string, len(recs))
	for i, r := range recs {
		hashes[i] = HashRecord(r).String()
		if i > 0 && len(r) != ActivityRecordSize {
			t.Errorf("activity record %d is %d bytes, docs/protocol.md says 199", i, len(r))
		}
	}
	if !slices.Equal(hashes, keys.RecordHashes) {
		t.Error("record hashes differ from golden.json")
	}
	if head.Head.String() != keys.RecordHashes[31] {
		t.Error("chain head hash is not the hash of the last record")
	}
}

// TestRecordLayout reads a golden activity record and certificate at the byte offsets
// of docs/protocol.md by hand, independently of the encoder.
func TestRecordLayout(t *testing.T) {
	f := newFixture(t)
	b := f.days[0]
	be16 := func(o int) uint16 { return binary.BigEndian.Uint16(b[o:]) }
	be32 := func(o int) uint32 { return binary.BigEndian.Uint32(b[o:]) }
	be64 := func(o int) uint64 { return binary.BigEndian.Uint64(b[o:]) }
	id := f.device.PublicKey().DeviceID()
	prev := HashRecord(f.genesis)
	boot := bootID()
	minted := time.Date(2026, 10, 2, 0, 0, 5, 0, time.FixedZone("CST", 8*3600)).Unix()
	checks := []struct {
		field string
		ok    bool
	}{
		{"length 199", len(b) == 199},
		{"magic AMR1 at 0", string(b[0:4]) == "AMR1"},
		{"kind 2 at 4", b[4] == 2},
		{"flags at 5", be16(5) == 0},
		{"device_id at 7", bytes.Equal(b[7:39], id[:])},
		{"epoch at 39", be32(39) == 1},
		{"seq at 43", be64(43) == 2},
		{"prev_hash at 51", bytes.Equal(b[51:83], prev[:])},
		{"minted_at at 83", int64(be64(83)) == minted},
		{"boot_id at 91", bytes.Equal(b[91:107], boot[:])},
		{"uptime_ms at 107", be64(107) == 86_400_000},
		{"body length at 115", be16(115) == 18},
		{"date at 117", be32(117) == 20261001},
		{"utc_offset_minutes at 121", int16(be16(121)) == 480},
		{"interactive_seconds at 123", be32(123) == 60},
		{"unlocks at 127", be16(127) == 1},
		{"screen_ons at 129", be16(129) == 2},
		{"active_hours at 131", be32(131) == 0x3F0},
		{"signature at 135 over [0,135)", f.device.PublicKey().Verify(b[:135], Signature(b[135:199]))},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: wrong\n%s", c.field, hex.Dump(b))
		}
	}

	c := f.certBytes
	n := len(f.cert.MakerID)
	m := len(f.cert.Model)
	pub := f.device.PublicKey().Bytes()
	if string(c[0:4]) != "AMC1" || !bytes.Equal(c[4:36], pub[:]) || !bytes.Equal(c[36:68], f.cert.SerialTag[:]) ||
		int(c[68]) != n || string(c[69:69+n]) != "amos-golden" || int(c[69+n]) != m ||
		string(c[70+n:70+n+m]) != "Amos G1 测试机" ||
		int64(binary.BigEndian.Uint64(c[70+n+m:])) != f.cert.IssuedAt ||
		len(c) != 70+n+m+8+64 ||
		!f.maker.PublicKey().Verify(c[:70+n+m+8], Signature(c[70+n+m+8:])) {
		t.Errorf("certificate layout differs from docs/protocol.md:\n%s", hex.Dump(c))
	}

	g := f.genesis
	if g[4] != 1 || binary.BigEndian.Uint64(g[43:]) != 1 || !bytes.Equal(g[117:149], pub[:]) ||
		int(binary.BigEndian.Uint16(g[149:])) != len(c) || !bytes.Equal(g[151:151+len(c)], c) ||
		g[151+len(c)] != 1 || len(g) != 151+len(c)+1+64 {
		t.Errorf("genesis layout differs from docs/protocol.md:\n%s", hex.Dump(g))
	}
}

// TestExtendedGenesisLayout reads the golden P-256 genesis (kind 3) and its AMC2
// certificate at the offsets of docs/protocol.md 3 and 4.4a by hand.
func TestExtendedGenesisLayout(t *testing.T) {
	f := newFixture(t)
	c, g, pub := f.p256CertBytes, f.p256Genesis, f.p256.PublicKey().Bytes()
	if len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("P-256 key %x is not an uncompressed point", pub)
	}
	n, m := len(f.cert.MakerID), len(f.cert.Model)
	if string(c[0:4]) != "AMC2" || !bytes.Equal(c[4:69], pub) || !bytes.Equal(c[69:101], f.cert.SerialTag[:]) ||
		int(c[101]) != n || len(c) != 4+65+32+1+n+1+m+8+64 || !f.maker.PublicKey().Verify(c[:len(c)-64], Signature(c[len(c)-64:])) {
		t.Errorf("AMC2 certificate layout differs from docs/protocol.md:\n%s", hex.Dump(c))
	}
	o := 117
	checks := []struct {
		field string
		ok    bool
	}{
		{"kind 3 at 4", g[4] == 3},
		{"key type 2 at 117", g[o] == 2},
		{"public key at 118", bytes.Equal(g[o+1:o+66], pub)},
		{"certificate length at 183", int(binary.BigEndian.Uint16(g[o+66:])) == len(c)},
		{"certificate at 185", bytes.Equal(g[o+68:o+68+len(c)], c)},
		{"attestation count", int(g[o+68+len(c)]) == len(f.attestation)},
	}
	p := o + 68 + len(c) + 1
	for i, der := range f.attestation {
		l := int(binary.BigEndian.Uint16(g[p:]))
		checks = append(checks, struct {
			field string
			ok    bool
		}{fmt.Sprintf("attestation certificate %d", i), l == len(der) && bytes.Equal(g[p+2:p+2+l], der)})
		p += 2 + l
	}
	h := sha256.Sum256(g[:p+1])
	pk, _ := f.p256.PublicKey().ECDSA()
	r, s := new(big.Int).SetBytes(g[p+1:p+33]), new(big.Int).SetBytes(g[p+33:p+65])
	checks = append(checks, []struct {
		field string
		ok    bool
	}{
		{"reason 1 after the chain", g[p] == 1},
		{"body length", int(binary.BigEndian.Uint16(g[115:])) == p+1-117},
		{"length", len(g) == p+1+64},
		{"ECDSA r‖s over SHA-256 of [0, end−64)", ecdsa.Verify(pk, h[:], r, s)},
		{"low s", s.Cmp(new(big.Int).Rsh(elliptic.P256().Params().N, 1)) <= 0},
	}...)
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: wrong\n%s", c.field, hex.Dump(g))
		}
	}
}
