package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// editStore changes a closed store with bbolt directly, as another build would.
func editStore(t *testing.T, path string, edit func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(edit); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFormatVersion: a store whose format version (meta/schema) is higher than this
// build's is refused with ErrNewerFormat, naming the file and both versions, whatever
// else its layout changed; it is never taken for corrupt, moved aside or written. A
// format version that is no number from 1 is corruption.
func TestFormatVersion(t *testing.T) {
	schema := func(v []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, v) }
	}
	tests := []struct {
		name  string
		edit  func(tx *bolt.Tx) error
		newer string // the version named in ErrNewerFormat's message; "" for corrupt
	}{
		{"format 2, laid out as format 1", schema(u64key(2)), "format version 2 "},
		{"format 2 without a dead bucket, with a tally of value version 2", func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketDead); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTally).Put(keyValue, []byte{2, 0xff}); err != nil {
				return err
			}
			return schema(u64key(2))(tx)
		}, "format version 2 "},
		{"format 2^40", schema(u64key(1 << 40)), "format version 1099511627776 "},
		{"format 0", schema(u64key(0)), ""},
		{"format of 4 bytes", schema([]byte{0, 0, 0, 2}), ""},
		{"no format", func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keySchema) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			populated(t, dir, 3)
			path := filepath.Join(dir, FileName)
			editStore(t, path, tc.edit)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, roErr := OpenReadOnly(dir)
			s, err := Open(Options{Dir: dir, Logf: t.Logf})
			if tc.newer == "" {
				if !errors.Is(roErr, ErrCorrupt) || err != nil || s.Recovered() == nil {
					t.Fatalf("read-only: %v; open: %v: want corruption, recovered", roErr, err)
				}
				s.Close()
				return
			}
			for _, err := range []error{roErr, err} {
				if !errors.Is(err, ErrNewerFormat) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: %v, want ErrNewerFormat and not ErrCorrupt", err)
				}
				for _, want := range []string{path, tc.newer, "formats 1 to 1"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%q does not name %q", err, want)
					}
				}
			}
			t.Logf("open: %v", err)
			if s != nil {
				s.Close()
			}
			after, _ := os.ReadFile(path)
			moved, _ := filepath.Glob(filepath.Join(dir, corruptPrefix+"*"))
			if !bytes.Equal(before, after) || len(moved) > 0 {
				t.Fatalf("the newer store was changed (%v) or moved aside (%v)", !bytes.Equal(before, after), moved)
			}
		})
	}
}
