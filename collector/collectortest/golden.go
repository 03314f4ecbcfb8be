package collectortest

import (
	"os"
	"path/filepath"
	"testing"

	"amos.example/amosd/proof"
)

// Golden is the fixed maker, device and chain of testdata/proof.
type Golden struct {
	Maker, Device *proof.KeySigner
	Chain         [][]byte // the genesis and 31 days of October 2026
}

// LoadGolden reads the golden vectors of dir (testdata/proof).
func LoadGolden(t testing.TB, dir string) *Golden {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	g := &Golden{}
	var err error
	if g.Maker, err = proof.NewKeySigner(read("maker.seed")); err != nil {
		t.Fatal(err)
	}
	if g.Device, err = proof.NewKeySigner(read("device.seed")); err != nil {
		t.Fatal(err)
	}
	if g.Chain, err = proof.DecodeBatch(read("chain31.batch")); err != nil {
		t.Fatal(err)
	}
	return g
}
